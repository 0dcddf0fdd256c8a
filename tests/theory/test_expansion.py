"""Expansion, robustness and separation: graphs of known expansion, exact enumeration, invariants,
the multimodal claim on Gaussian mixtures, and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from mke_theory.expansion import (
    BRUTE_FORCE_MAX_VERTICES,
    brute_force_expansion,
    choose_radius,
    cycle_graph,
    embed,
    expander_graph,
    expansion_ratio,
    mistake_set_expansion,
    neighbourhood_graph,
    robustness,
    robustness_mc,
    separation,
    worst_case_expansion,
)
from mke_theory.generators import gaussian_mixture
from mke_theory.noise import symmetric_noise

SEEDS = st.integers(0, 2**32 - 1)
METHODS = ("greedy", "spectral", "both")


def path_graph(n):
    """Path 0 - 1 - ... - (n-1) without self-loops (the functions add them)."""
    j = np.arange(n - 1)
    return sp.csr_matrix((np.ones(2 * (n - 1), dtype=bool), (np.r_[j, j + 1], np.r_[j + 1, j])), shape=(n, n))


def certified(graph, labels, witness, cls):
    """The certified ratio of a witness set, recomputed from the definition with dense arrays."""
    dense = graph.toarray().astype(bool) | np.eye(graph.shape[0], dtype=bool)
    members = labels == cls
    covered = dense[witness].any(axis=0) & members
    return np.inf if covered.sum() == members.sum() else covered.sum() / witness.sum()


def two_blobs(distance, n=400, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    points = rng.standard_normal((n, 2)) + np.where(labels[:, None] == 1, distance, 0.0) * np.array([1.0, 0.0])
    return points, labels


# ---- graphs of known expansion ---------------------------------------------------------------------


@pytest.mark.parametrize(("n", "a"), [(5, 0.4), (8, 0.5), (10, 0.3), (12, 0.5), (16, 0.5), (16, 0.2)])
def test_cycle_brute_force_and_search_exact(n, a):
    m_star = int(np.floor(a * n))
    expected = (m_star + 2) / m_star
    graph, labels = cycle_graph(n), np.zeros(n, dtype=int)
    assert brute_force_expansion(graph, labels, a=a) == expected
    for method in METHODS:
        estimate = worst_case_expansion(graph, labels, a=a, method=method, random_state=0)
        assert estimate.c == expected
        assert estimate.witness.sum() == m_star  # an arc of m* vertices
        assert certified(graph, labels, estimate.witness, 0) == expected


@pytest.mark.parametrize(("n", "a"), [(200, 0.2), (501, 0.5), (64, 0.1)])
def test_cycle_search_exact_on_large_cycles(n, a):
    m_star = int(np.floor(a * n))
    for method in METHODS:
        assert worst_case_expansion(cycle_graph(n), np.zeros(n, int), a=a, method=method, random_state=1).c == (
            (m_star + 2) / m_star
        )


def test_hand_computed_path_and_components():
    # Path 0-1-2-3, one class, |V| <= 2: {0} reaches {0,1} (ratio 2), {0,1} reaches {0,1,2} (1.5).
    labels = np.zeros(4, dtype=int)
    assert brute_force_expansion(path_graph(4), labels, a=0.5) == 1.5
    assert worst_case_expansion(path_graph(4), labels, a=0.5, random_state=0).c == 1.5
    assert expansion_ratio(path_graph(4), labels, [0], 0) == 2.0
    assert expansion_ratio(path_graph(4), labels, np.array([True, True, False, False]), 0) == 1.5
    # Two disjoint edges: one edge is a closed component, ratio 1 -- the least possible, so exact.
    two_edges = sp.block_diag([path_graph(2), path_graph(2)]).tocsr()
    estimate = worst_case_expansion(two_edges, labels, a=0.5, random_state=0)
    assert (estimate.c, estimate.method, estimate.exact, estimate.witness.sum()) == (1.0, "components", True, 2)
    assert brute_force_expansion(two_edges, labels, a=0.5) == 1.0


def test_covering_sets_certify_any_c():
    # In a complete graph every nonempty set reaches the whole class: P(N(V)) = 1 >= min{c P(V), 1} for all c.
    complete = sp.csr_matrix(np.ones((6, 6), dtype=bool))
    labels = np.zeros(6, dtype=int)
    assert brute_force_expansion(complete, labels, a=0.5) == np.inf
    estimate = worst_case_expansion(complete, labels, a=0.5, random_state=0)
    assert estimate.c == np.inf and not estimate.witness.any() and estimate.cls is None
    assert not estimate.exact  # the search found no finite set, which proves nothing in general
    tiny = worst_case_expansion(complete, labels, a=0.1, random_state=0)  # floor(0.6) = 0: no admissible set
    assert tiny.c == np.inf and tiny.exact
    assert expansion_ratio(complete, labels, [0, 1], 0) == 3.0  # the plain ratio stays finite


def test_class_subgraph_only_counts_own_class():
    # Path 0-1-2-3 with classes [0, 1, 1, 0]: N({0}) ∩ C_0 = {0}, ratio 1, although 0 has a neighbour.
    labels = np.array([0, 1, 1, 0])
    assert expansion_ratio(path_graph(4), labels, [0], 0) == 1.0
    estimate = worst_case_expansion(path_graph(4), labels, a=0.5, random_state=0)
    assert estimate.c == 1.0 and estimate.cls == 0


@st.composite
def tiny_labelled_graphs(draw):
    sizes = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    n = sum(sizes)
    p = draw(st.floats(0.0, 0.8))
    rng = np.random.default_rng(draw(SEEDS))
    upper = np.triu(rng.random((n, n)) < p, 1)
    labels = rng.permutation(np.repeat([0, 1], sizes))
    return sp.csr_matrix(upper | upper.T), labels


@settings(max_examples=60, deadline=None)
@given(data=tiny_labelled_graphs(), a=st.sampled_from([0.2, 0.34, 0.5, 0.75, 1.0]), seed=SEEDS,
       min_mass=st.sampled_from([0.0, 0.0, 0.25]))
def test_search_never_below_brute_force(data, a, seed, min_mass):
    graph, labels = data
    min_mass = min(min_mass, a)
    exact = brute_force_expansion(graph, labels, a=a, min_mass=min_mass)
    for method in METHODS:
        estimate = worst_case_expansion(graph, labels, a=a, method=method, random_state=seed, min_mass=min_mass)
        assert estimate.c >= exact  # every witness is a real set: an upper bound
        if estimate.witness.any():
            cls = estimate.cls
            size = estimate.witness.sum()
            n_cls = (labels == cls).sum()
            assert np.all(labels[estimate.witness] == cls)
            assert max(1, np.ceil(min_mass * n_cls - 1e-9)) <= size <= np.floor(a * n_cls + 1e-9)
            assert certified(graph, labels, estimate.witness, cls) == estimate.c
            assert estimate.per_class[cls] == estimate.c
        else:
            assert estimate.c == np.inf
        if estimate.exact:
            assert estimate.c == exact


def test_brute_force_limit():
    labels = np.zeros(BRUTE_FORCE_MAX_VERTICES + 1, dtype=int)
    with pytest.raises(ValueError, match=f"at most {BRUTE_FORCE_MAX_VERTICES}"):
        brute_force_expansion(cycle_graph(labels.size), labels)


def test_expander_beats_cycle_and_tanner_bound():
    n, degree, a = 200, 6, 0.2
    graph = expander_graph(n, degree, random_state=0)
    adjacency = graph.toarray().astype(float) - np.eye(n)
    assert np.array_equal(adjacency, adjacency.T) and set(np.unique(adjacency)) == {0.0, 1.0}
    assert np.all(adjacency.sum(axis=1) == degree)
    # Tanner (1984): |Γ(S)| >= |S| / (ρ² + (1 - ρ²)|S|/n), ρ = λ/d; decreasing in |S|, so at |S| = a n it
    # bounds every admissible set. Γ(S) ⊆ N(S), so it is a lower bound on the true c.
    eigenvalues = np.sort(np.abs(np.linalg.eigvalsh(adjacency)))[::-1]
    rho2 = (eigenvalues[1] / degree) ** 2
    tanner = 1.0 / (rho2 + (1.0 - rho2) * a)
    labels = np.zeros(n, dtype=int)
    cycle_c = worst_case_expansion(cycle_graph(n), labels, a=a, random_state=0).c
    assert cycle_c == (40 + 2) / 40
    for method in METHODS:
        c = worst_case_expansion(graph, labels, a=a, method=method, random_state=0).c
        assert c >= tanner > 1.5
        assert c > cycle_c + 0.5


# ---- mistake sets ---------------------------------------------------------------------------------------


def test_mistake_set_expansion_hand_computed():
    # Path 0-1-2-3-4-5, classes [0,0,0,1,1,1]; pseudo labels wrong on 0 and on 3, 4.
    labels = np.array([0, 0, 0, 1, 1, 1])
    pseudo = np.array([1, 0, 0, 0, 0, 1])
    result = mistake_set_expansion(path_graph(6), labels, pseudo)
    # V_0 = {0}: N ∩ C_0 = {0, 1}: 2. V_1 = {3, 4}: N ∩ C_1 = {3, 4, 5} = C_1: ratio 1.5, certified inf.
    np.testing.assert_array_equal(result["ratio"], [2.0, 1.5])
    np.testing.assert_array_equal(result["certified"], [2.0, np.inf])
    np.testing.assert_allclose(result["mass"], [1 / 3, 2 / 3])
    np.testing.assert_array_equal(result["size"], [1, 2])
    assert result["c"] == 1.5
    perfect = mistake_set_expansion(path_graph(6), labels, labels)
    assert perfect["c"] == np.inf and np.all(np.isnan(perfect["ratio"]))


def test_mistake_set_expansion_matches_expansion_ratio():
    points, labels = two_blobs(2.0, n=300, seed=3)
    graph = neighbourhood_graph(points, choose_radius(points, random_state=0))
    pseudo = symmetric_noise(labels, 0.3, random_state=4)
    result = mistake_set_expansion(graph, labels, pseudo)
    for i in (0, 1):
        assert result["ratio"][i] == expansion_ratio(graph, labels, (labels == i) & (pseudo != i), i)
    assert result["c"] == np.nanmin(result["ratio"])


# ---- graph, radius, embedding -----------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(data=tiny_labelled_graphs(), a=st.sampled_from([0.2, 0.34, 0.5, 0.75, 1.0]))
def test_certified_lower_bound_never_above_brute_force(data, a):
    """certified_expansion ≤ the exact minimum ≤ any search witness; and the spectral argument alone
    (forced on these small classes) is a lower bound too."""
    from mke_theory.expansion import _class_graph, _size_limits, _spectral_certified, certified_expansion

    graph, labels = data
    exact = brute_force_expansion(graph, labels, a=a)
    assert certified_expansion(graph, labels, a=a) == exact  # classes of ≤ 16 samples: enumerated, exact
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        largest = _size_limits(members.size, a, 0.0)[1]
        if largest >= 1:
            sub = _class_graph(graph.tolil().tocsr() + sp.eye(len(labels), dtype=bool, format="csr"), members)
            own = brute_force_expansion(sub, np.zeros(members.size, int), a=a)
            assert _spectral_certified(sub.toarray(), largest) <= own + 1e-9


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, n=st.integers(2, 60), d=st.integers(1, 4), radius=st.floats(0.05, 1.0))
def test_neighbourhood_graph_matches_dense_distances(seed, n, d, radius):
    points = np.random.default_rng(seed).standard_normal((n, d))
    distances = cdist(points, points)
    away_from_boundary = np.abs(distances - 2 * radius) > 1e-9
    graph = neighbourhood_graph(points, radius)
    assert graph.shape == (n, n) and graph.dtype == bool
    dense = graph.toarray()
    assert np.all(np.diag(dense)) and np.array_equal(dense, dense.T)
    np.testing.assert_array_equal(dense[away_from_boundary], (distances <= 2 * radius)[away_from_boundary])


def test_choose_radius_definition():
    points = np.random.default_rng(0).standard_normal((500, 3))
    distances = np.sort(cdist(points, points), axis=1)  # column 0 is the point itself
    for k, q in ((1, 0.5), (10, 0.5), (10, 0.9)):
        r = choose_radius(points, k=k, quantile=q)
        assert r == pytest.approx(np.quantile(distances[:, k], q))
        # B(x) (radius r) holds at least k other points for a fraction q of the points.
        holds = ((distances[:, 1:] <= r + 1e-12).sum(axis=1) >= k).mean()
        assert holds == pytest.approx(q, abs=2 / 500)
    subsampled = choose_radius(points, k=10, max_points=200, random_state=1)
    assert subsampled == pytest.approx(choose_radius(points, k=10), rel=0.15)
    assert subsampled == choose_radius(points, k=10, max_points=200, random_state=1)


def test_embed_scaling():
    rng = np.random.default_rng(0)
    alpha = rng.normal(5.0, 3.0, (300, 2))
    beta = rng.normal(-1.0, 10.0, (300, 5))
    um, mm = embed(alpha), embed(alpha, beta)
    assert um.shape == (300, 2) and mm.shape == (300, 7)
    assert um.var(axis=0).sum() == pytest.approx(1.0)
    assert mm[:, :2].var(axis=0).sum() == pytest.approx(1.0) and mm[:, 2:].var(axis=0).sum() == pytest.approx(1.0)
    np.testing.assert_allclose(mm[:, :2], um)
    weighted = embed(alpha, beta, beta_weight=2.0)
    assert weighted[:, 2:].var(axis=0).sum() == pytest.approx(4.0)
    np.testing.assert_array_equal(embed(alpha, beta, scale="none"), np.hstack([alpha, beta]))
    constant = embed(np.c_[alpha, np.full(300, 7.0)])
    assert np.all(np.isfinite(constant)) and np.all(constant[:, 2] == 0)


# ---- robustness and separation -------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, n=st.integers(1, 80), radius=st.floats(0.05, 1.5), n_classes=st.integers(1, 4))
def test_robustness_matches_definition(seed, n, radius, n_classes):
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n, 2))
    predictions = rng.integers(0, n_classes, n)
    distances = cdist(points, points)
    if np.any(np.abs(distances - radius) < 1e-9):
        return  # a pair on the ball's boundary: floating point decides
    fragile = ((distances <= radius) & (predictions[:, None] != predictions[None, :])).any(axis=1)
    assert robustness(predictions, points, radius) == fragile.mean()
    assert separation(predictions, points, radius) == fragile.mean()


def test_separation_of_blobs():
    far, labels = two_blobs(distance=30.0)
    r_far = choose_radius(far, random_state=0)
    assert separation(labels, far, r_far) == 0.0
    near, labels = two_blobs(distance=0.5)
    assert separation(labels, near, choose_radius(near, random_state=0)) > 0.2
    assert separation(np.zeros(len(near), int), near, 10.0) == 0.0  # one class: nothing to disagree with


def test_robustness_mc_linear_classifier():
    rng = np.random.default_rng(0)
    points = rng.uniform(-2, 2, (400, 2))
    radius = 0.3
    seen = []

    def predict(x):
        seen.append(x)
        return (x[:, 0] > 0).astype(int)

    estimate = robustness_mc(predict, points, radius, n_draws=64, random_state=1)
    near = np.abs(points[:, 0])
    # Only points within r of the boundary x_0 = 0 can be non-robust (lower bound); every point within r/2
    # has a cap of at least 19% of its ball across the boundary, so 64 draws miss it with probability < 1e-5.
    assert (near <= radius / 2).mean() <= estimate <= (near <= radius).mean()
    draws = seen[1].reshape(400, 64, 2)
    offsets = np.linalg.norm(draws - points[:, None, :], axis=2)
    assert offsets.max() <= radius * (1 + 1e-12)
    # uniform in a 2-ball: (|offset| / r)^2 is uniform on [0, 1]
    assert np.mean((offsets / radius) ** 2) == pytest.approx(0.5, abs=0.01)
    assert robustness_mc(predict, points, radius, n_draws=64, random_state=1) == estimate


# ---- order and naming invariance ----------------------------------------------------------------------


def test_order_and_class_name_invariance():
    split = gaussian_mixture(n_unlabeled=600, beta_separation=4.0, n_classes=3, random_state=5)
    points = embed(split.unlabeled_alpha, split.unlabeled_beta)
    labels = split.unlabeled_labels
    pseudo = symmetric_noise(labels, 0.25, random_state=6)
    radius = choose_radius(points, random_state=0)
    graph = neighbourhood_graph(points, radius)

    order = np.random.default_rng(7).permutation(len(labels))
    rename = np.array([2, 0, 1])
    points_p, labels_p, pseudo_p = points[order], rename[labels[order]], rename[pseudo[order]]
    graph_p = neighbourhood_graph(points_p, radius)

    degree = np.asarray(graph.sum(axis=1)).ravel()
    np.testing.assert_array_equal(np.asarray(graph_p.sum(axis=1)).ravel(), degree[order])
    assert (graph_p != graph[order][:, order]).nnz == 0
    assert separation(labels_p, points_p, radius) == separation(labels, points, radius)
    assert robustness(pseudo_p, points_p, radius) == robustness(pseudo, points, radius)
    before, after = mistake_set_expansion(graph, labels, pseudo), mistake_set_expansion(graph_p, labels_p, pseudo_p)
    assert after["c"] == before["c"]
    np.testing.assert_array_equal(after["ratio"][rename], before["ratio"])
    assert brute_force_expansion(cycle_graph(12)[order[order < 12]][:, order[order < 12]], np.zeros(12, int)) == (
        brute_force_expansion(cycle_graph(12), np.zeros(12, int))
    )


def test_worst_case_search_order_dependence_is_small():
    """The spectral sweep does not depend on the order (the Fiedler vector does not); the greedy search
    does, through tie-breaking and its random seeds. Observed spread over reorderings: about 2%."""
    split = gaussian_mixture(n_unlabeled=600, beta_separation=4.0, random_state=0)
    points, labels = embed(split.unlabeled_alpha, split.unlabeled_beta), split.unlabeled_labels
    graph = neighbourhood_graph(points, choose_radius(points, k=20, quantile=0.9, random_state=0))
    reference = {m: worst_case_expansion(graph, labels, a=0.5, method=m, random_state=0, min_mass=0.1).c
                 for m in METHODS}
    for seed in (1, 2):
        order = np.random.default_rng(seed).permutation(len(labels))
        graph_p, labels_p = graph[order][:, order], labels[order]
        found = {m: worst_case_expansion(graph_p, labels_p, a=0.5, method=m, random_state=0, min_mass=0.1).c
                 for m in METHODS}
        assert found["spectral"] == pytest.approx(reference["spectral"], rel=1e-9)
        assert found["greedy"] == pytest.approx(reference["greedy"], rel=0.05)
        assert found["both"] == min(found["greedy"], found["spectral"])
    ring = cycle_graph(300)
    order = np.random.default_rng(3).permutation(300)
    assert worst_case_expansion(ring[order][:, order], np.zeros(300, int), a=0.5, random_state=0).c == 152 / 150


# ---- the multimodal claim on Gaussian mixtures ---------------------------------------------------------


def separations(beta_informative, seed):
    """μ in the UM space (α) and the MM space (α, β), each at its own choose_radius r."""
    split = gaussian_mixture(n_unlabeled=2000, alpha_separation=1.0, beta_separation=4.0,
                             beta_informative=beta_informative, random_state=seed)
    labels = split.unlabeled_labels
    spaces = {"um": embed(split.unlabeled_alpha), "mm": embed(split.unlabeled_alpha, split.unlabeled_beta)}
    return {name: separation(labels, points, choose_radius(points, random_state=0)) for name, points in spaces.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_informative_beta_gives_smaller_separation(seed):
    # Observed over seeds 0-9: μ_UM ≈ 0.80-0.84, μ_MM ≈ 0.09-0.13.
    mu = separations(True, seed)
    assert mu["um"] > 0.6 and mu["mm"] < 0.3 * mu["um"]


@pytest.mark.parametrize("seed", [0, 1])
def test_uninformative_beta_does_not_reduce_separation(seed):
    """With β pure noise μ stays within 15 % (observed MM/UM 0.95-0.99 over seeds 0-9).

    choose_radius puts about k sample points into every ball B(x) whatever the dimension; a radius
    fixed across spaces would not: a ball of the same radius holds fewer points in 4-d than in 2-d,
    fewer neighbours can disagree, and μ would drop for a reason that has nothing to do with β."""
    mu = separations(False, seed)
    assert mu["mm"] > 0.85 * mu["um"]


# ---- argument checks ------------------------------------------------------------------------------------


def test_bad_inputs_name_the_parameter():
    points = np.random.default_rng(0).standard_normal((10, 2))
    labels = np.repeat([0, 1], 5)
    graph = neighbourhood_graph(points, 0.5)
    with pytest.raises(ValueError, match="pseudo_labels has 9 entries but labels has 10"):
        mistake_set_expansion(graph, labels, labels[:9])
    with pytest.raises(ValueError, match="predictions has 9 entries but points has 10"):
        robustness(labels[:9], points, 0.5)
    with pytest.raises(ValueError, match="labels has 9 entries but points has 10"):
        separation(labels[:9], points, 0.5)
    with pytest.raises(ValueError, match="labels has 9 entries but graph has 10"):
        worst_case_expansion(graph, labels[:9])
    with pytest.raises(ValueError, match="alpha has 10 entries but beta has 9"):
        embed(points, points[:9])
    nan_points = points.copy()
    nan_points[3, 1] = np.nan
    for call in (lambda: neighbourhood_graph(nan_points, 0.5), lambda: separation(labels, nan_points, 0.5),
                 lambda: choose_radius(nan_points)):
        with pytest.raises(ValueError, match="points contains NaN"):
            call()
    with pytest.raises(ValueError, match="alpha contains NaN"):
        embed(nan_points)
    for bad in (0, 0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="radius"):
            neighbourhood_graph(points, bad)
        with pytest.raises(ValueError, match="radius"):
            robustness(labels, points, bad)
    with pytest.raises(ValueError, match="k must lie in"):
        choose_radius(points, k=0)
    with pytest.raises(ValueError, match="k must be smaller than the number of points"):
        choose_radius(points, k=10)
    for bad_a in (0, 0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"a must lie in \(0, 1\]"):
            worst_case_expansion(graph, labels, a=bad_a)
        with pytest.raises(ValueError, match=r"a must lie in \(0, 1\]"):
            brute_force_expansion(graph, labels, a=bad_a)
    with pytest.raises(ValueError, match="at least two classes"):
        mistake_set_expansion(graph, np.zeros(10, int), labels)
    with pytest.raises(ValueError, match="method must be one of"):
        worst_case_expansion(graph, labels, method="exact")
    with pytest.raises(ValueError, match="min_mass must lie in"):
        worst_case_expansion(graph, labels, a=0.2, min_mass=0.3)
    with pytest.raises(ValueError, match="subset must hold samples of class cls=0"):
        expansion_ratio(graph, labels, [0, 7], 0)
    with pytest.raises(ValueError, match="degree must be even"):
        expander_graph(20, 3)
    with pytest.raises(ValueError, match="graph must be a square"):
        worst_case_expansion(np.ones((3, 4)), np.zeros(3, int))

