"""Task ``arrays``: bring your own data as one npz bundle.

Keys: ``labeled_alpha`` (N, d_α), ``labels`` (N,), ``unlabeled_alpha`` (M, d_α),
``unlabeled_beta`` (M, d_β), ``test_alpha``, ``test_beta``, ``test_labels``; optional
``unlabeled_labels`` (upper bound and diagnostics) and ``val_alpha``, ``val_beta``, ``val_labels``.
Features are standardised with statistics of the training data only (α: D_l ∪ D_u; β: D_u).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mke_experiments.config import ExperimentConfig, TrainConfig
from mke_experiments.tasks.registry import Task, data_dir_or_error, register_task
from mke_theory.errors import MKEError
from mke_theory.npz import load_npz
from mke_theory.split import MultimodalSplit

REQUIRED = ("labeled_alpha", "labels", "unlabeled_alpha", "unlabeled_beta", "test_alpha", "test_beta", "test_labels")
OPTIONAL = ("unlabeled_labels", "val_alpha", "val_beta", "val_labels")


@dataclass(frozen=True)
class ArraysData:
    standardize: bool = True  # z-score every feature with training statistics


def _scaler(train: np.ndarray, modality: str, source: str):
    """z = (x / s − mean) / std with s = max |x| per feature over ``train``, all in float64.

    Dividing by s first keeps mean and variance finite for features of any finite scale (values of
    1e200 overflow the variance otherwise); a z-score does not change under that rescaling.
    """
    train = np.asarray(train, dtype=np.float64)
    scale = np.max(np.abs(train), axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    scaled = train / scale
    mean, std = scaled.mean(axis=0), scaled.std(axis=0)
    std = np.where(std > 0, std, 1.0)

    def apply(x, key):
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below, in one sentence
            z = (np.asarray(x, dtype=np.float64) / scale - mean) / std
        if not np.all(np.isfinite(z)):
            raise MKEError(f"{source}: {key} overflows when standardised with the training statistics of "
                           f"{modality} (values far beyond the training range); rescale it or pass "
                           "--set data.standardize=false")
        return z.astype(np.float32)

    return apply


def standardize(split: MultimodalSplit, source: str = "the bundle") -> MultimodalSplit:
    """z-score α with the mean/std of D_l ∪ D_u and β with those of D_u; other sets reuse them."""
    sa = _scaler(np.concatenate([split.labeled_alpha, split.unlabeled_alpha]), "α (D_l ∪ D_u)", source)
    sb = _scaler(split.unlabeled_beta, "β (D_u)", source)
    za, zb = (lambda x, key="alpha": sa(x, key)), (lambda x, key="beta": sb(x, key))
    val = {}
    if split.val_alpha is not None:
        val = dict(val_alpha=za(split.val_alpha, "val_alpha"), val_beta=zb(split.val_beta, "val_beta"),
                   val_labels=split.val_labels)
    return MultimodalSplit(
        labeled_alpha=za(split.labeled_alpha, "labeled_alpha"), labels=split.labels,
        unlabeled_alpha=za(split.unlabeled_alpha, "unlabeled_alpha"),
        unlabeled_beta=zb(split.unlabeled_beta, "unlabeled_beta"), unlabeled_labels=split.unlabeled_labels,
        test_alpha=za(split.test_alpha, "test_alpha"), test_beta=zb(split.test_beta, "test_beta"),
        test_labels=split.test_labels,
        n_classes=split.n_classes, name=split.name, meta=dict(split.meta, standardized=True), **val)


def split_from_arrays(arrays: dict, name: str = "arrays", source: str = "the bundle") -> MultimodalSplit:
    """A ``MultimodalSplit`` from a dict of arrays with the bundle's keys; errors name the key."""
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise MKEError(f"{source} misses the key(s) {', '.join(missing)}; "
                         f"it must hold {', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})")
    data = {k: np.asarray(arrays[k]) for k in REQUIRED + OPTIONAL if k in arrays}
    for k, v in data.items():
        if v.ndim == 0 or len(v) == 0:
            raise MKEError(f"{source}: {k} holds no rows (shape {v.shape}); every key needs one row per sample")
        if k.endswith("alpha") or k.endswith("beta"):
            data[k] = v[:, None] if v.ndim == 1 else v
            if np.issubdtype(v.dtype, np.complexfloating):
                raise MKEError(f"{source}: {k} holds complex numbers; save real features (e.g. the magnitude "
                               "or the real and imaginary parts side by side)")
            if (not np.issubdtype(v.dtype, np.number) and v.dtype != bool) or not np.all(np.isfinite(data[k])):
                raise MKEError(f"{source}: {k} holds NaN, infinite or non-numeric values; clean them before training")
    label_keys = [k for k in ("labels", "test_labels", "unlabeled_labels", "val_labels") if k in data]
    for k in label_keys:
        v = data[k]
        whole = v.dtype.kind in "iu" or (v.dtype.kind == "f" and np.all(np.isfinite(v)) and np.all(v == np.round(v)))
        if v.ndim != 1 or not whole:
            raise MKEError(f"{source}: {k} must be a 1-d array of integer class indices 0 … K−1, got "
                           f"{v.dtype} values of shape {v.shape}; map class names to indices before saving")
        if data[k].min() < 0:
            raise MKEError(f"{source}: {k} holds a negative label; labels must be 0 … K−1")
    n_classes = int(data["labels"].max()) + 1
    for k in label_keys[1:]:
        if data[k].max() >= n_classes:
            raise MKEError(f"{source}: {k} holds class {int(data[k].max())}, but labels (D_l) only go up to "
                             f"{n_classes - 1}; every class must appear among the labeled samples")
    try:
        return MultimodalSplit(**data, n_classes=n_classes, name=name)
    except ValueError as e:
        raise MKEError(f"{source}: {e}") from None


def load(data: ArraysData, data_dir) -> MultimodalSplit:
    path = data_dir_or_error(data_dir, "arrays")
    if path.is_dir():
        raise MKEError(f"{path} is a folder; --data for the arrays task is the .npz bundle itself")
    arrays = load_npz(path, what=".npz bundle")
    split = split_from_arrays(arrays, name=Path(path).stem, source=str(path))
    return standardize(split, source=str(path)) if data.standardize else split


def smoke(folder: Path) -> tuple[Path, tuple]:
    from mke_experiments.testing.bundles import write_bundle

    Path(folder).mkdir(parents=True, exist_ok=True)
    return write_bundle(Path(folder) / "bundle.npz"), ()


register_task(Task(
    name="arrays",
    description="your own data: an npz bundle with labeled α, unlabeled α+β and a test set",
    default_config=ExperimentConfig(task="arrays", data=ArraysData(), train=TrainConfig(epochs=50)),
    load=load,
    ignores=("model.backbone", "model.pretrained", "model.weights"),  # no torchvision ResNet for bundles
    smoke=smoke,
))
