"""Task ``arrays``: bring your own data as one npz bundle.

The bundle's keys (``KEYS``; the one list ``mke-exp run arrays`` and ``mke-theory check`` read):

- ``labeled_alpha`` (N, d_α), ``labels`` (N,): D_l; optional when the bundle carries the teacher's output;
- ``unlabeled_alpha`` (M, d_α), ``unlabeled_beta`` (M, d_β): D_u;
- ``test_alpha``, ``test_beta``, ``test_labels``: the test set;
- optional ``unlabeled_labels`` (upper bound and diagnostics) and ``val_alpha``, ``val_beta``, ``val_labels``;
- optional teacher output (your own teacher, trained outside the library): ``pseudo_labels`` (M,) its classes
  on D_u or ``teacher_probs`` (M, K) its class probabilities on D_u (rows sum to 1; columns in the order of
  the encoded classes), and ``teacher_test_pred`` (n_test,) or ``teacher_test_probs`` (n_test, K) on the
  test set for the teacher's row of the table. With one of them no teacher is trained. Optional
  ``teacher_val_pred`` (n_val,) or ``teacher_val_probs`` (n_val, K), its output on the validation set (needs
  ``val_alpha``): not used for training, kept for the check (``mke-exp check``, ``mke-theory check``).

Labels may be integers or strings (compared in Unicode NFC with surrounding whitespace stripped): the
sorted distinct values of D_l's ``labels`` (without D_l: of ``test_labels``, ``val_labels`` and
``unlabeled_labels``) become classes 0 … K−1, and the original values are kept in ``split.meta["classes"]``
and in every run record (``config["classes"]``). Every other label array (``test_labels``, ``pseudo_labels``,
``teacher_test_pred``, ...) must hold those classes only: another value is an error naming it. Integer
labels must not skip a value between their smallest and largest (``data.allow_missing_classes=true`` keeps
the skipped ones as classes without samples). A key that is not one of ``KEYS`` is an error when it is close
to one (``teacher_prob``) or names labels or teacher output (``logits``); other extra keys are ignored with a
warning. Features are standardised with statistics of the training data only
(α: D_l ∪ D_u; β: D_u).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mke_experiments.config import ExperimentConfig, TrainConfig, limit
from mke_experiments.tasks.registry import Task, data_dir_or_error, register_task
from mke_theory.core.bundle import (
    KEYS,
    LABEL_KEYS,
    LABELED,
    OPTIONAL,
    REQUIRED,
    TEACHER,
    check_keys,
    check_probs,
    encode_labels,
    feature_array,
    load_npz,
)
from mke_theory.core.errors import MKEError
from mke_theory.core.split import MultimodalSplit, zscore, zscore_stats

__all__ = ["KEYS", "OPTIONAL", "REQUIRED", "TEACHER", "ArraysData", "split_from_arrays", "standardize", "load"]


@dataclass(frozen=True)
class ArraysData:
    standardize: bool = True  # z-score every feature with training statistics
    allow_missing_classes: bool = False  # integer labels that skip a value: keep it as a class without samples
    # a stratified subsample of D_l of this many samples (fixed seed; 0: all of D_l), e.g. for ``mke-exp sweep``;
    # recorded only when set, so the records of whole bundles keep their hash
    n_labeled: int = limit(0, 0, record="if_set")


def _scaler(train: np.ndarray, modality: str, source: str):
    """z = (x / s − mean) / std with the statistics of ``train`` (``mke_theory.core.split.zscore_stats``)."""
    scale, mean, std = zscore_stats(train)

    def apply(x, key):
        z = zscore(x, scale, mean, std)
        if not np.all(np.isfinite(z)):
            raise MKEError(f"{source}: {key} overflows when standardised with the training statistics of "
                           f"{modality} (values far beyond the training range); rescale it or pass "
                           "--set data.standardize=false")
        return z.astype(np.float32)

    apply.stats = dict(scale=scale.tolist(), mean=mean.tolist(), std=std.tolist())  # for the run's Predictor
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
        n_classes=split.n_classes, name=split.name,
        meta=dict(split.meta, standardized=True, standardization=dict(alpha=sa.stats, beta=sb.stats)), **val)


def _teacher_output(data: dict, encoded: dict, n_classes: int, m: int, n_test: int, source: str,
                    n_val: int | None = None) -> dict | None:
    """The teacher's output the bundle carries, checked: pseudo_labels / teacher_probs on D_u,
    teacher_test_pred / teacher_test_probs on the test set and teacher_val_pred / teacher_val_probs on the
    validation set (``n_val`` rows; None: no validation set) as class indices, probabilities as float32."""
    if not any(k in data for k in TEACHER):
        return None
    for hard, soft in (("pseudo_labels", "teacher_probs"), ("teacher_test_pred", "teacher_test_probs"),
                       ("teacher_val_pred", "teacher_val_probs")):
        if hard in data and soft in data:
            raise MKEError(f"{source}: give one of {hard} (classes) or {soft} (probabilities), not both")
    if "pseudo_labels" not in data and "teacher_probs" not in data:
        given = ", ".join(k for k in TEACHER if k in data)
        raise MKEError(f"{source}: {given} need(s) the teacher's output on D_u as well: "
                       "add pseudo_labels (M,) or teacher_probs (M, K)")
    out = {}
    for key, rows, part in (("pseudo_labels", m, "unlabeled_alpha"), ("teacher_probs", m, "unlabeled_alpha"),
                            ("teacher_test_pred", n_test, "test_alpha"), ("teacher_test_probs", n_test, "test_alpha"),
                            ("teacher_val_pred", n_val, "val_alpha"), ("teacher_val_probs", n_val, "val_alpha")):
        if key not in data:
            continue
        if rows is None:
            raise MKEError(f"{source}: {key} is the teacher's output on the validation set, but the bundle has no "
                           "val_alpha; add val_alpha, val_beta and val_labels, or drop it")
        if key.endswith("probs"):
            v = check_probs(source, key, data[key], rows, part, n_classes)
        else:
            v = encoded[key]
            if len(v) != rows:
                raise MKEError(f"{source}: {key} has {len(v)} rows but {part} has {rows}; one per sample")
        out[key] = v
    return out


def split_from_arrays(arrays: dict, name: str = "arrays", source: str = "the bundle",
                      allow_missing_classes: bool = False) -> MultimodalSplit:
    """A ``MultimodalSplit`` from a dict of arrays with the bundle's keys (``KEYS``); errors name the key.

    Labels are encoded to 0 … K−1 (``mke_theory.core.bundle.encode_labels``; the original values in
    ``meta["classes"]``); the teacher's output, when the bundle carries it, is in ``meta["teacher_output"]``.
    """
    check_keys(arrays, KEYS, source)  # a misspelt teacher output must not quietly train a teacher instead
    external = "pseudo_labels" in arrays or "teacher_probs" in arrays
    needed = [k for k in REQUIRED if not (external and k in LABELED)]
    missing = [k for k in needed if k not in arrays]
    if external and (("labeled_alpha" in arrays) != ("labels" in arrays)):
        missing.append("labels" if "labeled_alpha" in arrays else "labeled_alpha")
    if missing:
        raise MKEError(f"{source} misses the key(s) {', '.join(missing)}; "
                       f"it must hold {', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL + TEACHER)}; "
                       f"{' and '.join(LABELED)} may go when pseudo_labels or teacher_probs are given)")
    data = {k: np.asarray(arrays[k]) for k in KEYS if k in arrays}
    for k, v in data.items():
        if v.ndim == 0 or len(v) == 0:
            raise MKEError(f"{source}: {k} holds no rows (shape {v.shape}); every key needs one row per sample")
        if k.endswith("alpha") or k.endswith("beta"):
            data[k] = feature_array(source, k, v)
            if not np.all(np.isfinite(data[k])):
                raise MKEError(f"{source}: {k} holds NaN or infinite values; clean them before training")
    # the classes are D_l's (without D_l: those of the labeled test, validation and D_u sets); a label or
    # teacher prediction of another class is refused, never added as a class no labeled sample has
    reference = ("labels",) if "labels" in data else ("test_labels", "val_labels", "unlabeled_labels")
    encoded, classes = encode_labels(data, LABEL_KEYS, source, allow_missing=allow_missing_classes,
                                     reference=reference)
    teacher = _teacher_output(data, encoded, len(classes), len(data["unlabeled_alpha"]), len(data["test_alpha"]),
                              source, len(data["val_alpha"]) if "val_alpha" in data else None)
    for k in TEACHER:
        data.pop(k, None)
    data.update({k: v for k, v in encoded.items() if k not in TEACHER})
    if "labeled_alpha" not in data:  # your own teacher and no D_l: an empty D_l (no method trains on it)
        data["labeled_alpha"] = np.zeros((0,) + data["unlabeled_alpha"].shape[1:], np.float32)
        data["labels"] = np.zeros(0, np.int64)
    if len(classes) < 2:
        raise MKEError(f"{source}: the labels hold a single class ({classes[0]!r}); MKE needs at least two")
    meta = dict(classes=classes)
    if teacher is not None:
        meta["teacher_output"] = teacher
    try:
        return MultimodalSplit(**data, n_classes=len(classes), name=name, meta=meta)
    except ValueError as e:
        raise MKEError(f"{source}: {e}") from None


def stratified_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` of ``labels`` (1-d classes), stratified: every class present keeps at least one
    sample, the rest is shared in proportion to the class sizes (largest remainders). Each class is drawn in
    the order of one permutation of ``seed``, so a smaller subsample lies inside a larger one where the class
    shares allow it (teacher strength grows by adding labels, not by drawing new ones)."""
    classes, counts = np.unique(labels, return_counts=True)
    share = n * counts / counts.sum()
    quota = np.minimum(np.maximum(np.floor(share).astype(int), 1), counts)
    while quota.sum() < n:  # the rounding: one more where the share was cut most and samples are left
        quota[np.argmax(np.where(quota < counts, share - quota, -np.inf))] += 1
    while quota.sum() > n:  # the one-per-class floor overshot: one less where it exceeds its share most
        quota[np.argmax(np.where(quota > 1, quota - share, -np.inf))] -= 1
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]))


def _fewer_labels(split: MultimodalSplit, n: int, source: str) -> MultimodalSplit:
    """``split`` with D_l cut to a stratified subsample of ``n`` (``data.n_labeled``); D_u and the rest stay."""
    if "teacher_output" in split.meta:
        raise MKEError(f"{source} carries its own teacher output, so no teacher is trained on D_l and "
                       f"data.n_labeled={n} would change nothing; drop data.n_labeled")
    present = len(np.unique(split.labels))
    if n > split.n_labeled or n < present:
        raise MKEError(f"data.n_labeled={n} must lie between the {present} classes and the {split.n_labeled} samples "
                       f"of D_l in {source} (a stratified subsample keeps one sample per class); choose a size in "
                       f"{present} … {split.n_labeled}")
    keep = stratified_subset(split.labels, n)
    return dataclasses.replace(split, labeled_alpha=split.labeled_alpha[keep], labels=split.labels[keep])


def load(data: ArraysData, data_dir) -> MultimodalSplit:
    path = data_dir_or_error(data_dir, "arrays")
    if path.is_dir():
        raise MKEError(f"{path} is a folder; --data for the arrays task is the .npz bundle itself")
    arrays = load_npz(path, what=".npz bundle")
    split = split_from_arrays(arrays, name=Path(path).stem, source=str(path),
                              allow_missing_classes=data.allow_missing_classes)
    if data.n_labeled:  # before standardising: the statistics are those of the D_l the teacher trains on
        split = _fewer_labels(split, data.n_labeled, str(path))
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
    ignores=("model.backbone", "model.pretrained", "model.weights", "model.seg_head"),  # no torchvision ResNet
    smoke=smoke,
    small=True,
))
