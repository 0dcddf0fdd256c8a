"""NYU Depth V2, labeled set: the facts this library ships and the standard protocol built on them.

Sizes and class counts of the labeled set (1449 images, 894 raw classes mapped to Gupta et al.'s 40), the 40
class names, the standard split of ``splits.mat`` (795 train / 654 test images, 1-based) and the 894 → 40 class
map of ``classMapping40.mat``, read from ``nyuv2_meta.json`` (``meta``; copied from the public
ankurhanda/nyuv2-meta-data files, nothing is downloaded), and ``assign_parts``, the library's cut of the
training images into val, D_l and D_u. ``NyuError`` is the error every NYU module raises.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib import resources

import numpy as np

from mke_theory.core.errors import MKEError

META_NAME = "nyuv2_meta.json"

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


class NyuError(MKEError):
    """An NYU Depth V2 file, folder, option or cache the user supplied is not what the loader expects."""


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


# ---- the val / D_l / D_u cut ----------------------------------------------------------------------
def _half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


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
