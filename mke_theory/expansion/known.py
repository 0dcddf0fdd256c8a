"""Graphs of known expansion, for tests: the n-cycle, circulant graphs, complete bipartite graphs, cliques with
pendants and cocktail-party graphs (exact), and random regular expanders (w.h.p.). numpy and scipy only."""

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


def _symmetric(n: int, rows, cols) -> sp.csr_matrix:
    """The (n, n) boolean CSR with edges ``rows[j] – cols[j]`` both ways and the diagonal set."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    j = np.arange(n)
    graph = sp.csr_matrix((np.ones(2 * rows.size + n, dtype=bool), (np.concatenate([rows, cols, j]),
                                                                     np.concatenate([cols, rows, j]))), shape=(n, n))
    graph.sum_duplicates()
    graph.sort_indices()
    return graph


def circulant_graph(n: int, k: int) -> sp.csr_matrix:
    """The circulant graph C_n(1, …, k) with self-loops: vertex j is adjacent to ``j ± 1, …, j ± k`` (mod n).

    Known exactly for ``1 <= m* = floor(a n)`` and ``m* + 2k < n``: among sets of m ≤ m* vertices an arc of m*
    consecutive vertices reaches the fewest per vertex, ``|N(V)| = m* + 2k``, so the minimum certified ratio is
    ``(m* + 2k) / m*`` (every set of m vertices reaches at least ``m + 2k`` while it misses one: the k vertices
    beyond each end of its widest gap's complement; k = 1 is ``cycle_graph``).
    """
    check_range("k", k, 1, None, integer=True)
    check_range("n", n, 2 * k + 2, None, integer=True)
    j = np.arange(n)
    return _symmetric(n, np.concatenate([j] * k), np.concatenate([(j + d) % n for d in range(1, k + 1)]))


def bipartite_graph(m: int) -> sp.csr_matrix:
    """The complete bipartite graph K_{m,m} with self-loops: vertices ``0 … m−1`` on one side, ``m … 2m−1``.

    Known exactly: a set with vertices on both sides reaches everything; s ≤ m vertices of one side reach themselves
    and the other side, ``|N(V)| = s + m``. For ``1 <= m* = floor(a · 2m) < m`` the minimum certified ratio is
    ``(m* + m) / m*``. Its adjacency has the eigenvalues 1 + m, 1 − m and 1: the second largest in absolute value
    is negative, which a bound reading the signed second eigenvalue gets wrong.
    """
    check_range("m", m, 2, None, integer=True)
    left, right = np.repeat(np.arange(m), m), np.tile(np.arange(m, 2 * m), m)
    return _symmetric(2 * m, left, right)


def clique_with_pendants(q: int, pendants: int) -> sp.csr_matrix:
    """A clique of ``q`` vertices (``0 … q−1``) with ``pendants <= q`` pendant vertices (``q …``), pendant j
    attached to clique vertex j only, self-loops set.

    Known exactly for ``1 <= m* = floor(a n) <= pendants`` (n = q + pendants, ``m* <= n − 3`` so that no set
    reaches all): the pendants' sets are the worst, ``|N(V)| = 2|V|``, so the minimum certified ratio is 2; any set
    with a clique vertex reaches the whole clique. A bound that treats every vertex like the clique's is too high.
    """
    check_range("q", q, 2, None, integer=True)
    check_range("pendants", pendants, 1, q, integer=True)
    clique = np.array([(u, v) for u in range(q) for v in range(u + 1, q)], dtype=np.int64).reshape(-1, 2)
    rows = np.concatenate([clique[:, 0], np.arange(q, q + pendants)])
    cols = np.concatenate([clique[:, 1], np.arange(pendants)])
    return _symmetric(q + pendants, rows, cols)


def cocktail_party_graph(n: int) -> sp.csr_matrix:
    """The cocktail-party graph with self-loops: n (even) vertices in pairs ``2j, 2j + 1``, each adjacent to every
    vertex but its partner.

    Known exactly: one vertex reaches all but its partner, ``|N(V)| = n − 1``; two or more reach everything. For
    ``floor(a n) >= 1`` the minimum certified ratio is ``n − 1``, reached by single vertices: a dense graph whose
    worst sets reach all of their class but one vertex, which a bound that rounds "almost all" up to "all" misses.
    """
    check_range("n", n, 4, None, integer=True)
    if n % 2:
        raise MKEError(f"n must be even (vertices in partner pairs), got {n}")
    u, v = np.triu_indices(n, 1)
    keep = (u // 2) != (v // 2)
    return _symmetric(n, u[keep], v[keep])


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
