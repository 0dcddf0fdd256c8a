"""The spaces, the perturbation radius and the sample's neighbourhood graph, with the argument checks
and class-subgraph helpers the other modules of ``mke_theory.expansion`` share.

- ``embed``: the unimodal space (α) or the multimodal space (α, β side by side), standardised;
- ``choose_radius``: a data-driven ball radius r (a quantile of the k-th-neighbour distance);
- ``neighbourhood_graph``: edge ``j – k`` iff ``||x_j - x_k|| <= 2r``, self-loops included;
- ``_check_*``: argument checks; ``_class_graph``, ``_size_limits``, ``_certified_ratio``: the class
  subgraph, the admissible set sizes ``|V|`` and the certified ratio of a set, used by every search.

numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from mke_theory.core.checks import RandomState, check_choice, check_features, check_random_state, check_range
from mke_theory.core.errors import MKEError

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
