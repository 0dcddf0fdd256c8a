"""Graphs of known expansion, for tests: the n-cycle (exact) and random regular expanders (w.h.p.).
numpy and scipy only."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mke_theory.core.checks import RandomState, check_random_state, check_range
from mke_theory.core.errors import MKEError


def cycle_graph(n: int) -> sp.csr_matrix:
    """The n-cycle with self-loops: vertex j is adjacent to ``j - 1``, ``j`` and ``j + 1`` (mod n).

    Its expansion is known exactly: a set V of m vertices, ``1 <= m <= n - 3``, split into k >= 1
    arcs by k gaps, has ``|N(V)| = m + Σ_gaps min(gap, 2) >= m + 2``, with equality for one arc.
    So for one class on the cycle and ``1 <= m* = floor(a n) <= n - 3`` the minimum certified ratio
    over ``|V| <= a n`` is ``(m* + 2) / m*``.

    Parameters
    ----------
    n : number of vertices, at least 3.

    Returns
    -------
    (n, n) symmetric boolean CSR.
    """
    check_range("n", n, 3, None, integer=True)
    j = np.arange(n)
    rows = np.concatenate([j, j, j])
    cols = np.concatenate([j, (j + 1) % n, (j - 1) % n])
    graph = sp.csr_matrix((np.ones(rows.size, dtype=bool), (rows, cols)), shape=(n, n))
    graph.sort_indices()
    return graph


def expander_graph(n: int, degree: int, random_state: RandomState = None) -> sp.csr_matrix:
    """A random ``degree``-regular simple graph (plus self-loops): a good vertex expander w.h.p.

    The union of ``degree / 2`` random Hamiltonian cycles (consecutive vertices of random
    permutations) has every degree equal to ``degree`` but may repeat an edge; repeated edges are
    removed by random degree-preserving double-edge swaps. Random regular graphs are close to
    Ramanujan w.h.p. (Friedman 2008: second adjacency eigenvalue ``<= 2 sqrt(degree - 1) + o(1)``),
    and Tanner's bound (Tanner 1984; Hoory, Linial, Wigderson 2006, Thm 4.15) turns that into
    vertex expansion: ``|Γ(S)| >= |S| / (λ²/d² + (1 - λ²/d²) |S| / n)``.

    Parameters
    ----------
    n : number of vertices, larger than ``degree``.
    degree : even degree, at least 2.
    random_state : seed or ``np.random.Generator``.

    Returns
    -------
    (n, n) symmetric boolean CSR with ``degree`` off-diagonal entries per row and the diagonal set.
    """
    check_range("degree", degree, 2, None, integer=True)
    if degree % 2:
        raise MKEError(f"degree must be even (a union of degree / 2 cycles), got {degree}")
    check_range("n", n, degree + 1, None, integer=True)
    rng = check_random_state(random_state)
    edges = []
    for _ in range(degree // 2):
        cycle = rng.permutation(n)
        edges.append(np.stack([cycle, np.roll(cycle, -1)], axis=1))
    edges = np.sort(np.concatenate(edges), axis=1)  # (n degree / 2, 2), u < v
    edges = _remove_repeated_edges(edges, rng)
    rows = np.concatenate([edges[:, 0], edges[:, 1], np.arange(n)])
    cols = np.concatenate([edges[:, 1], edges[:, 0], np.arange(n)])
    graph = sp.csr_matrix((np.ones(rows.size, dtype=bool), (rows, cols)), shape=(n, n))
    graph.sort_indices()
    return graph


def _remove_repeated_edges(edges: np.ndarray, rng: np.random.Generator, max_tries: int = 100_000) -> np.ndarray:
    """Degree-preserving double-edge swaps ``(u, v), (x, y) -> (u, x), (v, y)`` until no edge repeats."""
    edges = [tuple(e) for e in edges.tolist()]
    count: dict[tuple[int, int], int] = {}
    for e in edges:
        count[e] = count.get(e, 0) + 1
    key = lambda p, q: (p, q) if p < q else (q, p)  # noqa: E731
    for _ in range(max_tries):
        bad = [j for j, e in enumerate(edges) if count[e] > 1]
        if not bad:
            return np.asarray(edges, dtype=np.int64)
        j = bad[int(rng.integers(len(bad)))]
        k = int(rng.integers(len(edges)))
        (u, v), (x, y) = edges[j], edges[k]
        if rng.random() < 0.5:
            x, y = y, x
        first, second = key(u, x), key(v, y)
        if len({u, v, x, y}) < 4 or count.get(first, 0) or count.get(second, 0):
            continue
        for e in (edges[j], edges[k]):
            count[e] -= 1
        for e in (first, second):
            count[e] = count.get(e, 0) + 1
        edges[j], edges[k] = first, second
    raise RuntimeError("could not remove repeated edges; increase n or lower degree")
