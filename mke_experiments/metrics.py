"""Every metric a task reports, in one place and torch-free (numpy arrays in, floats out).

A task names one of these as its ``evaluate`` hook: ``classification_metrics`` (accuracy and
macro-F1, the default), ``scores_metrics`` (top-1, top-5 and mAP from class scores, for event
classification with many classes) or ``segmentation_metrics`` (mIoU, pixel accuracy and per-class
IoU from one confusion matrix over the whole test set). Model selection after every epoch needs
only the task's primary metric: ``selection_score`` computes it with the function that reports it
(``SELECTABLE``, from predicted classes or class scores), and ``agreement`` the label-free score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mke_theory.core.errors import MKEError
from mke_theory.core.split import IGNORE


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose predicted class equals the label."""
    return float((np.asarray(pred) == np.asarray(labels)).mean())


def classification_metrics(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    """Accuracy and macro-F1 of ``(n,)`` predicted classes against ``(n,)`` labels."""
    from sklearn.metrics import f1_score  # imported here: scikit-learn's metrics cost ~1 s at start-up

    return dict(accuracy=accuracy(pred, labels),
                macro_f1=float(f1_score(labels, pred, average="macro", zero_division=0)))


def scores_metrics(scores: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    """Top-1 and top-5 accuracy and mAP (mean over the classes present of the average precision).

    ``scores`` are ``(n, K)`` class scores; ``labels`` are ``(n,)`` classes or ``(n, K)`` multi-hot
    rows (a top-k hit is any true class among the k best scores).
    """
    from sklearn.metrics import average_precision_score

    onehot = labels if labels.ndim == 2 else np.eye(n_classes)[labels]
    top = np.argsort(-scores, axis=1)[:, :5]
    hit = onehot[np.arange(len(scores))[:, None], top] > 0  # (n, 5)
    present = onehot.sum(axis=0) > 0
    ap = [average_precision_score(onehot[:, c], scores[:, c]) for c in np.flatnonzero(present)]
    return dict(top1=float(hit[:, 0].mean()), top5=float(hit.any(axis=1).mean()), map=float(np.mean(ap)))


def confusion_matrix(pred: np.ndarray, target: np.ndarray, n_classes: int, ignore: int | None = 0) -> np.ndarray:
    """(n_classes, n_classes) int64 pixel counts, row = true class, column = predicted class.

    Classes are the values 0 … n_classes-1. Pixels whose target equals ``ignore`` are left out (0, void,
    for NYU's cached labels, used with ``n_classes=41``; -1 or 255 for the ``labels - 1`` convention with
    40 classes). Sum the matrices of all test images, then call ``miou`` once: the mIoU of the whole test
    set, not a mean of per-image scores.

    Raises
    ------
    MKEError
        when the shapes differ or a (non-ignored) value lies outside 0 … n_classes-1.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise MKEError(f"confusion_matrix: pred {pred.shape} and target {target.shape} must have the same shape")
    pred, target = pred.ravel(), target.ravel()
    if ignore is not None:  # drop before widening to int64: a whole test set is tens of millions of pixels
        keep = target != ignore
        pred, target = pred[keep], target[keep]
    pred, target = pred.astype(np.int64), target.astype(np.int64)
    for label, values in (("target", target), ("pred", pred)):
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise MKEError(f"confusion_matrix: {label} holds {int(values.min())}..{int(values.max())}, outside "
                           f"0..{n_classes - 1} (and not the ignore value {ignore})")
    return np.bincount(target * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def miou(confusion: np.ndarray, ignore: int | None = None) -> tuple[float, np.ndarray, float]:
    """(mean IoU, per-class IoU, pixel accuracy) of a summed confusion matrix (row true, column predicted).

    IoU_c = TP_c / (TP_c + FP_c + FN_c). A class absent from both the ground truth and the predictions
    has IoU NaN and is left out of the mean (a class only predicted scores 0). ``ignore`` names a class
    to leave out of the mean as well, e.g. 0 (void) when the matrix covers the cached labels 0..40:
    its predictions on labeled pixels still count as errors of the true class and of the pixel accuracy.
    Pixel accuracy is trace / total; NaN for an empty matrix.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise MKEError(f"miou: confusion must be square, not {confusion.shape}")
    tp = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    if ignore is not None:
        iou[ignore] = np.nan
    total = confusion.sum()
    pixel_accuracy = float(tp.sum() / total) if total > 0 else float("nan")
    mean = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    return mean, iou, pixel_accuracy


def segmentation_metrics(pred: np.ndarray, labels: np.ndarray, n_classes: int,
                         class_names: Sequence[str] | None = None) -> dict:
    """mIoU, pixel accuracy and per-class IoU (``iou_<name>``) from one confusion matrix over all
    images; pixels labelled ``IGNORE`` (void) are left out."""
    mean_iou, per_class, pixel_accuracy = miou(confusion_matrix(pred, labels, n_classes, ignore=IGNORE))
    out = dict(miou=float(mean_iou), pixel_accuracy=float(pixel_accuracy))
    names = class_names if class_names is not None else [str(c) for c in range(n_classes)]
    out.update({f"iou_{name.replace(' ', '_')}": float(v) for name, v in zip(names, per_class) if not np.isnan(v)})
    return out


def top1_of_classes(pred: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of predicted classes: the class is the label, or one of the true classes of multi-hot
    ``labels`` (n, K). The value ``scores_metrics`` reports as ``top1`` (argmax of the scores)."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    hit = labels[np.arange(len(pred)), pred.astype(np.int64)] > 0 if labels.ndim == 2 else pred == labels
    return float(hit.mean())


# Every metric a task's ``evaluate`` reports that can select models, with what it is computed from: predicted
# classes (n, ...) or class scores (n, K). The one table model selection reads; ``Task`` refuses a primary
# metric that is not here, and a test checks each entry against the evaluation that reports it.
SELECTABLE = {
    "accuracy": ("classes", lambda pred, labels, k: accuracy(pred, labels)),
    "macro_f1": ("classes", lambda pred, labels, k: classification_metrics(pred, labels, k)["macro_f1"]),
    "top1": ("classes", lambda pred, labels, k: top1_of_classes(pred, labels)),
    "top5": ("scores", lambda scores, labels, k: scores_metrics(scores, labels, k)["top5"]),
    "map": ("scores", lambda scores, labels, k: scores_metrics(scores, labels, k)["map"]),
    "miou": ("classes", lambda pred, labels, k: segmentation_metrics(pred, labels, k)["miou"]),
    "pixel_accuracy": ("classes", lambda pred, labels, k: segmentation_metrics(pred, labels, k)["pixel_accuracy"]),
}


# How tables name each metric (as test-set percentages).
# the metrics that are the share of test samples a model gets right: a fixed value of them (an external
# teacher's) gets a Wilson interval over the test samples (mke_theory.results.stats.wilson_interval)
PROPORTIONS = ("accuracy", "top1", "top5")
LABELS = {"accuracy": "test accuracy (%)", "macro_f1": "test macro-F1 (%)", "top1": "top-1 accuracy (%)",
          "top5": "top-5 accuracy (%)", "map": "mAP (%)", "miou": "test mIoU (%)",
          "pixel_accuracy": "pixel accuracy (%)"}


def needs_scores(primary: str) -> bool:
    """Whether model selection on ``primary`` needs every class score rather than the predicted classes."""
    return selectable(primary)[0] == "scores"


def selectable(primary: str) -> tuple:
    if primary not in SELECTABLE:
        raise MKEError(f"no selection score for the primary metric {primary!r}; known: {', '.join(SELECTABLE)}")
    return SELECTABLE[primary]


def selection_score(pred, labels, primary: str, n_classes: int) -> float:
    """The task's primary metric (``Task.primary``) of predictions ``pred`` against ``labels`` (numpy arrays
    or CPU tensors): predicted classes (n, ...), or class scores (n, K) where ``needs_scores(primary)``. The
    number the full evaluation reports as that metric (``SELECTABLE``), computed by the same function."""
    compute = selectable(primary)[1]
    return compute(np.asarray(pred), np.asarray(labels), n_classes)


def agreement(pred, reference) -> float:
    """Share of entries (samples or pixels) where two tensors of predicted classes agree."""
    return int((pred == reference).sum()) / pred.numel()
