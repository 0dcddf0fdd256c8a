"""NYU Depth V2, labeled set: the reader of ``nyu_depth_v2_labeled.mat``.

On disk (data-formats reference, section A2.1) the labeled set is one MATLAB v7.3 file,
``nyu_depth_v2_labeled.mat`` (about 2.8 GB, from the NYU Depth V2 page,
http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat): HDF5 behind a 512-byte
user block, every array stored with its axes reversed::

    images  (1449, 3, 640, 480) uint8    RGB          per image np.transpose(x, (2, 1, 0)) → (480, 640, 3)
    depths  (1449, 640, 480)    float32  metres, in-filled          per image .T → (480, 640)
    rawDepths                   float32  metres, 0 = missing        (read only for HHA)
    labels  (1449, 640, 480)    uint16   0 = unlabeled, 1..894 index ``names``

``labeled_mat_info`` checks the layout, ``read_labeled_mat`` yields the images one by one in the usual
axis order, ``read_names`` decodes the 894 class names. Every way the file can be broken is a ``NyuError``
naming the file and the fix. h5py is needed (``pip install -e .[experiments]``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from mke_experiments.data.nyudv2_meta import N_IMAGES, NyuError

RAW_NAME = "nyu_depth_v2_labeled.mat"
REQUIRED_KEYS = ("images", "depths", "labels")


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
