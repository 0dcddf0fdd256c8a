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
from mke_theory.split import MultimodalSplit

REQUIRED = ("labeled_alpha", "labels", "unlabeled_alpha", "unlabeled_beta", "test_alpha", "test_beta", "test_labels")
OPTIONAL = ("unlabeled_labels", "val_alpha", "val_beta", "val_labels")


@dataclass(frozen=True)
class ArraysData:
    standardize: bool = True  # z-score every feature with training statistics


def standardize(split: MultimodalSplit) -> MultimodalSplit:
    """z-score α with the mean/std of D_l ∪ D_u and β with those of D_u; other sets reuse them."""
    def stats(x):
        mean, std = x.mean(axis=0), x.std(axis=0)
        return mean, np.where(std > 0, std, 1.0)

    ma, sa = stats(np.concatenate([split.labeled_alpha, split.unlabeled_alpha]))
    mb, sb = stats(split.unlabeled_beta)
    za, zb = (lambda x: ((x - ma) / sa).astype(np.float32)), (lambda x: ((x - mb) / sb).astype(np.float32))
    val = {}
    if split.val_alpha is not None:
        val = dict(val_alpha=za(split.val_alpha), val_beta=zb(split.val_beta), val_labels=split.val_labels)
    return MultimodalSplit(
        labeled_alpha=za(split.labeled_alpha), labels=split.labels, unlabeled_alpha=za(split.unlabeled_alpha),
        unlabeled_beta=zb(split.unlabeled_beta), unlabeled_labels=split.unlabeled_labels,
        test_alpha=za(split.test_alpha), test_beta=zb(split.test_beta), test_labels=split.test_labels,
        n_classes=split.n_classes, name=split.name, meta=dict(split.meta, standardized=True), **val)


def split_from_arrays(arrays: dict, name: str = "arrays", source: str = "the bundle") -> MultimodalSplit:
    """A ``MultimodalSplit`` from a dict of arrays with the bundle's keys; errors name the key."""
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise MKEError(f"{source} misses the key(s) {', '.join(missing)}; "
                         f"it must hold {', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})")
    data = {k: np.asarray(arrays[k]) for k in REQUIRED + OPTIONAL if k in arrays}
    for k, v in data.items():
        if k.endswith("alpha") or k.endswith("beta"):
            data[k] = v[:, None] if v.ndim == 1 else v
            if not np.issubdtype(data[k].dtype, np.number) or not np.all(np.isfinite(data[k])):
                raise MKEError(f"{source}: {k} holds NaN, infinite or non-numeric values; clean them before training")
    label_keys = [k for k in ("labels", "test_labels", "unlabeled_labels", "val_labels") if k in data]
    for k in label_keys:
        whole = np.issubdtype(data[k].dtype, np.integer) or np.all(data[k] == np.round(data[k]))
        if data[k].ndim != 1 or not whole:
            raise MKEError(f"{source}: {k} must be a 1-d array of integer class indices")
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
    try:
        with np.load(path, allow_pickle=False) as bundle:
            arrays = {k: bundle[k] for k in bundle.files}
    except (OSError, ValueError) as e:
        raise MKEError(f"{path} is not a readable .npz bundle ({e})") from None
    split = split_from_arrays(arrays, name=Path(path).stem, source=str(path))
    return standardize(split) if data.standardize else split


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
