"""NYU Depth V2, labeled set (Silberman et al., ECCV 2012): the v7.3 .mat reader, the prepare cache, mIoU.

On disk (data-formats reference, section A2.1) the labeled set is one MATLAB v7.3 file,
``nyu_depth_v2_labeled.mat`` (about 2.8 GB, from the NYU Depth V2 page,
http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat): HDF5 behind a 512-byte
user block, every array stored with its axes reversed::

    images  (1449, 3, 640, 480) uint8    RGB          per image np.transpose(x, (2, 1, 0)) → (480, 640, 3)
    depths  (1449, 640, 480)    float32  metres, in-filled          per image .T → (480, 640)
    rawDepths                   float32  metres, 0 = missing        (read only for HHA)
    labels  (1449, 640, 480)    uint16   0 = unlabeled, 1..894 index ``names``

The standard protocol (``splits.mat``: 795 train / 654 test images, 1-based) and Gupta et al.'s 894 → 40
class map (``classMapping40.mat``) ship with the library in ``nyuv2_meta.json`` (see ``meta``), copied from
the public ankurhanda/nyuv2-meta-data files; nothing is downloaded.

``prepare`` reads the images of a split once and stores them in a cache of memory-mappable arrays
(``cache``, format version 2), one row per image::

    OUT/arrays/rgb.npy      uint8    (n, 3, H, W)   bilinear resize
    OUT/arrays/depth.npy    float32  (n, 1, H, W)   metres, nearest resize (the loader normalises)
    OUT/arrays/labels.npy   uint8    (n, H, W)      40-class labels 1..40, 0 = void; nearest resize
    OUT/arrays/hha.npy      uint8    (n, 3, H, W)   only with hha=True; channels (disparity, height,
                                                    angle), see ``encode_hha``
    OUT/arrays/part.npy     str      (n,)           "labeled", "unlabeled", "val" or "test"
    OUT/arrays/index.npy    int64    (n,)           1-based image number in the .mat file
    OUT/arrays/valid.npy    bool     (n,)           every image (a damaged image stops prepare)
    OUT/manifest.json       parameters, counts per part, class pixel counts, versions, complete flag

``load_cache`` returns labels, part and index in memory, rgb, depth and hha as ``LazyRows``.
Rows are in ascending ``index``. The parts are MKE's MultimodalSplit: ``val`` images are drawn from the 795
training images (``split_seed``), the rest is cut into D_l (``labeled``: RGB with labels, for the
teacher) and D_u (``unlabeled``: RGB-D whose labels are kept for diagnostics only); ``test`` is the
standard 654-image test set. The D_l/D_u cut is this library's choice: the MKE paper's exact cut was not
recovered. h5py is needed to read the .mat file (``pip install -e .[experiments]``); OpenCV is used for
resizing when installed, else an equivalent numpy resize.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from mke_experiments.data import cache as cache_store
from mke_experiments.data.cache import Column
from mke_theory.core.errors import MKEError

log = logging.getLogger(__name__)

RAW_NAME = "nyu_depth_v2_labeled.mat"
MANIFEST_NAME = "manifest.json"
META_NAME = "nyuv2_meta.json"
CACHE_FORMAT = "mke-nyudv2-cache"
CACHE_VERSION = 2
CACHE_ARRAYS = ("rgb", "depth", "labels", "part", "index")
SMALL_ARRAYS = frozenset({"labels", "part", "index"})  # read into memory by load_cache; rgb, depth, hha lazy
PARTS = ("labeled", "unlabeled", "val", "test")
PREPARE_HINT = "run mke-exp prepare nyudv2 --raw FILE --out DIR"
REQUIRED_KEYS = ("images", "depths", "labels")

N_IMAGES = 1449  # images in the labeled set
N_RAW_CLASSES = 894  # len(names); labels index them 1-based
N_CLASSES = 40  # Gupta et al. 2013, classMapping40.mat
VOID = 0  # unlabeled pixels, in the raw labels and in the 40-class labels
SHA256_MAP = "9299519a3ed4b943d80be0fd4268f7e25bef66e7dcc9f6a727f13383c70c5421"  # of mapClass as int64

# className of classMapping40.mat, labels 1..40 ("refridgerator" sic).
CLASS_NAMES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat",
    "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel", "shower curtain", "box",
    "whiteboard", "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)

# Colour camera of the Kinect at 640×480 (Depth2HHA-python getHHA.py, from the NYU toolbox): fx, fy, cx, cy.
NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)
NYU_SIZE = (480, 640)  # (H, W) of the images the intrinsics belong to

_HHA_MIN_DEPTH_CM = 100.0  # getHHA: pc[:, :, 2] = max(pc[:, :, 2], 100) before the disparity
_HHA_DEFAULT_FLOOR_CM = -130.0  # getHHA: when no point lies 90 cm below the camera, assume the floor at 130 cm
_HHA_NORMAL_RADIUS = 2  # normals from the tangents summed over a (2r+1)² window of valid pixels


class NyuError(MKEError):
    """An NYU Depth V2 file, folder, option or cache the user supplied is not what the loader expects."""


CACHE_SPEC = cache_store.CacheSpec(dataset="NYU Depth V2", format=CACHE_FORMAT, version=CACHE_VERSION,
                                   arrays=lambda manifest: _cache_arrays(manifest),  # defined below
                                   small=SMALL_ARRAYS, error=NyuError, hint=PREPARE_HINT,
                                   manifest_name=MANIFEST_NAME)


# ---- shipped facts --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def meta() -> dict:
    """The shipped standard-protocol facts (``nyuv2_meta.json``); cached, do not modify the result.

    Keys: ``train_indices`` (795) and ``test_indices`` (654), 1-based as in ``splits.mat``;
    ``map_894_to_40`` (894 values in 1..40, ``mapClass``) and its ``sha256_map``; ``class_names_40``
    (``className``); ``names_894`` (``allClassName``, the order of the .mat file's ``names``); ``source``.
    """
    text = resources.files("mke_experiments.data").joinpath(META_NAME).read_text(encoding="utf-8")
    data = json.loads(text)
    digest = hashlib.sha256(np.asarray(data["map_894_to_40"], dtype=np.int64).tobytes()).hexdigest()
    if digest != SHA256_MAP or len(data["train_indices"]) != 795 or len(data["test_indices"]) != 654:
        raise NyuError(f"the shipped {META_NAME} of mke_experiments.data is damaged; reinstall the mke package.")
    return data


def label_lut() -> np.ndarray:
    """(895,) int64 look-up table from raw labels to the 40 classes: ``lut[0] = 0`` (void), ``lut[k] = map[k-1]``.

    Apply it as ``labels40 = label_lut()[labels894]`` (classMapping40.mat, A2.4).
    """
    return np.concatenate([[VOID], np.asarray(meta()["map_894_to_40"], dtype=np.int64)])


def standard_split() -> dict[str, np.ndarray]:
    """The standard split of ``splits.mat``: ``{"train": (795,), "test": (654,)}`` int64, 1-based image numbers."""
    data = meta()
    return {"train": np.asarray(data["train_indices"], dtype=np.int64),
            "test": np.asarray(data["test_indices"], dtype=np.int64)}


# ---- the .mat file --------------------------------------------------------------------------------
def _import_h5py():
    try:
        import h5py
    except ImportError as e:
        raise NyuError(f"reading {RAW_NAME} needs h5py ({e}); install it with pip install -e .[experiments].") from None
    return h5py


def _not_v73(path: Path) -> NyuError:
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        what = "it is an older MATLAB v5 MAT-file"
    elif len(head) == 0:
        what = "it is empty"
    else:
        what = "it has no HDF5 signature"
    return NyuError(f"{path} is not a MATLAB v7.3 (HDF5) file ({what}); the labeled set is the 2.8 GB "
                    f"{RAW_NAME} of the NYU Depth V2 page: re-download it.")


def _open_labeled(path: Path):
    """Open and check the .mat file; returns (h5py.File, n_images, height, width)."""
    h5py = _import_h5py()
    if not path.exists():
        raise NyuError(f"NYU Depth V2 file {path} does not exist; download {RAW_NAME} from the NYU Depth V2 "
                       "page and pass its path (or its folder) to --raw.")
    if not path.is_file():
        raise NyuError(f"NYU Depth V2 file {path} is not a file; pass the path of {RAW_NAME} to --raw.")
    if not h5py.is_hdf5(str(path)):
        raise _not_v73(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:  # e.g. "truncated file: eof = …"
        raise NyuError(f"NYU Depth V2 file {path} cannot be opened as HDF5, it is truncated or corrupt "
                       f"({str(e).strip()}); re-download it.") from None
    try:
        missing = [key for key in REQUIRED_KEYS if key not in f]
        if missing:
            raise NyuError(f"NYU Depth V2 file {path} lacks the dataset(s) {', '.join(repr(k) for k in missing)} "
                           f"(it has {', '.join(sorted(f.keys())) or 'none'}); it is not {RAW_NAME}: re-download it.")
        shapes = {key: f[key].shape for key in REQUIRED_KEYS}
        images, depths, labels = shapes["images"], shapes["depths"], shapes["labels"]
        if len(images) != 4 or images[1] != 3 or depths != images[:1] + images[2:] or labels != depths:
            raise NyuError(f"NYU Depth V2 file {path} has images {images}, depths {depths} and labels {labels}; "
                           "expected (N, 3, W, H), (N, W, H) and (N, W, H) (the real file: (1449, 3, 640, 480)); "
                           "re-download it.")
        if f["images"].dtype != np.uint8 or f["labels"].dtype.kind not in "ui":
            raise NyuError(f"NYU Depth V2 file {path} stores images as {f['images'].dtype} and labels as "
                           f"{f['labels'].dtype}; expected uint8 and uint16; re-download it.")
    except BaseException:
        f.close()
        raise
    n, width, height = images[0], images[2], images[3]
    return f, int(n), int(height), int(width)


def labeled_mat_info(path: str | os.PathLike) -> dict:
    """``{"n", "height", "width", "keys"}`` of ``nyu_depth_v2_labeled.mat`` after checking its layout.

    Raises
    ------
    NyuError
        naming the file and the fix when it is missing, not a v7.3 (HDF5) file, truncated, or lacks
        ``images``, ``depths`` or ``labels`` with the expected shapes.
    """
    f, n, height, width = _open_labeled(Path(path))
    with f:
        return {"n": n, "height": height, "width": width, "keys": sorted(f.keys())}


def read_labeled_mat(path: str | os.PathLike, indices: Iterable[int] | None = None,
                     raw_depths: bool = False) -> Iterator[dict]:
    """Images of ``nyu_depth_v2_labeled.mat``, one dict per image, in the order of ``indices``.

    The file is opened and checked at the call (errors are raised here, not at the first ``next``); the
    images are read lazily. Each dict holds ``index`` (1-based), ``image`` (H, W, 3) uint8 RGB,
    ``depth`` (H, W) float32 metres, ``label`` (H, W) uint16 raw labels 0..894, and with
    ``raw_depths=True`` ``raw_depth`` (H, W) float32 metres, 0 = missing (zeros when the file has no
    ``rawDepths``).

    Parameters
    ----------
    indices : 1-based image numbers (as in ``splits.mat``); all images when None.

    Raises
    ------
    NyuError
        naming the file and the fix: missing, not a MATLAB v7.3 (HDF5) file, truncated, missing keys,
        wrong shapes, an index out of range; a read error while iterating (a damaged file).
    """
    path = Path(path)
    f, n, _, _ = _open_labeled(path)
    try:
        wanted = list(range(1, n + 1)) if indices is None else [int(i) for i in indices]
        bad = [i for i in wanted if not 1 <= i <= n]
        if bad:
            fix = ("it is not the full labeled set (1449 images): re-download it" if n < N_IMAGES
                   else "use 1-based image numbers")
            raise NyuError(f"image number {bad[0]} is outside 1..{n}, the images of {path}; {fix}.")
    except BaseException:
        f.close()
        raise
    return _iterate(f, path, wanted, raw_depths)


def _iterate(f, path: Path, wanted: list[int], raw_depths: bool) -> Iterator[dict]:
    with f:
        for number in wanted:
            yield _read_image(f, path, number, raw_depths)


def _read_image(f, path: Path, number: int, raw_depths: bool) -> dict:
    """Image ``number`` (1-based) of the open file ``f``, as ``read_labeled_mat`` yields it."""
    i = number - 1
    try:
        item = {
            "index": number,
            "image": np.ascontiguousarray(np.transpose(f["images"][i], (2, 1, 0))),  # (3, W, H) → (H, W, 3)
            "depth": np.ascontiguousarray(f["depths"][i].T, dtype=np.float32),  # (W, H) → (H, W)
            "label": np.ascontiguousarray(f["labels"][i].T, dtype=np.uint16),  # (W, H) → (H, W)
        }
        if raw_depths:
            item["raw_depth"] = (np.ascontiguousarray(f["rawDepths"][i].T, dtype=np.float32) if "rawDepths" in f
                                 else np.zeros_like(item["depth"]))
    except OSError as e:  # a damaged chunk: h5py cannot inflate or locate it
        raise NyuError(f"NYU Depth V2 file {path} cannot be read at image {number} "
                       f"({str(e).strip()}); the file is truncated or corrupt: re-download it.") from None
    return item


def read_names(path: str | os.PathLike) -> list[str]:
    """The 894 class names of the file's ``names`` cell, decoded through its HDF5 object references."""
    path = Path(path)
    f, _, _, _ = _open_labeled(path)
    with f:
        if "names" not in f:
            raise NyuError(f"NYU Depth V2 file {path} has no 'names' cell; re-download it.")
        try:
            return [f[ref][()].astype(np.uint16).tobytes().decode("utf-16-le") for ref in f["names"][0]]
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise NyuError(f"the 'names' cell of {path} cannot be decoded ({e}); re-download it.") from None


# ---- resizing -------------------------------------------------------------------------------------
def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _source_coords(n_out: int, n_in: int, linear: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's sampling: nearest ``floor(d * in / out)``; linear ``(d + 0.5) * in / out - 0.5``, clamped."""
    scale = n_in / n_out
    d = np.arange(n_out)
    if not linear:
        lo = np.minimum(np.floor(d * scale).astype(np.int64), n_in - 1)
        return lo, lo, np.zeros(n_out)
    x = (d + 0.5) * scale - 0.5
    lo = np.floor(x).astype(np.int64)
    w = x - lo
    w[lo < 0], lo[lo < 0] = 0.0, 0
    edge = lo >= n_in - 1
    w[edge], lo[edge] = 0.0, n_in - 1
    return lo, np.minimum(lo + 1, n_in - 1), w


def _resize_numpy(array: np.ndarray, size: tuple[int, int], linear: bool) -> np.ndarray:
    """(h, w[, c]) → (H, W[, c]), the same sampling as cv2.resize INTER_LINEAR / INTER_NEAREST (no antialiasing)."""
    (y0, y1, wy), (x0, x1, wx) = (_source_coords(size[0], array.shape[0], linear),
                                  _source_coords(size[1], array.shape[1], linear))
    if not linear:
        return array[y0][:, x0]
    a = array.astype(np.float64)
    wy = wy.reshape((-1, 1) + (1,) * (a.ndim - 2))
    wx = wx.reshape((1, -1) + (1,) * (a.ndim - 2))
    rows = a[y0] * (1 - wy) + a[y1] * wy  # (H, w[, c])
    out = rows[:, x0] * (1 - wx) + rows[:, x1] * wx  # (H, W[, c])
    if array.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(array.dtype)


def resize(array: np.ndarray, size: tuple[int, int], linear: bool) -> np.ndarray:
    """Resize an (h, w) or (h, w, c) image to ``size`` = (H, W): bilinear or nearest, as cv2.resize.

    Uses OpenCV (INTER_LINEAR / INTER_NEAREST) when installed, else a numpy implementation of the same
    sampling (uint8 results may differ by one grey level from OpenCV's fixed-point arithmetic).
    """
    size = (int(size[0]), int(size[1]))
    if array.shape[:2] == size:
        return array.copy()
    cv2 = _cv2()
    if cv2 is None:
        return _resize_numpy(array, size, linear)
    flag = cv2.INTER_LINEAR if linear else cv2.INTER_NEAREST
    if array.dtype == np.uint16 and not linear:  # cv2 resizes uint16 too, but keep labels exact and simple
        return _resize_numpy(array, size, linear)
    return cv2.resize(array, (size[1], size[0]), interpolation=flag)


# ---- HHA ------------------------------------------------------------------------------------------
def scaled_intrinsics(size: tuple[int, int]) -> tuple[float, float, float, float]:
    """NYU colour intrinsics (fx, fy, cx, cy) for images resized from 480×640 to ``size`` = (H, W).

    Focal lengths scale with the size; the principal point maps pixel centres: ``c' = (c + 0.5) s - 0.5``.
    """
    sy, sx = size[0] / NYU_SIZE[0], size[1] / NYU_SIZE[1]
    fx, fy, cx, cy = NYU_INTRINSICS
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


def _window_sum(a: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)×(2r+1) window around every pixel of (H, W, ...) ``a``, zeros beyond the border."""
    pad = [(radius + 1, radius), (radius + 1, radius)] + [(0, 0)] * (a.ndim - 2)
    c = np.pad(a, pad).cumsum(0).cumsum(1)
    k = 2 * radius + 1
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def encode_hha(depth: np.ndarray, intrinsics: Sequence[float] | None = None,
        missing: np.ndarray | None = None) -> np.ndarray:
    """HHA encoding of a depth image (Gupta et al., ECCV 2014), compact version; (3, H, W) uint8.

    Channels, in the order of the name (as Depth2HHA-python ``getHHA.py``'s PNG reads in RGB order):

    0. horizontal disparity ``31000 / depth_cm``, depth first raised to 100 cm, so at most 255 after clipping;
    1. height above the ground in cm: ``h = -Y`` relative to the lowest valid point (when that lies less than
       90 cm below the camera, the ground is put 130 cm below it, as getHHA does);
    2. angle between the surface normal and "up" in degrees, plus 38 (``angle + 128 - 90``); 180° where
       no normal can be computed.

    Values are rounded (``np.rint``) and clipped to 0..255.

    Simplifications (stated, not hidden): gravity is taken to be the camera's y axis (image rows point
    down, so "up" is (0, -1, 0)); Gupta et al. estimate it iteratively from the normals. Normals are the
    cross products of the point cloud's central-difference tangents summed over a 5×5 window of valid
    pixels and made to face the camera, instead of local plane fits.

    Parameters
    ----------
    depth : (H, W) depth in metres.
    intrinsics : (fx, fy, cx, cy) in pixels of this image; default ``scaled_intrinsics(depth.shape)``.
    missing : (H, W) bool, pixels without a measurement (``rawDepths == 0``); they take no part in the
        ground estimate or the normals.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise MKEError(f"encode_hha: depth must be (H, W), not {depth.shape}")
    height, width = depth.shape
    fx, fy, cx, cy = scaled_intrinsics(depth.shape) if intrinsics is None else (float(v) for v in intrinsics)
    z = depth * 100.0  # (H, W) cm
    valid = np.isfinite(z) & (z > 0)
    if missing is not None:
        valid &= ~np.asarray(missing, dtype=bool)
    z = np.where(np.isfinite(z), z, 0.0)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)  # (H, W, 3) camera frame, cm, y down
    up = np.array([0.0, -1.0, 0.0])  # the simplification: gravity along the camera's y axis

    height_cm = points @ up  # (H, W) height above the camera
    floor = float(height_cm[valid].min()) if valid.any() else _HHA_DEFAULT_FLOOR_CM
    if floor > -90.0:
        floor = _HHA_DEFAULT_FLOOR_CM
    above_ground = height_cm - floor  # (H, W)

    # Tangents need two rows and two columns; degenerate images get no normals.
    if height >= 2 and width >= 2:
        du = np.gradient(points, axis=1)  # (H, W, 3)
        dv = np.gradient(points, axis=0)
        cross = np.cross(du, dv)  # (H, W, 3)
        ok = valid.copy()  # a tangent is trusted when the pixel and its 4 neighbours are valid
        ok[:, 1:] &= valid[:, :-1]
        ok[:, :-1] &= valid[:, 1:]
        ok[1:] &= valid[:-1]
        ok[:-1] &= valid[1:]
        cross = np.where(ok[..., None], cross, 0.0)
        cross /= np.maximum(np.linalg.norm(cross, axis=-1, keepdims=True), 1e-12)  # equal weight per pixel
        normal = _window_sum(cross, _HHA_NORMAL_RADIUS)  # (H, W, 3)
        norm = np.linalg.norm(normal, axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            normal = np.where(norm > 1e-6, normal / norm, np.nan)
        facing = np.sum(normal * points, axis=-1) > 0  # normals point away from the camera there: flip
        normal[facing] *= -1
        with np.errstate(invalid="ignore"):
            angle = np.degrees(np.arccos(np.clip(normal @ up, -1.0, 1.0)))  # (H, W), NaN where no normal
        angle[~valid] = np.nan
    else:
        angle = np.full(depth.shape, np.nan)
    angle = np.where(np.isnan(angle), 180.0, angle)

    encoded = np.stack([31000.0 / np.maximum(z, _HHA_MIN_DEPTH_CM), above_ground, angle + 128.0 - 90.0])
    return np.clip(np.rint(encoded), 0, 255).astype(np.uint8)  # (3, H, W)


# ---- prepare --------------------------------------------------------------------------------------
def _half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def _params(size, val, labeled_fraction, split_seed, with_hha: bool) -> dict:
    try:
        if len(size) != 2:
            raise TypeError
        size = (int(size[0]), int(size[1]))
    except (TypeError, ValueError):
        raise NyuError(f"prepare: size={size!r} must be (height, width), e.g. (240, 320).") from None
    if min(size) < 8:
        raise NyuError(f"prepare: size={size} is too small; use a height and width of at least 8 pixels.")
    if int(val) != val or val < 0:
        raise NyuError(f"prepare: val={val!r} must be a whole number of validation images >= 0.")
    if not 0 < labeled_fraction < 1:
        raise NyuError(f"prepare: labeled_fraction={labeled_fraction!r} must lie strictly between 0 and 1 "
                       "(the rest of the training images is the unlabeled set D_u).")
    return {"size": list(size), "val": int(val), "labeled_fraction": float(labeled_fraction),
            "split_seed": int(split_seed), "hha": bool(with_hha)}


def _check_split(split: Mapping[str, Iterable[int]] | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """(train, test) 1-based int64 arrays, sorted, and whether they are the standard split."""
    standard = standard_split()
    if split is None:
        return standard["train"], standard["test"], True
    try:
        train = np.unique(np.asarray(list(split["train"]), dtype=np.int64))
        test = np.unique(np.asarray(list(split["test"]), dtype=np.int64))
    except (KeyError, TypeError, ValueError) as e:
        raise NyuError(f"prepare: split must map 'train' and 'test' to lists of 1-based image numbers ({e}).") \
            from None
    if len(train) == 0 or len(test) == 0 or min(train.min(), test.min()) < 1:
        raise NyuError("prepare: split needs non-empty 'train' and 'test' lists of 1-based image numbers (>= 1).")
    overlap = np.intersect1d(train, test)
    if len(overlap):
        raise NyuError(f"prepare: images {overlap[:5].tolist()} are in both the train and the test split; "
                       "the splits must be disjoint.")
    is_standard = np.array_equal(train, standard["train"]) and np.array_equal(test, standard["test"])
    return train, test, is_standard


def assign_parts(train: np.ndarray, val: int, labeled_fraction: float, split_seed: int) -> dict[str, np.ndarray]:
    """Cut the training images into ``val``, ``labeled`` (D_l) and ``unlabeled`` (D_u); sorted 1-based arrays.

    A permutation of the sorted ``train`` drawn with ``np.random.default_rng(split_seed)``: its first
    ``val`` images validate, the next ``round(labeled_fraction * (len(train) - val))`` (half up) are
    labeled and the rest unlabeled. This cut is the library's choice; the paper's was not recovered.
    """
    train = np.sort(np.asarray(train, dtype=np.int64))
    rest = len(train) - val
    n_labeled = _half_up(labeled_fraction * rest)
    if rest < 2 or n_labeled < 1 or n_labeled >= rest:
        raise NyuError(f"prepare: {len(train)} training images minus val={val} leave {rest}, of which "
                       f"labeled_fraction={labeled_fraction} gives {n_labeled} labeled and {rest - n_labeled} "
                       "unlabeled; both sets need at least one image: lower val or change labeled_fraction.")
    order = np.random.default_rng(split_seed).permutation(train)
    return {"val": np.sort(order[:val]), "labeled": np.sort(order[val:val + n_labeled]),
            "unlabeled": np.sort(order[val + n_labeled:])}


def _resolve_raw(raw: str | os.PathLike) -> Path:
    raw = Path(raw)
    if raw.is_dir():
        if not (raw / RAW_NAME).is_file():
            raise NyuError(f"folder {raw} holds no {RAW_NAME}; pass the file, or the folder holding it, to --raw.")
        return raw / RAW_NAME
    return raw


def _fingerprint(path: Path) -> dict:
    stat = path.stat()
    return {"name": path.name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _versions() -> dict:
    h5py, cv2 = _import_h5py(), _cv2()
    return cache_store.library_versions(h5py=h5py.__version__, hdf5=h5py.version.hdf5_version,
                                        opencv=cv2.__version__ if cv2 is not None else None)


def _cache_arrays(manifest: dict) -> tuple[str, ...]:
    return CACHE_ARRAYS + (("hha",) if manifest.get("params", {}).get("hha") else ())


@functools.lru_cache(maxsize=1)
def _opened(path: Path, fingerprint: str):
    """The checked, open .mat file, once per process and file version (each prepare worker opens its own)."""
    return _open_labeled(path)[0]


def _decode_image(item: tuple[int, str], raw_path: Path, fingerprint: str, params: dict) -> tuple[dict, dict]:
    """One image's rows for ``cache.build``, and its 40-class pixel counts as the note."""
    number, part = item
    height, width = params["size"]
    image = _read_image(_opened(raw_path, fingerprint), raw_path, number, raw_depths=params["hha"])
    label = image["label"]
    top = int(label.max(initial=0))
    if top > N_RAW_CLASSES:
        raise NyuError(f"{raw_path}: image {number} has label {top}, outside 0..{N_RAW_CLASSES}; "
                       "the file is corrupt: re-download it.")
    depth = resize(image["depth"], (height, width), linear=False)
    labels = label_lut()[resize(label, (height, width), linear=False)]
    rows = {"rgb": resize(image["image"], (height, width), linear=True).transpose(2, 0, 1),
            "depth": depth[None], "labels": labels, "part": part, "index": number}
    if params["hha"]:
        missing = resize(image["raw_depth"], (height, width), linear=False) == 0
        rows["hha"] = encode_hha(depth, scaled_intrinsics((height, width)), missing)
    return rows, {"class_pixels": np.bincount(labels.ravel(), minlength=N_CLASSES + 1).tolist()}


def prepare(raw: str | os.PathLike, out_dir: str | os.PathLike, size: tuple[int, int] = (240, 320), val: int = 100,
            labeled_fraction: float = 0.25, split_seed: int = 0, hha: bool = False,
            progress: Callable[[int], object] | None = None,
            split: Mapping[str, Iterable[int]] | None = None, workers: int | None = None,
            shard_size: int = cache_store.SHARD_SIZE) -> dict:
    """Build the cache (see the module docstring) in ``out_dir`` from the .mat file.

    The training images of ``split`` are cut by ``assign_parts`` into ``val``, ``labeled`` (D_l) and
    ``unlabeled`` (D_u); the test images form ``test``. Per image: labels mapped 894 → 40 with
    ``label_lut`` (0 = void); RGB resized bilinearly, depth and labels with nearest neighbours; with
    ``hha=True`` the HHA encoding of the resized depth (``encode_hha``; pixels with ``rawDepths == 0`` count as
    missing). A damaged image stops prepare with the error naming it.

    A cache built from the same file with the same parameters is reused, not rebuilt; the returned
    manifest then has ``reused=True``. ``cache.build`` decodes the images with ``workers`` processes (default:
    the usable cores; each opens the .mat file once), resumes a killed run and keeps the previous cache
    readable until the new one is done.

    Parameters
    ----------
    raw : ``nyu_depth_v2_labeled.mat`` or the folder holding it.
    out_dir : where the cache and the manifest go (created).
    size : (H, W) of the cached images; the original is (480, 640).
    val : training images held out for validation.
    labeled_fraction : share of the remaining training images that keep their labels (D_l), rounded half up.
    split_seed : seed of the permutation that draws val, D_l and D_u.
    hha : also store the HHA encoding of the depth.
    progress : optional ``progress(n)``, called with the number of images finished (with the number of
        images once when the cache is reused).
    split : ``{"train": [...], "test": [...]}`` 1-based image numbers; the standard 795/654 split of
        ``splits.mat`` when None.
    workers, shard_size : see ``cache.build``.

    Returns
    -------
    dict, the manifest, plus ``reused`` (bool).
    """
    params = _params(size, val, labeled_fraction, split_seed, hha)
    train, test, is_standard = _check_split(split)
    parts = assign_parts(train, params["val"], params["labeled_fraction"], params["split_seed"])
    parts["test"] = test
    split_digest = hashlib.sha256(json.dumps({"train": train.tolist(), "test": test.tolist()}).encode()).hexdigest()
    params["split"] = "standard" if is_standard else f"custom sha256:{split_digest}"
    raw_path, out_dir = _resolve_raw(raw), cache_store.check_out_dir(CACHE_SPEC, out_dir)
    info = labeled_mat_info(raw_path)  # checks the file before anything else
    fingerprint = _fingerprint(raw_path)
    order = np.sort(np.concatenate([parts[name] for name in PARTS]))  # (n,) 1-based
    if order[-1] > info["n"]:
        hint = ("it is not the full labeled set (1449 images): re-download it" if is_standard
                else "pass a split within the file's images")
        raise NyuError(f"{raw_path} has {info['n']} images but the split refers to image {int(order[-1])}; {hint}.")
    total = len(order)
    reused = cache_store.reuse(CACHE_SPEC, out_dir, params, fingerprint, progress, total)
    if reused is not None:
        return reused

    height, width = params["size"]
    part_of = {int(i): name for name in PARTS for i in parts[name]}
    items = [(int(i), part_of[int(i)]) for i in order]
    columns = {"rgb": Column((3, height, width), "|u1"), "depth": Column((1, height, width), "<f4"),
               "labels": Column((height, width), "|u1"), "part": Column((), "<U9"), "index": Column((), "<i8")}
    if params["hha"]:
        columns["hha"] = Column((3, height, width), "|u1")

    def summarize(valid: np.ndarray, notes: list[dict]) -> dict:
        for (number, _), note in zip(items, notes):
            if "skipped" in note:  # non-finite depth: decode itself raises on every other damage
                raise NyuError(f"{raw_path}: image {number}: {note['skipped']}; the file is corrupt: re-download it.")
        counts = {name: sum(part == name for _, part in items) for name in PARTS}
        class_pixels = {name: np.zeros(N_CLASSES + 1, np.int64) for name in PARTS}
        for (_, part), note in zip(items, notes):
            class_pixels[part] += note["class_pixels"]
        log.info("%s: %s", out_dir, ", ".join(f"{counts[name]} {name}" for name in PARTS))
        return {
            "raw": str(raw_path.resolve()),
            "source_shape": {"n": info["n"], "height": info["height"], "width": info["width"]},
            "counts": {**counts, "total": total, "train": int(len(train)), "test_split": int(len(test))},
            # per part: pixels of label 0 (void), 1..40
            "class_pixels": {name: pixels.tolist() for name, pixels in class_pixels.items()},
            "class_names": ["void", *CLASS_NAMES],
            "split_note": ("val, labeled (D_l) and unlabeled (D_u) are drawn from the training images with "
                           "split_seed (mke_experiments.data.nyudv2.assign_parts); this D_l/D_u cut is the "
                           "library's choice, the MKE paper's was not recovered"),
            "encoding": {"rgb": "uint8 RGB, bilinear resize", "depth": "float32 metres, nearest resize",
                         "labels": "uint8, 0 void, 1..40 classMapping40 of the nearest-resized raw labels",
                         "hha": "uint8 (disparity, height, angle); gravity = camera y axis (see nyudv2.encode_hha)",
                         "resize": "opencv" if _cv2() is not None else "numpy"},
            "versions": _versions(),
        }

    decode = functools.partial(_decode_image, raw_path=raw_path, fingerprint=json.dumps(fingerprint),
                               params=params)
    return cache_store.build(CACHE_SPEC, out_dir, items, decode, columns, params, fingerprint, summarize,
                             workers=workers, shard_size=shard_size, progress=progress)


# ---- load -----------------------------------------------------------------------------------------
def load_cache(out_dir: str | os.PathLike) -> dict:
    """The rows of the cache (see the module docstring) plus ``manifest``: ``labels`` (uint8), ``part`` (str) and
    ``index`` (int64) as arrays, ``rgb`` (uint8), ``depth`` (float32) and ``hha`` (uint8) as ``LazyRows``.

    Raises
    ------
    NyuError
        naming the file and how to rebuild it when the cache is missing, corrupt or out of step with its
        manifest.
    """
    return cache_store.load(CACHE_SPEC, out_dir)
