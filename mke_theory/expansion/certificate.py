"""Proved lower bounds on the (a, c)-expansion factor: exact enumeration and a spectral bound.

``brute_force_expansion`` enumerates every admissible set of classes of at most
``BRUTE_FORCE_MAX_VERTICES`` samples (the exact minimum); ``certified_expansion`` uses it on small
classes and a Cauchy–Schwarz bound on the class subgraph's spectrum (``_spectral_certified``) on
larger ones, so its value is a **lower** bound that, with ``worst_case_expansion``'s upper bound,
brackets the true minimum. numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from mke_theory.core.checks import check_labels, check_range
from mke_theory.core.errors import MKEError
from mke_theory.expansion.graph import _check_a, _check_graph, _class_graph, _size_limits

BRUTE_FORCE_MAX_VERTICES = 16  # 2**16 subsets per class: exact enumeration stays well under a second


def brute_force_expansion(graph, labels, a: float = 0.5, min_mass: float = 0.0) -> float:
    """The exact minimum certified ratio over all admissible sets, by enumeration.

    ``min_i min {c(V) : V ⊆ C_i, min_mass <= |V| / |C_i| <= a}`` with ``c(V) = |N(V) ∩ C_i| / |V|``,
    or ``+inf`` when ``N(V) ⊇ C_i`` (Wei et al. 2021, Sec. 3). All ``2^{|C_i|}`` subsets of
    each class are enumerated as bit masks, so each class may hold at most
    ``BRUTE_FORCE_MAX_VERTICES = 16`` samples.

    Parameters
    ----------
    graph : (n, n) adjacency (sparse or dense); the diagonal is taken as set.
    labels : (n,) int class indices.
    a : the largest mass of V, in (0, 1].
    min_mass : the smallest mass of V, in [0, a].

    Returns
    -------
    float c, ``+inf`` when no class has an admissible set.
    """
    labels = check_labels("labels", labels)
    graph = _check_graph(graph, labels.shape[0])
    a = _check_a(a)
    min_mass = float(check_range("min_mass", min_mass, 0, a))
    classes, counts = np.unique(labels, return_counts=True)
    if counts.size and counts.max() > BRUTE_FORCE_MAX_VERTICES:
        worst = int(classes[np.argmax(counts)])
        raise MKEError(
            f"brute_force_expansion supports at most {BRUTE_FORCE_MAX_VERTICES} samples per class "
            f"(BRUTE_FORCE_MAX_VERTICES); class {worst} has {counts.max()}"
        )
    best = float("inf")
    for i, n_i in zip(classes.tolist(), counts.tolist()):
        smallest, largest = _size_limits(n_i, a, min_mass)
        if largest < smallest:
            continue
        sub = _class_graph(graph, np.flatnonzero(labels == i)).toarray()  # (n_i, n_i) bool
        neighbour_bits = (sub.astype(np.int64) << np.arange(n_i)).sum(axis=1)  # (n_i,) N(v) as a bit mask
        reached = np.zeros(1 << n_i, dtype=np.int64)  # N(S) as a bit mask for every subset S
        for bit in range(n_i):
            reached[1 << bit: 2 << bit] = reached[: 1 << bit] | neighbour_bits[bit]
        subsets = np.arange(1 << n_i, dtype=np.int64)
        size = _popcount(subsets)
        covered = _popcount(reached)
        admissible = (size >= smallest) & (size <= largest)
        ratios = np.where(covered >= n_i, np.inf, covered / np.maximum(size, 1))
        best = min(best, float(ratios[admissible].min()))
    return best


def certified_expansion(graph, labels, a: float) -> float:
    """A proved **lower** bound on the (a, c)-expansion factor of the sample graph.

    For every class i and every ``V ⊆ C_i`` with ``|V| <= a |C_i|`` the certified ratio (the largest c with
    ``P_i(N(V)) >= min{c P_i(V), 1}``) is at least the value returned; with ``worst_case_expansion``'s
    upper bound it brackets the true minimum. Classes of at most ``BRUTE_FORCE_MAX_VERTICES`` samples
    are enumerated (exact). Larger ones use a spectral argument on the class subgraph A (0/1, self-loops,
    symmetric): with ``s = |V|``, ``e = Σ_{v∈V} deg(v) = Σ_{u∈N(V)} (A 1_V)_u`` and Cauchy–Schwarz,

        |N(V)| ≥ e² / (1_Vᵀ A² 1_V),   1_Vᵀ A² 1_V ≤ λ₁² p + λ₂² (s − p),   p = (1_V · v₁)²,

    where λ₁ is A's Perron eigenvalue with unit eigenvector v₁, λ₂² the second largest squared
    eigenvalue, ``e >=`` the sum of the s smallest degrees and ``p <= min(s, (sum of the s largest |v₁|)²)``.
    A size s whose bound reaches ``|C_i|`` certifies every set of that size (ratio +inf); otherwise the
    ratio is at least ``max(1, bound / s)``. Exact for complete class graphs (every set covers its class).

    Parameters
    ----------
    graph : (n, n) symmetric adjacency (sparse or dense); the diagonal is taken as set.
    labels : (n,) int class indices.
    a : the largest mass of V, in (0, 1].

    Returns
    -------
    float c ≥ 1, ``+inf`` when no class has an admissible set or every admissible set covers its class.
    """
    labels = check_labels("labels", labels)
    graph = _check_graph(graph, labels.shape[0])
    a = _check_a(a)
    best = float("inf")
    for i in np.unique(labels).tolist():
        members = np.flatnonzero(labels == i)
        n_i = members.size
        largest = _size_limits(n_i, a, 0.0)[1]
        if largest < 1:
            continue
        sub = _class_graph(graph, members)
        if n_i <= BRUTE_FORCE_MAX_VERTICES:
            best = min(best, brute_force_expansion(sub, np.zeros(n_i, np.int64), a=a))
            continue
        best = min(best, _spectral_certified(sub.toarray(), largest))
    return best


def _spectral_certified(adjacency: np.ndarray, largest: int) -> float:
    """``certified_expansion``'s spectral lower bound for one class: dense (n_i, n_i) 0/1 adjacency with
    self-loops, sets of 1 … ``largest`` vertices."""
    dense = np.asarray(adjacency, dtype=np.float64)
    n_i = dense.shape[0]
    values, vectors = scipy.linalg.eigh(dense)  # the check's labeled classes are small: dense is fine
    top = int(np.argmax(np.abs(values)))
    lam1_sq = values[top] ** 2
    lam2_sq = float(np.max(np.delete(values, top) ** 2)) if n_i > 1 else 0.0
    s = np.arange(1, largest + 1, dtype=np.float64)
    edges = np.cumsum(np.sort(dense.sum(axis=1)))[:largest]  # e >= the s smallest degrees
    p = np.minimum(s, np.cumsum(np.sort(np.abs(vectors[:, top]))[::-1])[:largest] ** 2)
    covered = edges ** 2 / np.maximum(lam1_sq * p + lam2_sq * (s - p), 1e-300)  # lower bound on |N(V)|
    return float(np.where(covered >= n_i - 1e-9, np.inf, np.maximum(1.0, covered / s)).min())


def _popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each entry of a nonnegative int64 array below 2**32."""
    x = x.astype(np.uint64)
    count = np.zeros(x.shape, dtype=np.int64)
    for shift in range(0, 32, 8):
        count += _BYTE_POPCOUNT[((x >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.intp)]
    return count


_BYTE_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.int64)
