"""Pseudo-labellers with a controlled error rate η: stand-ins for a teacher's pseudo labels.

Three models of how a unimodal teacher on α errs:

- ``symmetric_noise``: each label is replaced, with probability η, by one of the other K − 1
  classes drawn uniformly (uniform label noise).
- ``class_conditional_noise``: the pseudo label is drawn from row ``y`` of a row-stochastic
  transition matrix ``T[i, j] = P(pseudo = j | true = i)``; ``pair_transition`` builds the
  matrix that moves class ``i`` to ``(i + 1) % K`` (pair flipping).
- ``structured_noise``: "teacher-like" errors, placed on the samples whose true class is least
  probable given α under a linear discriminant model, each moved to its most probable wrong
  class; the error count is exact.

Every function returns a new ``int64`` array and never modifies its input; randomness enters
only through ``random_state``. ``make_pseudo_labels(model, labels, eta, ...)`` dispatches by name.
"""

from __future__ import annotations

import numpy as np

from mke_theory.core.checks import (
    RandomState,
    check_choice,
    check_features,
    check_labels,
    check_random_state,
    check_range,
)
from mke_theory.core.errors import MKEError

__all__ = [
    "NOISE_MODELS",
    "class_conditional_noise",
    "make_pseudo_labels",
    "noise_rate",
    "pair_transition",
    "structured_noise",
    "symmetric_noise",
]


def _check_eta(eta) -> float:
    return float(check_range("eta", eta, 0, 1))


def _default_n_classes(labels: np.ndarray, n_classes: int | None) -> int:
    """``n_classes`` checked against the labels, or ``labels.max() + 1``; at least 2 either way."""
    if n_classes is None:
        n_classes = int(labels.max()) + 1 if labels.size else 0
        if n_classes < 2:
            raise MKEError(
                f"n_classes must be >= 2, but labels.max() + 1 = {n_classes}; pass n_classes explicitly"
            )
        return n_classes
    check_range("n_classes", n_classes, 2, None, integer=True)
    check_labels("labels", labels, n_classes)
    return int(n_classes)


def symmetric_noise(
    labels,
    eta: float,
    n_classes: int | None = None,
    random_state: RandomState = None,
) -> np.ndarray:
    """Replace each label, with probability ``eta``, by a class drawn uniformly from the other K − 1.

    ``P(pseudo = j | true = i) = 1 - eta`` for ``j = i`` and ``eta / (K - 1)`` otherwise. Which
    samples are flipped does not depend on the label values, so for one seed the flipped set
    (and the error rate) is unchanged by renaming the classes.

    Parameters
    ----------
    labels : (n_samples,) int array of true class indices in ``[0, n_classes)``.
    eta : flip probability, in [0, 1]. ``eta = 0`` returns the labels, ``eta = 1`` changes all.
    n_classes : number of classes K, at least 2; defaults to ``labels.max() + 1``.
    random_state : seed or ``np.random.Generator``.

    Returns
    -------
    (n_samples,) int64 array of pseudo labels.
    """
    labels = check_labels("labels", labels)
    eta = _check_eta(eta)
    n_classes = _default_n_classes(labels, n_classes)
    rng = check_random_state(random_state)
    flip = rng.random(labels.shape[0]) < eta  # (n,) uniform on [0, 1): eta = 1 flips all
    offset = rng.integers(1, n_classes, size=labels.shape[0])  # (n,) uniform on 1 .. K-1
    return np.where(flip, (labels + offset) % n_classes, labels).astype(np.int64)


def _check_transition(transition) -> np.ndarray:
    transition = np.asarray(transition, dtype=np.float64)
    if transition.ndim != 2 or transition.shape[0] != transition.shape[1]:
        raise MKEError(f"transition must be a square (K, K) matrix, got shape {transition.shape}")
    if transition.shape[0] < 2:
        raise MKEError(f"transition must cover at least 2 classes, got shape {transition.shape}")
    if not np.all(np.isfinite(transition)) or np.any(transition < 0):
        raise MKEError("transition must hold finite nonnegative probabilities")
    row_sums = transition.sum(axis=1)
    if np.any(np.abs(row_sums - 1.0) > 1e-8):
        worst = int(np.argmax(np.abs(row_sums - 1.0)))
        raise MKEError(f"transition rows must sum to 1 (row-stochastic), row {worst} sums to {row_sums[worst]!r}")
    return transition


def class_conditional_noise(labels, transition, random_state: RandomState = None) -> np.ndarray:
    """Draw each pseudo label from the row of its true class: ``P(pseudo = j | true = i) = T[i, j]``.

    The expected error rate is ``sum_i (n_i / n) (1 - T[i, i])``.

    Parameters
    ----------
    labels : (n_samples,) int array of true class indices in ``[0, K)``.
    transition : (K, K) row-stochastic matrix (nonnegative, rows summing to 1 within 1e-8).
    random_state : seed or ``np.random.Generator``.

    Returns
    -------
    (n_samples,) int64 array of pseudo labels.
    """
    transition = _check_transition(transition)
    n_classes = transition.shape[0]
    labels = check_labels("labels", labels, n_classes)
    rng = check_random_state(random_state)
    cumulative = np.cumsum(transition, axis=1)  # (K, K)
    cumulative[:, -1] = 1.0  # guard against round-off: u < 1 always lands in some class
    u = rng.random(labels.shape[0])  # (n,)
    # The pseudo label is the first j with u < cumulative[y, j], i.e. the count of cumulative <= u.
    pseudo = (u[:, None] >= cumulative[labels]).sum(axis=1)  # (n,)
    return np.minimum(pseudo, n_classes - 1).astype(np.int64)


def pair_transition(n_classes: int, eta) -> np.ndarray:
    """The (K, K) transition matrix that moves class ``i`` to ``(i + 1) % K`` with probability η.

    Parameters
    ----------
    n_classes : number of classes K, at least 2.
    eta : a flip probability in [0, 1] shared by every class, or a (K,) array of per-class rates.

    Returns
    -------
    (K, K) row-stochastic array with ``T[i, i] = 1 - eta_i`` and ``T[i, (i + 1) % K] = eta_i``.
    """
    check_range("n_classes", n_classes, 2, None, integer=True)
    rates = np.asarray(eta, dtype=np.float64)
    if rates.ndim == 0:
        rates = np.full(n_classes, _check_eta(eta))
    elif rates.shape != (n_classes,):
        raise MKEError(f"eta must be a number or an array of shape ({n_classes},), got shape {rates.shape}")
    else:
        for i, rate in enumerate(rates):
            check_range(f"eta[{i}]", float(rate), 0, 1)
    classes = np.arange(n_classes)
    transition = np.zeros((n_classes, n_classes))
    transition[classes, classes] = 1.0 - rates
    transition[classes, (classes + 1) % n_classes] += rates
    return transition


def _lda_log_posterior(alpha: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(n_samples, n_present) log P(class | α) of linear discriminant analysis fitted on (α, labels).

    Gaussian class-conditionals with the class means, one pooled covariance (plus a ridge of
    1e-6 times its mean variance) and the class frequencies as priors.
    """
    n, d = alpha.shape
    index = np.searchsorted(classes, labels)  # (n,) position of each label among the present classes
    counts = np.bincount(index, minlength=classes.size)  # (C,)
    means = np.zeros((classes.size, d))
    np.add.at(means, index, alpha)
    means /= counts[:, None]  # (C, d)
    centred = alpha - means[index]  # (n, d)
    covariance = centred.T @ centred / n  # (d, d)
    mean_variance = np.trace(covariance) / d
    covariance += (1e-6 * mean_variance if mean_variance > 0 else 1.0) * np.eye(d)
    precision_means = np.linalg.solve(covariance, means.T)  # (d, C)
    logits = alpha @ precision_means - 0.5 * np.sum(means.T * precision_means, axis=0) + np.log(counts / n)  # (n, C)
    logits -= logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def structured_noise(labels, alpha, eta: float, random_state: RandomState = None) -> np.ndarray:
    """Teacher-like errors: flip the ``round(eta * n)`` samples whose true class α explains worst.

    A linear discriminant model (Gaussian classes with one shared covariance, small ridge) is
    fitted on ``(alpha, labels)``; the ``m = floor(eta * n + 1/2)`` samples with the lowest
    posterior probability of their true class given α (ties broken at random) are moved to their
    most probable wrong class. The error rate is exactly ``m / n``. These are the errors a
    teacher that sees α alone makes first: with two classes and ``eta`` up to the discriminant's
    training error, the flipped samples are exactly ones it misclassifies and their pseudo labels
    are its predictions (with more classes, every sample whose true-class posterior is below
    ``1 / K`` is one it misclassifies, so the same holds approximately). Note that the lowest
    true-class posterior marks samples deep on the wrong side of the α boundary before those near
    it, so the flips are not the samples of smallest |margin|.

    Parameters
    ----------
    labels : (n_samples,) int array of true class indices; at least two classes must occur.
    alpha : (n_samples, d_alpha) finite features of modality α.
    eta : fraction of samples to flip, in [0, 1].
    random_state : seed or ``np.random.Generator``; used only to break ties.

    Returns
    -------
    (n_samples,) int64 array of pseudo labels; only classes that occur in ``labels`` are used.
    """
    labels = check_labels("labels", labels)
    eta = _check_eta(eta)
    alpha = check_features("alpha", alpha, labels.shape[0])
    rng = check_random_state(random_state)
    classes = np.unique(labels)
    if classes.size < 2:
        raise MKEError(f"structured_noise needs at least two classes in labels, found {classes.size}")
    n = labels.shape[0]
    log_posterior = _lda_log_posterior(alpha, labels, classes)  # (n, C)
    index = np.searchsorted(classes, labels)  # (n,)
    true_log_posterior = log_posterior[np.arange(n), index]  # (n,)
    n_flip = int(np.floor(eta * n + 0.5))
    order = np.lexsort((rng.random(n), true_log_posterior))  # lowest true-class posterior first
    flipped = order[:n_flip]
    wrong = log_posterior[flipped].copy()  # (n_flip, C)
    wrong[np.arange(n_flip), index[flipped]] = -np.inf
    pseudo = labels.astype(np.int64, copy=True)
    pseudo[flipped] = classes[np.argmax(wrong, axis=1)]
    return pseudo


def noise_rate(labels, pseudo_labels) -> float:
    """Fraction of samples whose pseudo label differs from the true label.

    Parameters
    ----------
    labels, pseudo_labels : (n_samples,) int arrays of class indices, ``n_samples >= 1``.
    """
    labels = check_labels("labels", labels)
    pseudo_labels = check_labels("pseudo_labels", pseudo_labels)
    if labels.shape != pseudo_labels.shape:
        raise MKEError(f"pseudo_labels has {pseudo_labels.shape[0]} entries but labels has {labels.shape[0]}")
    if labels.size == 0:
        raise MKEError("labels must hold at least one entry")
    return float(np.mean(labels != pseudo_labels))


NOISE_MODELS = {
    "symmetric": symmetric_noise,
    "class-conditional": class_conditional_noise,
    "structured": structured_noise,
}


def make_pseudo_labels(
    model: str,
    labels,
    eta: float,
    alpha=None,
    n_classes: int | None = None,
    random_state: RandomState = None,
) -> np.ndarray:
    """Pseudo labels with error rate ``eta`` from the noise model called ``model``.

    Parameters
    ----------
    model : one of ``NOISE_MODELS``: ``"symmetric"``, ``"class-conditional"`` (pair flipping,
        ``pair_transition(K, eta)``) or ``"structured"`` (needs ``alpha``).
    labels : (n_samples,) int array of true class indices.
    eta : error rate, in [0, 1].
    alpha : (n_samples, d_alpha) features of α; required by ``"structured"`` only.
    n_classes : number of classes K; defaults to ``labels.max() + 1``.
    random_state : seed or ``np.random.Generator``.

    Returns
    -------
    (n_samples,) int64 array of pseudo labels.
    """
    check_choice("model", model, tuple(NOISE_MODELS))
    labels = check_labels("labels", labels)
    _check_eta(eta)
    if model == "symmetric":
        return symmetric_noise(labels, eta, n_classes=n_classes, random_state=random_state)
    if model == "class-conditional":
        k = _default_n_classes(labels, n_classes)
        return class_conditional_noise(labels, pair_transition(k, eta), random_state=random_state)
    if alpha is None:
        raise MKEError("alpha is required by the 'structured' noise model; pass the α features of the samples")
    if n_classes is not None:
        _default_n_classes(labels, n_classes)
    return structured_noise(labels, alpha, eta, random_state=random_state)
