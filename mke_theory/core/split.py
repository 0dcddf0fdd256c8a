"""``MultimodalSplit``: the one data noun every task produces and every method consumes.

D_l holds modality α with labels; D_u holds α and β without labels (the true labels are kept
aside for diagnostics and the supervised upper bound only); the test set holds α, β and labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from mke_theory.core.checks import check_labels
from mke_theory.core.checks import check_samples as check_features
from mke_theory.core.errors import MKEError

# every array of a split, in the order ``split_id`` hashes them
SPLIT_PARTS = ("labeled_alpha", "labels", "unlabeled_alpha", "unlabeled_beta", "unlabeled_labels",
               "val_alpha", "val_beta", "val_labels", "test_alpha", "test_beta", "test_labels")

IGNORE = -1  # label of a pixel (or sample) without a label, e.g. void pixels in segmentation


def check_targets(name: str, labels, n_classes: int) -> np.ndarray:
    """Class indices per sample ``(n,)`` (int64), per pixel ``(n, H, W)`` (int16, ``IGNORE`` allowed),
    or multi-label targets ``(n, K)`` as floats in [0, 1] (e.g. AudioSet's several classes per clip)."""
    labels = np.asarray(labels)
    if labels.ndim <= 1:
        return check_labels(name, labels, n_classes)
    if np.issubdtype(labels.dtype, np.floating):
        if labels.ndim != 2 or labels.shape[1] != n_classes:
            raise MKEError(f"{name}: float targets must be multi-label rows (n, {n_classes}), got {labels.shape}")
        if not np.all(np.isfinite(labels)) or labels.min() < 0 or labels.max() > 1:
            raise MKEError(f"{name}: multi-label targets must lie in [0, 1]")
        return labels.astype(np.float32, copy=False)
    if not np.issubdtype(labels.dtype, np.integer):
        raise MKEError(f"{name} must hold integer class indices")
    bad = (labels != IGNORE) & ((labels < 0) | (labels >= n_classes))
    if bad.any():
        raise MKEError(f"{name} holds {int(labels[bad][0])}; dense labels must lie in [0, {n_classes}) "
                         f"or be {IGNORE} (no label)")
    return labels.astype(np.int16, copy=False)


def zscore_stats(train) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scale, mean, std) per feature of ``train`` for ``zscore``: s = max |x| (1 where 0), then the mean
    and std of x / s (std 1 where 0). Dividing by s first keeps mean and variance finite for features of
    any finite scale (values of 1e200 overflow the variance otherwise); a z-score does not change under it."""
    train = np.asarray(train, dtype=np.float64)
    scale = np.max(np.abs(train), axis=0) if len(train) else np.ones(train.shape[1:])
    scale = np.where(scale > 0, scale, 1.0)
    scaled = train / scale
    std = scaled.std(axis=0)
    return scale, scaled.mean(axis=0), np.where(std > 0, std, 1.0)


def zscore(x, scale, mean, std) -> np.ndarray:
    """(x / scale − mean) / std in float64: the one formula of a run's fit, of its saved student on raw
    inputs and of ``mke-theory check``; overflow shows as inf, for the caller to name."""
    with np.errstate(over="ignore", invalid="ignore"):
        return (np.asarray(x, dtype=np.float64) / np.asarray(scale) - np.asarray(mean)) / np.asarray(std)


@dataclass(frozen=True, eq=False)
class MultimodalSplit:
    """Labeled unimodal data, unlabeled multimodal data and a multimodal test set.

    Attributes
    ----------
    Feature arrays are ``(n, d)`` for vectors or ``(n, ...)`` for images and spectrograms; the
    modality's trailing shape must agree across D_l, D_u and the test set.

    labeled_alpha : (n_labeled, d_alpha) array, modality α of D_l.
    labels : (n_labeled,) int array, class indices of D_l; or (n_labeled, H, W) per-pixel labels
        with ``IGNORE`` (−1) for void pixels (dense prediction, stored as int16).
    unlabeled_alpha : (n_unlabeled, d_alpha) array, modality α of D_u.
    unlabeled_beta : (n_unlabeled, d_beta) array, modality β of D_u.
    test_alpha, test_beta, test_labels : the test set, both modalities and labels.
    unlabeled_labels : (n_unlabeled,) int array or None; diagnostics and upper bound only.
    val_alpha, val_beta, val_labels : optional validation set for model selection.
    n_classes : number of classes K; labels lie in ``[0, K)``.
    name : what produced the split (a generator or task name).
    meta : free-form facts about how it was made (seeds, parameters).
    """

    labeled_alpha: np.ndarray
    labels: np.ndarray
    unlabeled_alpha: np.ndarray
    unlabeled_beta: np.ndarray
    test_alpha: np.ndarray
    test_beta: np.ndarray
    test_labels: np.ndarray
    n_classes: int
    unlabeled_labels: np.ndarray | None = None
    val_alpha: np.ndarray | None = None
    val_beta: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    name: str = "split"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        if int(self.n_classes) < 2:
            raise MKEError(f"n_classes must be >= 2, got {self.n_classes}")
        put("n_classes", int(self.n_classes))
        k = self.n_classes
        put("labeled_alpha", check_features("labeled_alpha", self.labeled_alpha))
        put("labels", check_targets("labels", self.labels, k))
        put("unlabeled_alpha", check_features("unlabeled_alpha", self.unlabeled_alpha))
        m = len(self.unlabeled_alpha)
        put("unlabeled_beta", check_features("unlabeled_beta", self.unlabeled_beta, m))
        put("test_alpha", check_features("test_alpha", self.test_alpha))
        n_test = len(self.test_alpha)
        put("test_beta", check_features("test_beta", self.test_beta, n_test))
        put("test_labels", check_targets("test_labels", self.test_labels, k))
        if len(self.labels) != len(self.labeled_alpha):
            raise MKEError(f"labels has {len(self.labels)} entries "
                             f"but labeled_alpha has {len(self.labeled_alpha)} rows")
        if len(self.test_labels) != n_test:
            raise MKEError(f"test_labels has {len(self.test_labels)} entries but test_alpha has {n_test} rows")
        if self.unlabeled_labels is not None:
            ul = check_targets("unlabeled_labels", self.unlabeled_labels, k)
            if len(ul) != m:
                raise MKEError(f"unlabeled_labels has {len(ul)} entries but unlabeled_alpha has {m} rows")
            put("unlabeled_labels", ul)
        val = (self.val_alpha, self.val_beta, self.val_labels)
        if any(v is not None for v in val):
            if any(v is None for v in val):
                raise MKEError("val_alpha, val_beta and val_labels must be given together")
            put("val_alpha", check_features("val_alpha", self.val_alpha))
            put("val_beta", check_features("val_beta", self.val_beta, len(self.val_alpha)))
            put("val_labels", check_targets("val_labels", self.val_labels, k))
            if len(self.val_labels) != len(self.val_alpha):
                raise MKEError(f"val_labels has {len(self.val_labels)} entries but val_alpha has "
                                 f"{len(self.val_alpha)} rows")
        d_alpha = self.labeled_alpha.shape[1:]
        for name in ("unlabeled_alpha", "test_alpha") + (("val_alpha",) if self.val_alpha is not None else ()):
            if getattr(self, name).shape[1:] != d_alpha:
                raise MKEError(f"{name} has feature shape {getattr(self, name).shape[1:]} "
                                 f"but labeled_alpha has {d_alpha}")
        for name in ("test_beta",) + (("val_beta",) if self.val_beta is not None else ()):
            if getattr(self, name).shape[1:] != self.unlabeled_beta.shape[1:]:
                raise MKEError(f"{name} and unlabeled_beta differ in their feature shape")

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def n_labeled(self) -> int:
        return len(self.labeled_alpha)

    @property
    def n_unlabeled(self) -> int:
        return len(self.unlabeled_alpha)

    @property
    def alpha_shape(self) -> tuple:
        """Shape of one sample of α, e.g. ``(d,)`` or ``(frames, 3, H, W)``."""
        return self.labeled_alpha.shape[1:]

    @property
    def beta_shape(self) -> tuple:
        return self.unlabeled_beta.shape[1:]

    @property
    def alpha_dim(self) -> int:
        return self.labeled_alpha.shape[1]

    @property
    def beta_dim(self) -> int:
        return self.unlabeled_beta.shape[1]

    # ---- the multimodal views a student consumes ---------------------------------------------
    @property
    def unlabeled_multimodal(self) -> np.ndarray:
        """(n_unlabeled, d_alpha + d_beta): α and β of D_u side by side."""
        return np.hstack([self.unlabeled_alpha, self.unlabeled_beta])

    @property
    def test_multimodal(self) -> np.ndarray:
        """(n_test, d_alpha + d_beta): α and β of the test set side by side."""
        return np.hstack([self.test_alpha, self.test_beta])

    @property
    def split_id(self) -> str:
        """A short content hash of every part that can change a result: D_l, D_u (α, β and the true
        labels the supervised bound trains on and diagnostics score), the validation set (model
        selection), the test set and K. Each part enters with its name, shape and dtype, an absent
        part as such: two splits with the same id hold the same numbers. A part held as rows of a prepared
        cache (``LazyRows``) enters by its ``content_id`` (the cache's content digests and array checksums, the
        rows and the conversion) instead of its bytes, so the id of a split of 200k clips costs no pass over
        them."""
        h = hashlib.sha256(f"n_classes={self.n_classes};".encode())
        for name in SPLIT_PARTS:
            a = getattr(self, name)
            if a is None:
                h.update(f"{name}:none;".encode())
                continue
            if getattr(a, "lazy_rows", False):
                h.update(f"{name}:lazy:{a.content_id};".encode())
                continue
            a = np.ascontiguousarray(a)
            h.update(f"{name}:{a.dtype.str}{a.shape};".encode())
            h.update(a.tobytes())
        return h.hexdigest()[:12]

    def __repr__(self) -> str:
        return (f"MultimodalSplit(name={self.name!r}, n_classes={self.n_classes}, "
                f"n_labeled={self.n_labeled}, n_unlabeled={self.n_unlabeled}, n_test={len(self.test_labels)}, "
                f"d_alpha={self.alpha_dim}, d_beta={self.beta_dim})")
