"""Neighbourhood graphs, (a, c)-expansion estimates, robustness R_B and separation μ on samples.

The expansion framework of self-training (Wei, Shen, Chen, Ma, ICLR 2021, arXiv 2010.03622),
with the transformations 𝒯 taken as small input-space perturbations:

- transformation ball ``B(x) = {x' : ||x' - x|| <= r}``;
- neighbourhood ``N(x) = {x' : B(x) ∩ B(x') != ∅} = {x' : ||x - x'|| <= 2r}``, and
  ``N(V) = ∪_{x ∈ V} N(x)``, which contains ``V``;
- the class-conditional distribution ``P_i`` has **(a, c)-expansion** if every ``V`` with
  ``P_i(V) <= a`` has ``P_i(N(V)) >= min{c · P_i(V), 1}`` (Wei et al. 2021, Sec. 3);
- **robustness** ``R_B(G) = P(∃ x' ∈ B(x) : G(x') != G(x))`` and **separation**
  ``μ = R_B(G*)`` for the ground-truth labelling ``G*`` (Wei et al. 2021, Sec. 3).

On a sample the distributions become empirical: ``P_i`` puts mass ``1 / |C_i|`` on each sample
point of class ``i`` (the set ``C_i``), and ``N`` becomes the neighbourhood graph of the sample
(an edge ``j – k`` iff ``||x_j - x_k|| <= 2r``; every vertex is its own neighbour). The worst
expansion of a graph is hard to compute exactly: ``brute_force_expansion`` enumerates all sets of
tiny classes, ``worst_case_expansion`` searches for bad sets (greedy growth, spectral sweeps,
connected components). Every set the search finds is a witness, so its ``c`` is an **upper
bound** on the true empirical expansion factor; ``1`` is a lower bound, because ``V ⊆ N(V)``.

Everything here needs numpy and scipy only.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh
from scipy.spatial import cKDTree

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
    "BRUTE_FORCE_MAX_VERTICES",
    "ExpansionEstimate",
    "brute_force_expansion",
    "certified_expansion",
    "choose_radius",
    "cycle_graph",
    "embed",
    "expander_graph",
    "expansion_ratio",
    "mistake_set_expansion",
    "neighbourhood_graph",
    "robustness",
    "robustness_mc",
    "separation",
    "worst_case_expansion",
]

BRUTE_FORCE_MAX_VERTICES = 16  # 2**16 subsets per class: exact enumeration stays well under a second
_DENSE_EIGEN_MAX = 200  # components up to this size get a dense eigendecomposition (LAPACK evr)
_MAX_SPECTRAL_COMPONENTS = 10  # the largest components of a class that get a spectral sweep


# ---- argument checks -------------------------------------------------------------------------------


def _check_radius(radius) -> float:
    return float(check_range("radius", radius, 0, np.inf, low_inclusive=False, high_inclusive=False))


def _check_a(a) -> float:
    return float(check_range("a", a, 0, 1, low_inclusive=False))


def _check_same_length(name_1: str, n_1: int, name_2: str, n_2: int) -> None:
    if n_1 != n_2:
        raise MKEError(f"{name_1} has {n_1} entries but {name_2} has {n_2}; they must describe the same samples")


def _check_graph(graph, n_samples: int | None = None, labels_name: str = "labels") -> sp.csr_matrix:
    """The graph as a boolean CSR matrix with every diagonal entry set (``x ∈ N(x)``)."""
    if not sp.issparse(graph):
        graph = np.asarray(graph)
        if graph.ndim != 2:
            raise MKEError(f"graph must be a square (n, n) adjacency matrix, got shape {graph.shape}")
    if graph.shape[0] != graph.shape[1]:
        raise MKEError(f"graph must be a square (n, n) adjacency matrix, got shape {graph.shape}")
    if n_samples is not None:
        _check_same_length(labels_name, n_samples, "graph", graph.shape[0])
    graph = sp.csr_matrix(graph, dtype=bool)
    graph = (graph + sp.identity(graph.shape[0], dtype=bool, format="csr")).tocsr()
    graph.sum_duplicates()
    graph.sort_indices()
    return graph


def _check_points(points, name: str = "points") -> np.ndarray:
    points = check_features(name, points)
    if points.shape[0] == 0:
        raise MKEError(f"{name} must hold at least one sample")
    return points


def _class_graph(graph: sp.csr_matrix, members: np.ndarray) -> sp.csr_matrix:
    """(n_i, n_i) boolean CSR: the graph restricted to the vertices ``members`` of one class."""
    sub = graph[members][:, members].tocsr()
    sub.sort_indices()
    return sub


def _certified_ratio(n_covered: int, size: int, class_size: int) -> float:
    """The largest c for which a set satisfies ``P_i(N(V)) >= min{c P_i(V), 1}``.

    ``|N(V) ∩ C_i| / |V|``, or ``+inf`` when ``N(V)`` covers all of ``C_i`` (then the condition
    holds for every c, since its right-hand side never exceeds 1).
    """
    return float("inf") if n_covered >= class_size else n_covered / size


def _size_limits(class_size: int, a: float, min_mass: float) -> tuple[int, int]:
    """Smallest and largest admissible ``|V|``: ``max(1, ceil(min_mass n_i)) <= |V| <= floor(a n_i)``."""
    largest = int(np.floor(a * class_size + 1e-9))
    smallest = max(1, int(np.ceil(min_mass * class_size - 1e-9)))
    return smallest, largest


# ---- spaces, radius and graph --------------------------------------------------------------------


def embed(alpha, beta=None, scale: str = "standardize", beta_weight: float = 1.0) -> np.ndarray:
    """The unimodal space (α only) or the multimodal space (α and β side by side).

    With ``scale="standardize"`` every feature is z-scored (a constant feature is only centred)
    and each modality block is divided by ``sqrt(its dimension)``, so each modality has unit total
    variance and a modality does not dominate distances by having more features. ``scale="none"``
    keeps the raw features. ``beta_weight`` then multiplies the β block.

    Parameters
    ----------
    alpha : (n_samples, d_alpha) finite features of modality α.
    beta : (n_samples, d_beta) finite features of modality β, or None for the unimodal space.
    scale : ``"standardize"`` or ``"none"``.
    beta_weight : factor on the β block, in [0, inf); 0 makes β irrelevant to distances.

    Returns
    -------
    (n_samples, d_alpha) or (n_samples, d_alpha + d_beta) float64 array.
    """
    check_choice("scale", scale, ("standardize", "none"))
    check_range("beta_weight", beta_weight, 0, np.inf, high_inclusive=False)
    blocks = [_check_points(alpha, "alpha")]
    if beta is not None:
        beta = _check_points(beta, "beta")
        _check_same_length("alpha", blocks[0].shape[0], "beta", beta.shape[0])
        blocks.append(beta)
    if scale == "standardize":
        scaled = []
        for block in blocks:
            centred = block - block.mean(axis=0)  # (n, d)
            std = centred.std(axis=0)  # (d,)
            centred /= np.where(std > 0, std, 1.0)
            scaled.append(centred / np.sqrt(block.shape[1]))
        blocks = scaled
    if beta is not None:
        blocks[1] = beta_weight * blocks[1]
    return np.hstack(blocks).astype(np.float64, copy=False)


def choose_radius(
    points,
    k: int = 10,
    quantile: float = 0.5,
    random_state: RandomState = None,
    max_points: int = 5000,
) -> float:
    """A data-driven perturbation radius r: the ``quantile`` of the k-th-neighbour distance.

    For each query point the distance to its k-th nearest other sample point is found (on all
    ``n_samples`` points, so the density is not thinned); ``r`` is the ``quantile`` of these
    distances. The ball ``B(x)`` (radius ``r``) then holds at least ``k`` other sample points for
    a fraction ``quantile`` of the points, in every space whatever its dimension, which is what
    makes μ comparable between the UM and the MM space; a neighbourhood ``N(x)`` (radius ``2r``)
    holds about ``k · 2^d`` of them.
    Only a random subset of at most ``max_points`` points is queried, for speed.

    Parameters
    ----------
    points : (n_samples, d) finite features, ``n_samples > k``.
    k : neighbour rank, at least 1 (the point itself is not counted).
    quantile : which quantile of the k-th-neighbour distances, in [0, 1].
    random_state : seed or ``np.random.Generator``; picks the queried subset when ``n_samples > max_points``.
    max_points : largest number of query points, at least 1.

    Returns
    -------
    float r > 0.
    """
    points = _check_points(points)
    check_range("k", k, 1, None, integer=True)
    check_range("quantile", quantile, 0, 1)
    check_range("max_points", max_points, 1, None, integer=True)
    n = points.shape[0]
    if n <= k:
        raise MKEError(f"k must be smaller than the number of points ({n}), got k={k}")
    rng = check_random_state(random_state)
    query = points if n <= max_points else points[rng.choice(n, size=max_points, replace=False)]
    distances, _ = cKDTree(points).query(query, k=k + 1)  # (m, k+1); column 0 is the point itself
    radius = float(np.quantile(distances[:, k], quantile))
    if not radius > 0:
        raise MKEError(
            f"the {quantile} quantile of the distance to the k={k}-th neighbour is 0 (repeated points); "
            "increase k or quantile"
        )
    return radius


def neighbourhood_graph(points, radius: float) -> sp.csr_matrix:
    """The sample's neighbourhood graph: edge ``j – k`` iff ``||x_j - x_k|| <= 2 radius``.

    ``N(x) = {x' : B(x) ∩ B(x') != ∅}`` for balls ``B`` of radius ``radius`` (Wei et al. 2021,
    Sec. 3). Self-loops are included, so the neighbourhood ``N(V)`` of a vertex set contains ``V``.

    Parameters
    ----------
    points : (n_samples, d) finite features.
    radius : the perturbation radius r > 0 (the ball B's radius, not the neighbourhood's).

    Returns
    -------
    (n_samples, n_samples) symmetric boolean ``scipy.sparse.csr_matrix``.
    """
    points = _check_points(points)
    radius = _check_radius(radius)
    n = points.shape[0]
    pairs = cKDTree(points).query_pairs(2.0 * radius, output_type="ndarray")  # (m, 2), i < j
    diagonal = np.arange(n)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1], diagonal])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0], diagonal])
    graph = sp.csr_matrix((np.ones(rows.size, dtype=bool), (rows, cols)), shape=(n, n))
    graph.sort_indices()
    return graph


# ---- expansion of given sets ------------------------------------------------------------------------


def expansion_ratio(graph, labels, subset, cls: int) -> float:
    """Empirical ``P_i(N(V)) / P_i(V) = |N(V) ∩ C_i| / |V|`` for a set V of class ``cls``.

    Parameters
    ----------
    graph : (n, n) adjacency (sparse or dense); the diagonal is taken as set.
    labels : (n,) int class indices; ``C_i = {j : labels[j] = cls}``.
    subset : (n,) bool mask or an int index array of V; nonempty, all of class ``cls``.
    cls : the class i.

    Returns
    -------
    float ratio, at least 1 (the plain ratio: ``+inf`` is never returned, see ``worst_case_expansion``).
    """
    labels = check_labels("labels", labels)
    graph = _check_graph(graph, labels.shape[0])
    check_range("cls", cls, 0, None, integer=True)
    n = labels.shape[0]
    subset = np.asarray(subset)
    if subset.dtype == bool:
        _check_same_length("subset", subset.shape[0], "labels", n)
        index = np.flatnonzero(subset)
    else:
        if subset.ndim != 1 or (subset.size and not np.issubdtype(subset.dtype, np.integer)):
            raise MKEError("subset must be a (n,) bool mask or a 1-d array of integer sample indices")
        index = np.unique(subset).astype(np.int64)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise MKEError(f"subset must hold sample indices in [0, {n}), got {index.min()} .. {index.max()}")
    if index.size == 0:
        raise MKEError("subset must hold at least one sample")
    if np.any(labels[index] != cls):
        raise MKEError(f"subset must hold samples of class cls={cls} only")
    covered = np.asarray(graph[index].sum(axis=0)).ravel() > 0  # (n,) N(V)
    return float(np.count_nonzero(covered & (labels == cls)) / index.size)


def mistake_set_expansion(graph, labels, pseudo_labels) -> dict:
    """Expansion of the pseudo-labeller's mistake sets ``V_i = {x ∈ C_i : pseudo(x) != i}``.

    These are the sets to which Wei et al. (2021, Thm 4.3) apply the expansion assumption.

    Parameters
    ----------
    graph : (n, n) adjacency (sparse or dense); the diagonal is taken as set.
    labels : (n,) int true class indices; at least two classes must occur.
    pseudo_labels : (n,) int pseudo labels.

    Returns
    -------
    dict with, for K = 1 + the largest class index in ``labels`` or ``pseudo_labels``:

    - ``"ratio"``: (K,) ``|N(V_i) ∩ C_i| / |V_i|``, nan where ``V_i`` is empty;
    - ``"certified"``: (K,) the same, but ``+inf`` where ``N(V_i)`` covers ``C_i`` (the largest c
      the set satisfies ``P_i(N(V)) >= min{c P_i(V), 1}`` with);
    - ``"mass"``: (K,) ``P_i(V_i) = |V_i| / |C_i|``, nan where ``C_i`` is empty;
    - ``"size"``: (K,) int ``|V_i|``;
    - ``"c"``: float, the smallest ``"ratio"`` over classes with nonempty ``V_i`` (``+inf`` if
      the pseudo labels make no mistake).
    """
    labels = check_labels("labels", labels)
    pseudo_labels = check_labels("pseudo_labels", pseudo_labels)
    _check_same_length("pseudo_labels", pseudo_labels.shape[0], "labels", labels.shape[0])
    graph = _check_graph(graph, labels.shape[0])
    if np.unique(labels).size < 2:
        raise MKEError("labels must hold at least two classes for mistake_set_expansion")
    n_classes = int(max(labels.max(), pseudo_labels.max())) + 1
    mistakes = labels != pseudo_labels  # (n,)
    ratio = np.full(n_classes, np.nan)
    certified = np.full(n_classes, np.nan)
    mass = np.full(n_classes, np.nan)
    size = np.zeros(n_classes, dtype=np.int64)
    for i in range(n_classes):
        members = labels == i
        n_i = int(np.count_nonzero(members))
        if n_i == 0:
            continue
        mistake_set = np.flatnonzero(members & mistakes)
        size[i] = mistake_set.size
        mass[i] = mistake_set.size / n_i
        if mistake_set.size == 0:
            continue
        reached = np.asarray(graph[mistake_set].sum(axis=0)).ravel() > 0  # (n,) N(V_i)
        n_covered = int(np.count_nonzero(reached & members))
        ratio[i] = n_covered / mistake_set.size
        certified[i] = _certified_ratio(n_covered, mistake_set.size, n_i)
    c = float(np.nanmin(ratio)) if np.any(size > 0) else float("inf")
    return {"ratio": ratio, "certified": certified, "mass": mass, "size": size, "c": c}


# ---- worst-case expansion: exact on tiny classes, searched on large ones ------------------------


@dataclass(frozen=True, eq=False)
class ExpansionEstimate:
    """The worst expansion found: an upper bound on the empirical (a, c)-expansion factor.

    Attributes
    ----------
    c : the smallest certified ratio found, ``min_i c_i``; ``+inf`` if no admissible set with a finite
        ratio was found.
    witness : (n_samples,) bool mask of a set V of class ``cls`` with ``|V| <= a |C_cls|`` whose
        certified ratio is ``c`` (all False when ``c`` is ``+inf``).
    cls : the class of the witness, or None.
    method : what found the witness: ``"components"`` (a union of connected components of the
        class subgraph, ratio 1), ``"greedy"``, ``"spectral"`` or ``"none"``.
    per_class : class index -> that class's smallest certified ratio found.
    exact : True when ``c`` is provably the minimum: ``c = 1`` (every ratio is at least 1) or no
        class has an admissible set size (``+inf``).
    """

    c: float
    witness: np.ndarray
    cls: int | None
    method: str
    per_class: dict = field(default_factory=dict)
    exact: bool = False


def _components_witness(sub: sp.csr_matrix, smallest: int, largest: int) -> np.ndarray | None:
    """Vertices of a union of (weakly) connected components with size in ``[smallest, largest]``.

    No edge leaves such a union, so ``N(V) ∩ C_i = V``: ratio 1, the least possible. Components
    are tried one by one, then as an ascending-size union; None if neither fits.
    """
    n_components, component = connected_components(sub, directed=True, connection="weak")
    if n_components < 2:
        return None
    sizes = np.bincount(component, minlength=n_components)  # (n_components,)
    fits = np.flatnonzero((sizes >= smallest) & (sizes <= largest))
    if fits.size:
        chosen = fits[np.argmin(sizes[fits])][None]
    else:
        ascending = np.argsort(sizes, kind="stable")
        totals = np.cumsum(sizes[ascending])
        first = int(np.searchsorted(totals, smallest))  # first union reaching the smallest size
        if first >= totals.size or totals[first] > largest:
            return None
        chosen = ascending[: first + 1]
    return np.flatnonzero(np.isin(component, chosen))


def _greedy_search(
    sub: sp.csr_matrix,
    sub_t: sp.csr_matrix,
    starts: np.ndarray,
    tie_keys: np.ndarray,
    smallest: int,
    largest: int,
) -> tuple[float, np.ndarray | None]:
    """Grow V from each start, adding the vertex that enlarges ``|N(V) ∩ C_i|`` the least.

    ``gain[u] = |N(u) \\ N(V)|`` is kept up to date incrementally (a vertex becoming covered lowers
    the gain of its in-neighbours by one) and the cheapest vertex is popped from a lazy heap, ties
    broken by ``tie_keys``; each run costs ``O(nnz log nnz)``. Growth stops at ``largest``
    vertices or when ``N(V)`` covers the class. Returns the best certified ratio seen over sizes
    in ``[smallest, largest]`` and its set (local indices).
    """
    n_i = sub.shape[0]
    out_neighbours = np.split(sub.indices, sub.indptr[1:-1])
    in_neighbours = np.split(sub_t.indices, sub_t.indptr[1:-1])
    out_neighbours = [a.tolist() for a in out_neighbours]
    in_neighbours = [a.tolist() for a in in_neighbours]
    degree = np.diff(sub.indptr).tolist()
    keys = tie_keys.tolist()
    initial_heap = sorted(zip(degree, keys, range(n_i)))  # a sorted list is a valid heap
    best_ratio, best_order, best_size = float("inf"), None, 0
    for start in starts.tolist():
        gain = list(degree)
        covered = bytearray(n_i)
        in_set = bytearray(n_i)
        heap = list(initial_heap)
        order = []
        n_covered = 0
        u = start
        while True:
            in_set[u] = 1
            order.append(u)
            for w in out_neighbours[u]:
                if not covered[w]:
                    covered[w] = 1
                    n_covered += 1
                    for x in in_neighbours[w]:
                        gain[x] -= 1
                        if not in_set[x]:
                            heapq.heappush(heap, (gain[x], keys[x], x))
            m = len(order)
            if m >= smallest:
                ratio = _certified_ratio(n_covered, m, n_i)
                if ratio < best_ratio:
                    best_ratio, best_order, best_size = ratio, order, m
                    if ratio <= 1.0:  # the least possible: nothing can beat it
                        return best_ratio, np.asarray(best_order[:best_size])
            if m >= largest or n_covered >= n_i:
                break
            while True:
                g, _, x = heapq.heappop(heap)
                if not in_set[x] and g == gain[x]:
                    break
            u = x
    return best_ratio, None if best_order is None else np.asarray(best_order[:best_size])


def _fiedler_embedding(adjacency: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray | None:
    """(m,) ``D^{-1/2} v_2`` for the Fiedler vector ``v_2`` of the normalised Laplacian of a connected graph.

    ``L = I - D^{-1/2} S D^{-1/2}`` with ``S`` the symmetrised adjacency without self-loops. Small
    graphs use a dense eigendecomposition; larger ones the second-largest eigenvector of
    ``I + D^{-1/2} S D^{-1/2}`` with the known top eigenvector ``D^{1/2} 1`` deflated (ARPACK,
    ``eigsh``; an unconverged vector still gives a valid sweep order). None if ARPACK fails.
    """
    m = adjacency.shape[0]
    symmetric = ((adjacency + adjacency.T) > 0).astype(np.float64)
    symmetric = (sp.triu(symmetric, 1) + sp.tril(symmetric, -1)).tocsr()  # (m, m) without self-loops
    degree = np.asarray(symmetric.sum(axis=1)).ravel()  # (m,) > 0 on a connected graph, m >= 2
    inv_sqrt = 1.0 / np.sqrt(degree)
    normalised = sp.diags(inv_sqrt) @ symmetric @ sp.diags(inv_sqrt)  # (m, m) D^{-1/2} S D^{-1/2}
    if m <= _DENSE_EIGEN_MAX:
        _, vectors = scipy.linalg.eigh(np.eye(m) - normalised.toarray(), subset_by_index=[0, 1], driver="evr")
        return inv_sqrt * vectors[:, 1]
    top = np.sqrt(degree) / np.linalg.norm(np.sqrt(degree))  # (m,) eigenvector of eigenvalue 1

    def matvec(x):
        x = np.ravel(x)
        return x + normalised @ x - 2.0 * top * (top @ x)

    operator = LinearOperator((m, m), matvec=matvec, dtype=np.float64)
    try:
        _, vectors = eigsh(operator, k=1, which="LA", v0=rng.standard_normal(m), tol=1e-6, maxiter=1000)
    except ArpackNoConvergence as error:
        if error.eigenvectors is None or error.eigenvectors.shape[1] == 0:
            return None
        vectors = error.eigenvectors
    except ArpackError:
        return None
    return inv_sqrt * vectors[:, 0]


def _sweep(adjacency_t: sp.csr_matrix, order: np.ndarray, class_size: int, smallest: int, largest: int):
    """Best certified ratio over the prefixes ``order[:m]``, ``smallest <= m <= largest``.

    Vertex w is covered by the prefix of length m iff its earliest in-neighbour in ``order`` sits
    at a position below m, so all prefix sizes are counted at once in ``O(nnz)``.
    """
    m_total = order.size
    top = min(largest, m_total)
    if top < smallest:
        return float("inf"), 0
    position = np.empty(m_total, dtype=np.int64)
    position[order] = np.arange(m_total)
    first = np.minimum.reduceat(position[adjacency_t.indices], adjacency_t.indptr[:-1])  # (m_total,)
    n_covered = np.cumsum(np.bincount(first, minlength=m_total))  # (m_total,) covered by prefix m = index + 1
    sizes = np.arange(smallest, top + 1)
    covered = n_covered[sizes - 1]
    ratios = np.where(covered >= class_size, np.inf, covered / sizes)
    best = int(np.argmin(ratios))
    return float(ratios[best]), int(sizes[best])


def _spectral_search(
    sub: sp.csr_matrix, smallest: int, largest: int, rng: np.random.Generator
) -> tuple[float, np.ndarray | None]:
    """Sweep the Fiedler order of each of the largest connected components, in both directions."""
    n_i = sub.shape[0]
    n_components, component = connected_components(sub, directed=True, connection="weak")
    sizes = np.bincount(component, minlength=n_components)
    best_ratio, best_set = float("inf"), None
    for c in np.argsort(-sizes, kind="stable")[:_MAX_SPECTRAL_COMPONENTS]:
        if sizes[c] < 2:
            continue
        nodes = np.flatnonzero(component == c)
        adjacency = sub[nodes][:, nodes].tocsr()
        embedding = _fiedler_embedding(adjacency, rng)
        if embedding is None:
            continue
        adjacency_t = adjacency.T.tocsr()
        adjacency_t.sort_indices()
        ascending = np.argsort(embedding, kind="stable")
        for order in (ascending, ascending[::-1]):
            ratio, size = _sweep(adjacency_t, order, n_i, smallest, largest)
            if ratio < best_ratio:
                best_ratio, best_set = ratio, nodes[order[:size]]
    return best_ratio, best_set


def worst_case_expansion(
    graph,
    labels,
    a: float = 0.5,
    cls: int | None = None,
    method: str = "both",
    random_state: RandomState = None,
    n_starts: int = 20,
    min_mass: float = 0.0,
) -> ExpansionEstimate:
    """Search for the set of worst expansion: an upper bound on the (a, c)-expansion factor.

    For each class i the search looks at sets ``V ⊆ C_i`` with ``P_i(V) = |V| / |C_i| <= a``
    (and ``>= min_mass``) for the smallest certified ratio: the largest c with
    ``P_i(N(V)) >= min{c P_i(V), 1}`` (Wei et al. 2021, Sec. 3), i.e. ``|N(V) ∩ C_i| / |V|``,
    or ``+inf`` when ``N(V)`` covers ``C_i``. In order:

    1. **components**: a union of connected components of the class subgraph of admissible size
       has ratio 1, the least possible (``V ⊆ N(V)``); the class is then done, exactly.
    2. **greedy** (``method`` ``"greedy"`` or ``"both"``): from ``n_starts`` seeds (half the
       lowest-degree vertices, half random), V grows by the vertex that adds the fewest new
       vertices to ``N(V) ∩ C_i``, up to ``floor(a |C_i|)`` vertices; every prefix is a candidate.
    3. **spectral** (``"spectral"`` or ``"both"``): the vertices of each of the largest connected
       components are ordered by the Fiedler vector of its normalised Laplacian and every prefix,
       in both directions, is a candidate (a sweep cut).

    Every candidate is a witness set, so the minimum found is an **upper bound** on the true
    minimum ratio c of the sample graph; ``c >= 1`` always. ``c = +inf`` means that no set with a
    finite ratio was found (each admissible set tried reaches all of its class). The spectral sweep
    does not depend on the order of the samples; the greedy search does, through tie-breaking and
    its seeds, drawn from ``random_state`` (observed spread about 2% over reorderings).

    Cost per class: ``O(n_starts · nnz_i · log nnz_i)`` for the greedy runs (in Python; ``nnz_i`` the
    entries of the class subgraph) plus one ARPACK solve per component swept; about 1.4 s for two
    classes of 10,000 points with about 12 neighbours each.

    Parameters
    ----------
    graph : (n, n) adjacency (sparse or dense); the diagonal is taken as set. ``N(V)`` is the set
        of out-neighbours (rows) of V; the graphs built here are symmetric.
    labels : (n,) int class indices.
    a : the largest mass of V, in (0, 1].
    cls : search class ``cls`` only; all classes that occur by default.
    method : ``"greedy"``, ``"spectral"`` or ``"both"``.
    random_state : seed or ``np.random.Generator``: seeds, tie-breaking, ARPACK start vector.
    n_starts : greedy runs per class, at least 1.
    min_mass : the smallest mass of V, in [0, a]; 0 (every nonempty set) is the definition, a
        positive value ignores sets too small for a sample to estimate their expansion.

    Returns
    -------
    ExpansionEstimate with ``c = min_i c_i`` and a witness set.
    """
    labels = check_labels("labels", labels)
    graph = _check_graph(graph, labels.shape[0])
    a = _check_a(a)
    check_choice("method", method, ("greedy", "spectral", "both"))
    check_range("n_starts", n_starts, 1, None, integer=True)
    min_mass = float(check_range("min_mass", min_mass, 0, a))
    rng = check_random_state(random_state)
    if labels.size == 0:
        raise MKEError("labels must hold at least one sample")
    if cls is None:
        classes = np.unique(labels)
    else:
        check_range("cls", cls, 0, None, integer=True)
        if not np.any(labels == cls):
            raise MKEError(f"cls={cls} does not occur in labels")
        classes = np.asarray([cls])
    per_class: dict[int, float] = {}
    any_admissible = False
    best = (float("inf"), None, None, "none")  # ratio, class, global indices, method
    for i in classes.tolist():
        members = np.flatnonzero(labels == i)
        n_i = members.size
        smallest, largest = _size_limits(n_i, a, min_mass)
        if largest < smallest:
            per_class[i] = float("inf")
            continue
        any_admissible = True
        sub = _class_graph(graph, members)
        found = []  # (ratio, local indices, method)
        local = _components_witness(sub, smallest, largest)
        if local is not None:
            found.append((1.0, local, "components"))
        else:
            if method in ("greedy", "both"):
                sub_t = sub.T.tocsr()
                sub_t.sort_indices()
                tie_keys = rng.permutation(n_i)
                degree = np.diff(sub.indptr)
                by_degree = np.lexsort((tie_keys, degree))[: max(1, n_starts // 2)]
                rest = np.setdiff1d(np.arange(n_i), by_degree)
                n_random = min(n_starts - by_degree.size, rest.size)
                starts = np.concatenate([by_degree, rng.choice(rest, size=n_random, replace=False)])
                ratio, local = _greedy_search(sub, sub_t, starts, tie_keys, smallest, largest)
                if local is not None:
                    found.append((ratio, local, "greedy"))
            if method in ("spectral", "both"):
                ratio, local = _spectral_search(sub, smallest, largest, rng)
                if local is not None:
                    found.append((ratio, local, "spectral"))
        if not found:
            per_class[i] = float("inf")
            continue
        ratio, local, how = min(found, key=lambda f: f[0])
        per_class[i] = ratio
        if ratio < best[0] or best[1] is None:
            best = (ratio, i, members[local], how)
    c, best_class, witness_index, how = best
    witness = np.zeros(labels.shape[0], dtype=bool)
    if witness_index is not None:
        witness[witness_index] = True
    return ExpansionEstimate(
        c=float(c), witness=witness, cls=best_class, method=how, per_class=per_class,
        exact=bool(c <= 1.0 or not any_admissible),
    )


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


# ---- robustness and separation -----------------------------------------------------------------------


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


# ---- graphs with known expansion, for tests -----------------------------------------------------


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
