"""NYU Depth V2, labeled set (Silberman et al., ECCV 2012): the prepare cache and its loader.

This module is the data set's front: the public names of the NYU modules are importable from here. They are

* ``nyudv2_meta``: the shipped facts (sizes, class names, the standard split and the 894 → 40 class map of
  ``nyuv2_meta.json``), ``NyuError``, and ``assign_parts``, the val / D_l / D_u cut;
* ``nyudv2_mat``: the reader of the MATLAB v7.3 file ``nyu_depth_v2_labeled.mat`` (its layout is described
  there);
* ``resizing``: ``resize``, as ``cv2.resize`` does it, with or without OpenCV;
* ``hha``: ``encode_hha``, the HHA encoding of a depth image, and the NYU camera (``scaled_intrinsics``);
* here: ``prepare`` and ``load_cache``.

``prepare`` reads the images of a split once and stores them in a cache of memory-mappable arrays
(``cache``, format version 3), one row per image::

    OUT/arrays/rgb.npy      uint8    (n, 3, H, W)   bilinear resize
    OUT/arrays/depth.npy    float32  (n, 1, H, W)   metres, nearest resize (the loader normalises)
    OUT/arrays/labels.npy   uint8    (n, H, W)      40-class labels 1..40, 0 = void; nearest resize
    OUT/arrays/hha.npy      uint8    (n, 3, H, W)   only with hha=True; channels (disparity, height,
                                                    angle), see ``encode_hha``
    OUT/arrays/part.npy     str      (n,)           "labeled", "unlabeled", "val" or "test"
    OUT/arrays/index.npy    int64    (n,)           1-based image number in the .mat file
    OUT/arrays/valid.npy    bool     (n,)           every image (a damaged image stops prepare)
    OUT/arrays/digest.npy   |S32     (n,)           sha256 of the image's raw arrays as read from the .mat
    OUT/checksums.json      the checksum of every shard of rows of every array (``mke-exp verify``)
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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from mke_experiments.data import cache as cache_store
from mke_experiments.data import resizing
from mke_experiments.data.cache import Column
from mke_experiments.data.hha import (  # noqa: F401 (re-exported)
    NYU_INTRINSICS,
    NYU_SIZE,
    encode_hha,
    scaled_intrinsics,
)
from mke_experiments.data.nyudv2_mat import (  # noqa: F401 (re-exported)
    RAW_NAME,
    REQUIRED_KEYS,
    _import_h5py,
    _open_labeled,
    _read_image,
    labeled_mat_info,
    read_labeled_mat,
    read_names,
)
from mke_experiments.data.nyudv2_meta import (  # noqa: F401 (re-exported)
    CLASS_NAMES,
    META_NAME,
    N_CLASSES,
    N_IMAGES,
    N_RAW_CLASSES,
    SHA256_MAP,
    VOID,
    NyuError,
    _check_split,
    assign_parts,
    label_lut,
    meta,
    standard_split,
)
from mke_experiments.data.resizing import _resize_numpy, resize  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
CACHE_FORMAT = "mke-nyudv2-cache"
CACHE_VERSION = 3  # 3: content digests (digest.npy, checksums.json, content_digest)
CACHE_ARRAYS = ("rgb", "depth", "labels", "part", "index")
SMALL_ARRAYS = frozenset({"labels", "part", "index"})  # read into memory by load_cache; rgb, depth, hha lazy
PARTS = ("labeled", "unlabeled", "val", "test")
PREPARE_HINT = "run mke-exp prepare nyudv2 --raw FILE --out DIR"

CACHE_SPEC = cache_store.CacheSpec(dataset="NYU Depth V2", format=CACHE_FORMAT, version=CACHE_VERSION,
                                   arrays=lambda manifest: _cache_arrays(manifest),  # defined below
                                   small=SMALL_ARRAYS, error=NyuError, hint=PREPARE_HINT,
                                   manifest_name=MANIFEST_NAME)


# ---- prepare --------------------------------------------------------------------------------------
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


def _resolve_raw(raw: str | os.PathLike) -> Path:
    raw = Path(raw)
    if raw.is_dir():
        if not (raw / RAW_NAME).is_file():
            raise NyuError(f"folder {raw} holds no {RAW_NAME}; pass the file, or the folder holding it, to --raw.")
        return raw / RAW_NAME
    return raw


def _fingerprint(path: Path) -> dict:
    """The quick key of the source: the file's name and size (no time stamp: the images' content digests,
    ``_hash_image``, see a file rewritten with other bytes)."""
    return {"name": path.name, "bytes": path.stat().st_size}


def _file_version(path: Path) -> str:
    """Which version of the file a process has open (``_opened``'s key): a file replaced or rewritten since is
    opened again, never read through a stale handle."""
    stat = path.stat()
    return json.dumps([str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino])


def _versions() -> dict:
    h5py, cv2 = _import_h5py(), resizing._cv2()
    return cache_store.library_versions(h5py=h5py.__version__, hdf5=h5py.version.hdf5_version,
                                        opencv=cv2.__version__ if cv2 is not None else None)


def _cache_arrays(manifest: dict) -> tuple[str, ...]:
    params = manifest.get("params")
    return CACHE_ARRAYS + (("hha",) if isinstance(params, dict) and params.get("hha") else ())


_OPEN: dict = {}  # version -> the open .mat file of this process (one at a time)


def _opened(path: Path, version: str):
    """The checked, open .mat file, once per process and file version (each prepare worker opens its own). The
    file of another version is closed first: HDF5 shares one open file per inode, so a file rewritten in place
    and opened while the old handle lives would be read with the old file's metadata."""
    if version not in _OPEN:
        for old in _OPEN.values():
            old.close()
        _OPEN.clear()
        _OPEN[version] = _open_labeled(path)[0]
    return _OPEN[version]


def _raw_digest(image: dict) -> str:
    """An image's content digest: its raw arrays as read from the .mat (``cache.hash_arrays``)."""
    return cache_store.hash_arrays(*(image[key] for key in ("image", "depth", "label", "raw_depth") if key in image))


def _hash_image(item: tuple[int, str], raw_path: Path, version: str, params: dict) -> str:
    """Image ``item``'s content digest without decoding it: read, hashed, not resized or encoded."""
    return _raw_digest(_read_image(_opened(raw_path, version), raw_path, item[0], raw_depths=params["hha"]))


def _decode_image(item: tuple[int, str], raw_path: Path, version: str, params: dict) -> tuple[dict, dict, str]:
    """One image's rows for ``cache.build``, its 40-class pixel counts as the note, and its content digest (of
    the raw arrays read for the decoding)."""
    number, part = item
    height, width = params["size"]
    image = _read_image(_opened(raw_path, version), raw_path, number, raw_depths=params["hha"])
    digest = _raw_digest(image)
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
    return rows, {"class_pixels": np.bincount(labels.ravel(), minlength=N_CLASSES + 1).tolist()}, digest


def _split_name(train: np.ndarray, test: np.ndarray, is_standard: bool) -> str:
    """How ``params`` records the split: ``"standard"``, or ``"custom sha256:…"`` of the train and test lists."""
    split_digest = hashlib.sha256(json.dumps({"train": train.tolist(), "test": test.tolist()}).encode()).hexdigest()
    return "standard" if is_standard else f"custom sha256:{split_digest}"


def _items(parts: dict[str, np.ndarray], raw_path: Path, n_images: int, is_standard: bool) -> list[tuple[int, str]]:
    """(image number, part) per image of the parts, in ascending image number: the cache's rows; ``NyuError``
    when the split refers to an image the file does not hold."""
    order = np.sort(np.concatenate([parts[name] for name in PARTS]))  # (n,) 1-based
    if order[-1] > n_images:
        hint = ("it is not the full labeled set (1449 images): re-download it" if is_standard
                else "pass a split within the file's images")
        raise NyuError(f"{raw_path} has {n_images} images but the split refers to image {int(order[-1])}; {hint}.")
    part_of = {int(i): name for name in PARTS for i in parts[name]}
    return [(int(i), part_of[int(i)]) for i in order]


def _columns(params: dict) -> dict[str, Column]:
    """The cache's arrays: row shape and stored dtype of each (``hha`` only with ``params["hha"]``)."""
    height, width = params["size"]
    columns = {"rgb": Column((3, height, width), "|u1"), "depth": Column((1, height, width), "<f4"),
               "labels": Column((height, width), "|u1"), "part": Column((), "<U9"), "index": Column((), "<i8")}
    if params["hha"]:
        columns["hha"] = Column((3, height, width), "|u1")
    return columns


def _summarize(valid: np.ndarray, notes: list[dict], *, items: list[tuple[int, str]], raw_path: Path, info: dict,
               n_train: int, n_test: int, out_dir: Path) -> dict:
    """The manifest entries of the NYU cache for ``cache.build``: the source, counts and class pixels per part,
    the encodings and the library versions; ``NyuError`` when an image was skipped (a damaged file)."""
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
        "counts": {**counts, "total": len(items), "train": n_train, "test_split": n_test},
        # per part: pixels of label 0 (void), 1..40
        "class_pixels": {name: pixels.tolist() for name, pixels in class_pixels.items()},
        "class_names": ["void", *CLASS_NAMES],
        "split_note": ("val, labeled (D_l) and unlabeled (D_u) are drawn from the training images with "
                       "split_seed (mke_experiments.data.nyudv2.assign_parts); this D_l/D_u cut is the "
                       "library's choice, the MKE paper's was not recovered"),
        "encoding": {"rgb": "uint8 RGB, bilinear resize", "depth": "float32 metres, nearest resize",
                     "labels": "uint8, 0 void, 1..40 classMapping40 of the nearest-resized raw labels",
                     "hha": "uint8 (disparity, height, angle); gravity = camera y axis (see nyudv2.encode_hha)",
                     "resize": "opencv" if resizing._cv2() is not None else "numpy"},
        "versions": _versions(),
    }


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

    A cache built from the same file (same name and size, and every image's raw arrays hashing to the digest
    stored: the file is read, not decoded) with the same parameters is reused, not rebuilt; the returned
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
    params["split"] = _split_name(train, test, is_standard)
    raw_path, out_dir = _resolve_raw(raw), cache_store.check_out_dir(CACHE_SPEC, out_dir)
    info = labeled_mat_info(raw_path)  # checks the file before anything else
    fingerprint = _fingerprint(raw_path)
    items = _items(parts, raw_path, info["n"], is_standard)
    version = _file_version(raw_path)
    hash_item = functools.partial(_hash_image, raw_path=raw_path, version=version, params=params)
    describe = lambda item: f"image {item[0]}"  # noqa: E731
    reused = cache_store.reuse(CACHE_SPEC, out_dir, params, fingerprint, items, hash_item, progress,
                               workers=1, describe=describe)  # one open .mat file: h5py reads in one thread
    if reused is not None:
        return reused

    summarize = functools.partial(_summarize, items=items, raw_path=raw_path, info=info, n_train=int(len(train)),
                                  n_test=int(len(test)), out_dir=out_dir)
    decode = functools.partial(_decode_image, raw_path=raw_path, version=version, params=params)
    return cache_store.build(CACHE_SPEC, out_dir, items, decode, _columns(params), params, fingerprint, summarize,
                             hash_item=hash_item, workers=workers, shard_size=shard_size, progress=progress,
                             describe=describe)


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
