"""Robustness ``R_B(G)`` of a labelling and the separation ``μ = R_B(G*)`` of the true classes
(Wei et al. 2021, Sec. 3): on the sample's points (``robustness``, ``separation``) or by Monte-Carlo
draws from the balls (``robustness_mc``). numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree

from mke_theory.core.checks import RandomState, check_labels, check_random_state, check_range
from mke_theory.core.errors import MKEError
from mke_theory.expansion.graph import _check_points, _check_radius, _check_same_length


def robustness(predictions, points, radius: float) -> float:
    """Graph estimate of ``R_B(G) = P(∃ x' ∈ B(x) : G(x') != G(x))`` on the sample.

    The fraction of samples ``x_j`` with another sample ``x_k ∈ B(x_j)`` (``||x_j - x_k|| <= radius``)
    and ``predictions[k] != predictions[j]`` (Wei et al. 2021, Sec. 3). Only sample points stand
    in for the ball, so this is a lower bound on the true fraction of non-robust samples;
    ``robustness_mc`` draws points from the balls instead.

    Parameters
    ----------
    predictions : (n_samples,) int labels ``G(x_j)``.
    points : (n_samples, d) finite features.
    radius : the ball's radius r > 0.

    Returns
    -------
    float in [0, 1].
    """
    return _robustness(predictions, points, radius, "predictions")


def _robustness(predictions, points, radius: float, name: str) -> float:
    predictions = check_labels(name, predictions)
    points = _check_points(points)
    _check_same_length(name, predictions.shape[0], "points", points.shape[0])
    radius = _check_radius(radius)
    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")  # (m, 2)
    disagree = pairs[predictions[pairs[:, 0]] != predictions[pairs[:, 1]]]  # (m', 2)
    fragile = np.zeros(points.shape[0], dtype=bool)
    fragile[disagree.ravel()] = True
    return float(fragile.mean())


def separation(labels, points, radius: float) -> float:
    """The empirical separation ``μ = R_B(G*)``: ``robustness`` of the true labels.

    Wei et al. (2021, Sec. 3) ask ``R_B(G*) <= μ``; a small μ means the classes are
    separated by more than the perturbation radius. One class gives 0.

    Parameters
    ----------
    labels : (n_samples,) int true class indices.
    points : (n_samples, d) finite features.
    radius : the ball's radius r > 0.
    """
    return _robustness(labels, points, radius, "labels")


def overlap_separation(labels, points, radius: float) -> float:
    """The separation μ that a guarantee may use: ``separation`` over pairs of samples within **2r**.

    Two balls of radius r overlap when their centres lie up to 2r apart, so a ground truth ``G*`` that agrees
    with every sample label may switch class anywhere between two samples of different classes 2r apart, at a
    point inside both balls: both samples are then non-robust. ``separation`` at r counts only a sample of the
    other class inside the ball itself and reads 0 when every such pair lies between r and 2r apart, however
    many samples a threshold between them makes non-robust. Counting pairs within 2r charges every sample a
    consistent ``G*`` could make non-robust through the gap between two samples; Thm 4.3's bound is stated with
    this μ wherever the check calls label correction guaranteed (``mke_theory.diagnose``).

    Parameters
    ----------
    labels : (n_samples,) int true class indices.
    points : (n_samples, d) finite features.
    radius : the ball's radius r > 0 (pairs within 2r count).
    """
    return _robustness(labels, points, 2.0 * _check_radius(radius), "labels")


def robustness_mc(
    predict: Callable[[np.ndarray], np.ndarray],
    points,
    radius: float,
    n_draws: int = 16,
    random_state: RandomState = None,
) -> float:
    """Monte-Carlo estimate of ``R_B(G)`` for a classifier ``predict``.

    For every sample x, ``n_draws`` points are drawn uniformly from the ball ``B(x)`` (direction a
    normalised standard normal, distance ``r U^{1/d}``); x counts as non-robust if the prediction at
    any of them differs from ``predict(x)``. A finite number of draws can miss a disagreeing
    region, so per sample this is a lower bound on the indicator that ``R_B`` averages.

    Parameters
    ----------
    predict : callable mapping an (m, d) array to (m,) int labels; called once on the samples and
        once on all ``n_samples * n_draws`` drawn points.
    points : (n_samples, d) finite features.
    radius : the ball's radius r > 0.
    n_draws : points drawn per ball, at least 1.
    random_state : seed or ``np.random.Generator``.

    Returns
    -------
    float in [0, 1].
    """
    points = _check_points(points)
    radius = _check_radius(radius)
    check_range("n_draws", n_draws, 1, None, integer=True)
    if not callable(predict):
        raise MKEError("predict must be a callable mapping an (m, d) array to (m,) labels")
    rng = check_random_state(random_state)
    n, d = points.shape
    centre = check_labels("predict(points)", predict(points))
    _check_same_length("predict(points)", centre.shape[0], "points", n)
    direction = rng.standard_normal((n, n_draws, d))
    direction /= np.linalg.norm(direction, axis=2, keepdims=True)
    distance = radius * rng.random((n, n_draws, 1)) ** (1.0 / d)
    draws = (points[:, None, :] + distance * direction).reshape(n * n_draws, d)
    drawn = check_labels("predict(draws)", predict(draws))
    _check_same_length("predict(draws)", drawn.shape[0], "draws", n * n_draws)
    fragile = np.any(drawn.reshape(n, n_draws) != centre[:, None], axis=1)
    return float(fragile.mean())
