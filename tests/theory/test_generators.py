"""Generators: shapes, balance, determinism, modality split and the known answers they promise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from mke_theory.core.split import MultimodalSplit
from mke_theory.generators import GENERATORS, gaussian_mixture, make_split, shared_specific, twomoon

# ---- small numpy classifiers used as probes -----------------------------------------------------


def nearest_mean_accuracy(x_train, y_train, x_test, y_test, n_classes):
    """Accuracy of the nearest-class-mean rule fitted on (x_train, y_train)."""
    means = np.stack([x_train[y_train == k].mean(axis=0) for k in range(n_classes)])
    distances = ((x_test[:, None, :] - means[None]) ** 2).sum(axis=2)
    return float(np.mean(distances.argmin(axis=1) == y_test))


def lda_accuracy(x_train, y_train, x_test, y_test, n_classes):
    """Accuracy of linear discriminant analysis (pooled covariance, empirical priors)."""
    means = np.stack([x_train[y_train == k].mean(axis=0) for k in range(n_classes)])
    centred = x_train - means[y_train]
    covariance = centred.T @ centred / len(x_train)
    weights = np.linalg.solve(covariance, means.T)
    priors = np.bincount(y_train, minlength=n_classes) / len(y_train)
    scores = x_test @ weights - 0.5 * np.sum(means.T * weights, axis=0) + np.log(priors)
    return float(np.mean(scores.argmax(axis=1) == y_test))


def split_arrays(split: MultimodalSplit):
    return (split.labeled_alpha, split.labels, split.unlabeled_alpha, split.unlabeled_beta,
            split.unlabeled_labels, split.test_alpha, split.test_beta, split.test_labels)


# ---- every registered generator ---------------------------------------------------------------


def test_registry_names():
    assert {"twomoon", "gaussian", "shared-specific"} <= set(GENERATORS)
    assert GENERATORS["gaussian"] is gaussian_mixture
    assert GENERATORS["shared-specific"] is shared_specific


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_shapes_consistent(name):
    split = make_split(name, random_state=0)
    assert isinstance(split, MultimodalSplit)
    assert split.name == name
    assert split.labels.shape == (split.n_labeled,)
    assert split.unlabeled_alpha.shape == (split.n_unlabeled, split.alpha_dim)
    assert split.unlabeled_beta.shape == (split.n_unlabeled, split.beta_dim)
    assert split.unlabeled_labels is not None and split.unlabeled_labels.shape == (split.n_unlabeled,)
    n_test = len(split.test_labels)
    assert split.test_alpha.shape == (n_test, split.alpha_dim)
    assert split.test_beta.shape == (n_test, split.beta_dim)
    for labels in (split.labels, split.unlabeled_labels, split.test_labels):
        assert labels.dtype == np.int64
        assert labels.min() >= 0 and labels.max() < split.n_classes
    # default sizes follow the TwoMoon protocol for every generator
    assert (split.n_labeled, split.n_unlabeled, n_test) == (30, 270, 200)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_determinism(name):
    first, again, other = (make_split(name, random_state=s) for s in (3, 3, 4))
    assert first.split_id == again.split_id
    for a, b in zip(split_arrays(first), split_arrays(again), strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.split_id != other.split_id
    assert not np.array_equal(first.unlabeled_alpha, other.unlabeled_alpha)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_class_occurs_in_a_large_enough_draw(name):
    split = make_split(name, random_state=1)
    for labels in (split.unlabeled_labels, split.test_labels):
        counts = np.bincount(labels, minlength=split.n_classes)
        assert counts.min() >= 0.3 * len(labels) / split.n_classes


@pytest.mark.parametrize("name", ["gaussian", "shared-specific"])
def test_generator_object_as_random_state(name):
    from_int = make_split(name, random_state=11)
    from_generator = make_split(name, random_state=np.random.default_rng(11))
    assert from_int.split_id == from_generator.split_id
    assert from_generator.meta["random_state"] == "Generator"
    assert from_int.meta["random_state"] == 11


def test_make_split_unknown_name_lists_known():
    with pytest.raises(ValueError, match="generator") as info:
        make_split("three-moons")
    for name in GENERATORS:
        assert repr(name) in str(info.value)


# ---- twomoon -----------------------------------------------------------------------------------


def test_twomoon_official_protocol():
    from sklearn.datasets import make_moons
    from sklearn.preprocessing import StandardScaler

    split = twomoon()
    assert (split.n_labeled, split.n_unlabeled, len(split.test_labels)) == (30, 270, 200)
    assert split.alpha_dim == 1 and split.beta_dim == 1
    assert split.n_classes == 2
    # α is the x coordinate, β the y coordinate of the scaled moons: the 500 points come back.
    x, y = make_moons(n_samples=500, noise=0.1, random_state=42)
    x = StandardScaler().fit_transform(x)
    alpha = np.concatenate([split.labeled_alpha[:, 0], split.unlabeled_alpha[:, 0], split.test_alpha[:, 0]])
    labels = np.concatenate([split.labels, split.unlabeled_labels, split.test_labels])
    order = np.argsort(alpha)
    np.testing.assert_allclose(alpha[order], np.sort(x[:, 0]))
    np.testing.assert_array_equal(labels[order], y[np.argsort(x[:, 0])])
    points = np.concatenate([np.hstack([split.unlabeled_alpha, split.unlabeled_beta]),
                             np.hstack([split.test_alpha, split.test_beta])])
    for point in points[:20]:
        assert np.min(np.abs(x - point).sum(axis=1)) < 1e-12


# ---- gaussian ----------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    n_classes=st.integers(2, 6),
    sizes=st.tuples(st.integers(1, 50), st.integers(1, 80), st.integers(1, 60)),
    dims=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    seed=st.integers(0, 2**32 - 1),
)
def test_gaussian_balanced_and_modality_dims(n_classes, sizes, dims, seed):
    n_labeled, n_unlabeled, n_test = sizes
    split = gaussian_mixture(n_classes=n_classes, n_labeled=n_labeled, n_unlabeled=n_unlabeled, n_test=n_test,
                             alpha_dim=dims[0], beta_dim=dims[1], random_state=seed)
    assert (split.n_labeled, split.n_unlabeled, len(split.test_labels)) == sizes
    assert (split.alpha_dim, split.beta_dim) == dims
    for labels, n in ((split.labels, n_labeled), (split.unlabeled_labels, n_unlabeled), (split.test_labels, n_test)):
        counts = np.bincount(labels, minlength=n_classes)
        assert counts.sum() == n
        assert counts.max() - counts.min() <= 1


def test_gaussian_extra_sample_goes_to_random_classes():
    """With n % K != 0 the classes that get the extra sample vary with the seed (no class is favoured)."""
    favoured = {int(np.argmax(np.bincount(gaussian_mixture(n_classes=3, n_labeled=4, random_state=s).labels)))
                for s in range(30)}
    assert favoured == {0, 1, 2}


@pytest.mark.parametrize(("n_classes", "dim"), [(2, 1), (2, 3), (3, 2), (4, 3), (4, 6), (5, 2), (4, 1)])
def test_gaussian_mean_geometry(n_classes, dim):
    split = gaussian_mixture(n_classes=n_classes, alpha_dim=dim, beta_dim=dim, alpha_separation=1.5,
                             beta_separation=2.5, random_state=n_classes * 10 + dim)
    for key, separation in (("alpha_means", 1.5), ("beta_means", 2.5)):
        means = np.asarray(split.meta[key])
        assert means.shape == (n_classes, dim)
        np.testing.assert_allclose(means.mean(axis=0), 0.0, atol=1e-12)
        distances = np.linalg.norm(means[:, None] - means[None], axis=2)[np.triu_indices(n_classes, 1)]
        np.testing.assert_allclose(distances.min(), separation, rtol=1e-10)
        if dim >= n_classes - 1:  # regular simplex: every pair equally far apart
            np.testing.assert_allclose(distances, separation, rtol=1e-10)


def test_gaussian_empirical_means_and_unit_noise():
    split = gaussian_mixture(n_classes=3, n_unlabeled=6000, alpha_dim=2, beta_dim=3, random_state=5)
    y = split.unlabeled_labels
    for x, key in ((split.unlabeled_alpha, "alpha_means"), (split.unlabeled_beta, "beta_means")):
        means = np.asarray(split.meta[key])
        for k in range(3):
            # 2000 points per class: the standard error per coordinate is 0.022; 0.1 is 4.5 of them.
            np.testing.assert_allclose(x[y == k].mean(axis=0), means[k], atol=0.1)
            np.testing.assert_allclose(np.cov(x[y == k].T), np.eye(x.shape[1]), atol=0.12)
    # α and β are conditionally independent given the class
    within = [np.corrcoef(split.unlabeled_alpha[y == k, 0], split.unlabeled_beta[y == k, 0])[0, 1] for k in range(3)]
    assert np.max(np.abs(within)) < 0.1


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_gaussian_uninformative_beta_is_at_chance(n_classes):
    """β independent of the label: any rule fitted on D_u scores 1/K in expectation on a balanced test set.

    With 4000 test points the accuracy's standard deviation is at most sqrt(0.25 / 4000) = 0.008,
    so the tolerance 0.05 is over six standard deviations; the informative case (separation 3)
    sits far above it.
    """
    kwargs = dict(n_classes=n_classes, n_unlabeled=4000, n_test=4000, beta_dim=3, beta_separation=3.0)
    null = gaussian_mixture(beta_informative=False, random_state=7, **kwargs)
    informative = gaussian_mixture(beta_informative=True, random_state=7, **kwargs)
    chance = 1.0 / n_classes
    acc_null = nearest_mean_accuracy(null.unlabeled_beta, null.unlabeled_labels, null.test_beta, null.test_labels,
                                     n_classes)
    acc_informative = nearest_mean_accuracy(informative.unlabeled_beta, informative.unlabeled_labels,
                                            informative.test_beta, informative.test_labels, n_classes)
    assert abs(acc_null - chance) < 0.05
    assert acc_informative > chance + 0.4
    assert np.allclose(null.meta["beta_means"], 0.0)
    # the negative control changes β only: α and the labels are the same draw
    np.testing.assert_array_equal(null.unlabeled_alpha, informative.unlabeled_alpha)
    np.testing.assert_array_equal(null.test_labels, informative.test_labels)


@pytest.mark.parametrize("separation", [0.5, 1.0, 2.0, 3.0])
def test_gaussian_two_class_bayes_accuracy(separation):
    """Two classes at distance s with unit noise: the Bayes accuracy of one modality is Phi(s / 2)."""
    split = gaussian_mixture(n_unlabeled=4000, n_test=4000, alpha_separation=separation, random_state=2)
    acc = nearest_mean_accuracy(split.unlabeled_alpha, split.unlabeled_labels, split.test_alpha, split.test_labels, 2)
    assert abs(acc - ndtr(separation / 2)) < 0.03


# ---- shared-specific ---------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    blocks=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    noise_dims=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    n_classes=st.integers(2, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_shared_specific_modality_dims(blocks, noise_dims, n_classes, seed):
    n_shared, n_alpha, n_beta = blocks
    split = shared_specific(n_classes=n_classes, n_shared=n_shared, n_alpha_specific=n_alpha, n_beta_specific=n_beta,
                            alpha_noise_dim=noise_dims[0], beta_noise_dim=noise_dims[1], random_state=seed)
    assert split.alpha_dim == n_shared + n_alpha + noise_dims[0]
    assert split.beta_dim == n_shared + n_beta + noise_dims[1]
    assert split.n_classes == n_classes
    assert len(split.meta["decision_weights"]) == n_shared + n_alpha + n_beta


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_shared_specific_balanced_in_expectation(n_classes):
    split = shared_specific(n_classes=n_classes, n_unlabeled=20000, random_state=3)
    frequencies = np.bincount(split.unlabeled_labels, minlength=n_classes) / split.n_unlabeled
    # standard error <= sqrt(0.25 / 20000) = 0.0035; 0.03 is over eight of them
    np.testing.assert_allclose(frequencies, 1.0 / n_classes, atol=0.03)


def test_shared_specific_two_class_known_answers():
    """Binary: α alone has Bayes accuracy 1 - arccos(sqrt(2/3)) / pi ≈ 0.804, α and β together 1."""
    split = shared_specific(n_unlabeled=4000, n_test=4000, n_shared=2, n_alpha_specific=2, n_beta_specific=2,
                            alpha_noise_dim=2, beta_noise_dim=2, random_state=4)
    bayes_alpha = 1 - np.arccos(np.sqrt(2 / 3)) / np.pi
    acc_alpha = lda_accuracy(split.unlabeled_alpha, split.unlabeled_labels, split.test_alpha, split.test_labels, 2)
    acc_beta = lda_accuracy(split.unlabeled_beta, split.unlabeled_labels, split.test_beta, split.test_labels, 2)
    acc_both = lda_accuracy(split.unlabeled_multimodal, split.unlabeled_labels, split.test_multimodal,
                            split.test_labels, 2)
    assert abs(acc_alpha - bayes_alpha) < 0.03
    assert abs(acc_beta - bayes_alpha) < 0.03  # the construction is symmetric in α and β
    assert acc_both > 0.97


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_shared_specific_alpha_alone_is_worse_than_both(n_classes):
    split = shared_specific(n_classes=n_classes, n_unlabeled=4000, n_test=4000, random_state=5)
    acc_alpha = lda_accuracy(split.unlabeled_alpha, split.unlabeled_labels, split.test_alpha, split.test_labels,
                             n_classes)
    acc_both = lda_accuracy(split.unlabeled_multimodal, split.unlabeled_labels, split.test_multimodal,
                            split.test_labels, n_classes)
    assert acc_alpha > 1.0 / n_classes + 0.1  # α is informative ...
    assert acc_both > acc_alpha + 0.1  # ... but the β-specific features are decisive too


@pytest.mark.parametrize("n_shared", [1, 2])
def test_shared_specific_modalities_share_exactly_the_shared_block(n_shared):
    """α and β have n_shared canonical correlations of 1 (the shared features) and none beyond."""
    split = shared_specific(n_shared=n_shared, n_alpha_specific=2, n_beta_specific=1, alpha_noise_dim=1,
                            beta_noise_dim=2, n_unlabeled=5000, random_state=6)

    def whiten(x):
        x = x - x.mean(axis=0)
        u, _, _ = np.linalg.svd(x, full_matrices=False)
        return u

    canonical = np.linalg.svd(whiten(split.unlabeled_alpha).T @ whiten(split.unlabeled_beta), compute_uv=False)
    np.testing.assert_allclose(canonical[:n_shared], 1.0, atol=1e-8)
    assert np.all(canonical[n_shared:] < 0.1)  # independent blocks: sample correlations of order 1/sqrt(5000)
    # the rotations are orthogonal: the mean squared norm of each modality is its number of unit-variance features
    np.testing.assert_allclose(np.mean(np.sum(split.unlabeled_alpha ** 2, axis=1)), split.alpha_dim, rtol=0.05)
    np.testing.assert_allclose(np.mean(np.sum(split.unlabeled_beta ** 2, axis=1)), split.beta_dim, rtol=0.05)


# ---- argument validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "kwargs", "parameter"),
    [
        (gaussian_mixture, {"n_classes": 1}, "n_classes"),
        (gaussian_mixture, {"n_classes": 2.5}, "n_classes"),
        (gaussian_mixture, {"n_labeled": 0}, "n_labeled"),
        (gaussian_mixture, {"n_unlabeled": -3}, "n_unlabeled"),
        (gaussian_mixture, {"n_test": 0}, "n_test"),
        (gaussian_mixture, {"alpha_dim": 0}, "alpha_dim"),
        (gaussian_mixture, {"beta_dim": 1.0}, "beta_dim"),
        (gaussian_mixture, {"alpha_separation": -0.1}, "alpha_separation"),
        (gaussian_mixture, {"beta_separation": float("nan")}, "beta_separation"),
        (gaussian_mixture, {"beta_informative": "yes"}, "beta_informative"),
        (gaussian_mixture, {"random_state": "seed"}, "random_state"),
        (shared_specific, {"n_classes": 1}, "n_classes"),
        (shared_specific, {"n_labeled": 0}, "n_labeled"),
        (shared_specific, {"n_shared": 0}, "n_shared"),
        (shared_specific, {"n_alpha_specific": 0}, "n_alpha_specific"),
        (shared_specific, {"n_beta_specific": 0}, "n_beta_specific"),
        (shared_specific, {"alpha_noise_dim": -1}, "alpha_noise_dim"),
        (shared_specific, {"beta_noise_dim": 0.5}, "beta_noise_dim"),
        (shared_specific, {"random_state": 1.5}, "random_state"),
    ],
)
def test_bad_arguments_name_the_parameter(function, kwargs, parameter):
    with pytest.raises(ValueError, match=rf"^{parameter} must"):
        function(**kwargs)


def test_bad_range_message_states_interval():
    with pytest.raises(ValueError, match=r"n_classes must lie in \[2, inf\), got 1"):
        gaussian_mixture(n_classes=1)
    with pytest.raises(ValueError, match=r"alpha_noise_dim must lie in \[0, inf\), got -1"):
        shared_specific(alpha_noise_dim=-1)


def test_zero_noise_dims_and_zero_separation_are_allowed():
    split = shared_specific(alpha_noise_dim=0, beta_noise_dim=0, random_state=0)
    assert (split.alpha_dim, split.beta_dim) == (2, 2)
    flat = gaussian_mixture(alpha_separation=0.0, beta_separation=0.0, random_state=0)
    assert np.allclose(flat.meta["alpha_means"], 0.0) and np.allclose(flat.meta["beta_means"], 0.0)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_labeled_unlabeled_and_test_parts_share_no_sample(name):
    """Data hygiene of every generator: D_l, D_u and the test set are drawn as disjoint samples (continuous
    features: two parts holding the same α row means one sample sits in both, e.g. an off-by-one cut)."""
    split = make_split(name, random_state=0)
    rows = {part: {tuple(np.round(r, 12)) for r in getattr(split, f"{part}_alpha")}
            for part in ("labeled", "unlabeled", "test")}
    assert not rows["labeled"] & rows["unlabeled"]
    assert not rows["labeled"] & rows["test"]
    assert not rows["unlabeled"] & rows["test"]
