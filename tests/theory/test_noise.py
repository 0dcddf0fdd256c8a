"""Noise models: error rates, where the errors go, invariants and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mke_theory.generators import gaussian_mixture, shared_specific, twomoon
from mke_theory.noise import (
    NOISE_MODELS,
    class_conditional_noise,
    make_pseudo_labels,
    noise_rate,
    pair_transition,
    structured_noise,
    symmetric_noise,
)
from mke_theory.testing import eta_strategy, labels_strategy

SEEDS = st.integers(0, 2**32 - 1)


def binomial_tolerance(p, n, extra=0.0):
    """Five standard deviations of a binomial rate plus one count of slack (two-sided tail < 1e-6)."""
    return 5.0 * np.sqrt(p * (1.0 - p) / n) + 1.0 / n + extra


def uniform_labels(n, n_classes, seed):
    return np.random.default_rng(seed).integers(0, n_classes, size=n)


def lda_posterior(alpha, labels, n_classes):
    """P(class | α) of plain LDA (pooled covariance, empirical priors), written independently of noise.py."""
    means = np.stack([alpha[labels == k].mean(axis=0) for k in range(n_classes)])
    centred = alpha - means[labels]
    covariance = centred.T @ centred / len(alpha)
    weights = np.linalg.solve(covariance, means.T)
    priors = np.bincount(labels, minlength=n_classes) / len(labels)
    scores = alpha @ weights - 0.5 * np.sum(means.T * weights, axis=0) + np.log(priors)
    scores -= scores.max(axis=1, keepdims=True)
    posterior = np.exp(scores)
    return posterior / posterior.sum(axis=1, keepdims=True)


# ---- symmetric ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n_classes=st.integers(2, 8), eta=eta_strategy(), seed=SEEDS)
def test_symmetric_rate_large_n(n_classes, eta, seed):
    labels = uniform_labels(5000, n_classes, seed)
    pseudo = symmetric_noise(labels, eta, n_classes=n_classes, random_state=seed + 1)
    assert abs(noise_rate(labels, pseudo) - eta) <= binomial_tolerance(eta, 5000)
    assert pseudo.dtype == np.int64
    assert pseudo.min() >= 0 and pseudo.max() < n_classes


@settings(max_examples=40, deadline=None)
@given(drawn=labels_strategy(), eta=eta_strategy(), seed=SEEDS)
def test_symmetric_rate_and_range(drawn, eta, seed):
    labels, n_classes = drawn
    before = labels.copy()
    pseudo = symmetric_noise(labels, eta, n_classes=n_classes, random_state=seed)
    np.testing.assert_array_equal(labels, before)  # input untouched
    assert not np.shares_memory(pseudo, labels)
    assert pseudo.shape == labels.shape and pseudo.dtype == np.int64
    assert np.all((pseudo >= 0) & (pseudo < n_classes))
    assert abs(noise_rate(labels, pseudo) - eta) <= binomial_tolerance(eta, len(labels))


def test_symmetric_wrong_class_is_uniform_over_the_others():
    labels = np.zeros(6000, dtype=np.int64)
    pseudo = symmetric_noise(labels, 1.0, n_classes=4, random_state=0)
    counts = np.bincount(pseudo, minlength=4)
    assert counts[0] == 0
    # each of the 3 wrong classes: mean 2000, sd sqrt(6000 * 1/3 * 2/3) = 36.5
    assert np.all(np.abs(counts[1:] - 2000) < 5 * 36.5)


def test_symmetric_every_class_reaches_every_other_class():
    labels = np.repeat(np.arange(3), 1000)
    pseudo = symmetric_noise(labels, 0.5, random_state=1)
    for true in range(3):
        changed = pseudo[(labels == true) & (pseudo != labels)]
        assert set(np.unique(changed)) == set(range(3)) - {true}


@settings(max_examples=30, deadline=None)
@given(drawn=labels_strategy(min_size=1, max_size=300), seed=SEEDS)
def test_symmetric_eta_one_changes_all_eta_zero_none(drawn, seed):
    labels, n_classes = drawn
    assert np.all(symmetric_noise(labels, 1.0, n_classes=n_classes, random_state=seed) != labels)
    np.testing.assert_array_equal(symmetric_noise(labels, 0.0, n_classes=n_classes, random_state=seed), labels)


@settings(max_examples=30, deadline=None)
@given(drawn=labels_strategy(min_size=1, max_size=300), eta=eta_strategy(), seed=SEEDS, data=st.data())
def test_symmetric_flips_do_not_depend_on_class_names(drawn, eta, seed, data):
    labels, n_classes = drawn
    permutation = np.asarray(data.draw(st.permutations(range(n_classes))))
    pseudo = symmetric_noise(labels, eta, n_classes=n_classes, random_state=seed)
    renamed = symmetric_noise(permutation[labels], eta, n_classes=n_classes, random_state=seed)
    np.testing.assert_array_equal(pseudo != labels, renamed != permutation[labels])
    assert noise_rate(labels, pseudo) == noise_rate(permutation[labels], renamed)


def test_symmetric_determinism():
    labels = uniform_labels(500, 4, 0)
    a, b, c = (symmetric_noise(labels, 0.3, random_state=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_symmetric_default_n_classes_is_max_plus_one():
    labels = np.array([0, 2, 2, 0, 1] * 200)
    pseudo = symmetric_noise(labels, 1.0, random_state=0)
    assert set(np.unique(pseudo)) == {0, 1, 2}
    with pytest.raises(ValueError, match="n_classes"):
        symmetric_noise(np.zeros(10, dtype=int), 0.5)  # one class: K cannot be inferred
    with pytest.raises(ValueError, match="n_classes"):
        symmetric_noise(np.array([0, 1, 3]), 0.5, n_classes=3)  # a label outside [0, K)


# ---- class-conditional -------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n_classes=st.integers(2, 8), eta=eta_strategy(), seed=SEEDS)
def test_pair_rate_large_n(n_classes, eta, seed):
    labels = uniform_labels(5000, n_classes, seed)
    pseudo = class_conditional_noise(labels, pair_transition(n_classes, eta), random_state=seed + 1)
    assert abs(noise_rate(labels, pseudo) - eta) <= binomial_tolerance(eta, 5000)
    changed = pseudo != labels
    np.testing.assert_array_equal(pseudo[changed], (labels[changed] + 1) % n_classes)


@settings(max_examples=40, deadline=None)
@given(drawn=labels_strategy(), eta=eta_strategy(), seed=SEEDS)
def test_pair_moves_i_to_i_plus_one(drawn, eta, seed):
    labels, n_classes = drawn
    before = labels.copy()
    pseudo = class_conditional_noise(labels, pair_transition(n_classes, eta), random_state=seed)
    np.testing.assert_array_equal(labels, before)
    changed = pseudo != labels
    np.testing.assert_array_equal(pseudo[changed], (labels[changed] + 1) % n_classes)
    assert abs(noise_rate(labels, pseudo) - eta) <= binomial_tolerance(eta, len(labels))


@settings(max_examples=30, deadline=None)
@given(n_classes=st.integers(2, 6), seed=SEEDS, data=st.data())
def test_pair_per_class_rates(n_classes, seed, data):
    rates = np.asarray(data.draw(st.lists(eta_strategy(), min_size=n_classes, max_size=n_classes)))
    labels = uniform_labels(5000, n_classes, seed)
    pseudo = class_conditional_noise(labels, pair_transition(n_classes, rates), random_state=seed)
    expected = rates[labels].mean()
    tolerance = 5.0 * np.sqrt(np.sum(rates[labels] * (1 - rates[labels]))) / 5000 + 1 / 5000
    assert abs(noise_rate(labels, pseudo) - expected) <= tolerance
    for k in np.flatnonzero(rates == 0):
        assert np.all(pseudo[labels == k] == k)
    for k in np.flatnonzero(rates == 1):
        assert np.all(pseudo[labels == k] == (k + 1) % n_classes)


def test_pair_transition_matrix():
    expected = np.array([[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.2, 0.0, 0.8]])
    np.testing.assert_allclose(pair_transition(3, 0.2), expected)
    np.testing.assert_allclose(pair_transition(2, [0.1, 0.4]), [[0.9, 0.1], [0.4, 0.6]])
    np.testing.assert_allclose(pair_transition(2, 1.0), [[0.0, 1.0], [1.0, 0.0]])


def test_class_conditional_follows_each_row_of_the_transition():
    transition = np.array([[0.6, 0.0, 0.4], [0.1, 0.7, 0.2], [0.0, 0.0, 1.0]])
    labels = np.repeat(np.arange(3), 10000)
    pseudo = class_conditional_noise(labels, transition, random_state=3)
    for true in range(3):
        frequencies = np.bincount(pseudo[labels == true], minlength=3) / 10000
        tolerance = 5 * np.sqrt(transition[true] * (1 - transition[true]) / 10000) + 1e-4
        assert np.all(np.abs(frequencies - transition[true]) <= tolerance)
        assert np.all(frequencies[transition[true] == 0] == 0)  # impossible transitions never happen


@settings(max_examples=30, deadline=None)
@given(n_classes=st.integers(2, 6), eta=eta_strategy(), seed=SEEDS, data=st.data())
def test_class_conditional_rate_survives_renaming_classes(n_classes, eta, seed, data):
    """Renaming classes by π and the transition accordingly (T'[π i, π j] = T[i, j]) keeps the rate."""
    permutation = np.asarray(data.draw(st.permutations(range(n_classes))))
    labels = uniform_labels(5000, n_classes, seed)
    transition = pair_transition(n_classes, eta)
    renamed_transition = np.empty_like(transition)
    renamed_transition[np.ix_(permutation, permutation)] = transition
    renamed = class_conditional_noise(permutation[labels], renamed_transition, random_state=seed)
    original = class_conditional_noise(labels, transition, random_state=seed)
    for true, pseudo in ((permutation[labels], renamed), (labels, original)):
        assert abs(noise_rate(true, pseudo) - eta) <= binomial_tolerance(eta, 5000)
    # the renamed errors still follow the pair rule, seen through π
    changed = renamed != permutation[labels]
    inverse = np.argsort(permutation)
    np.testing.assert_array_equal(inverse[renamed[changed]], (labels[changed] + 1) % n_classes)


def test_class_conditional_identity_and_determinism():
    labels = uniform_labels(1000, 5, 1)
    np.testing.assert_array_equal(class_conditional_noise(labels, np.eye(5), random_state=0), labels)
    transition = pair_transition(5, 0.4)
    a, b, c = (class_conditional_noise(labels, transition, random_state=s) for s in (2, 2, 3))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ---- structured --------------------------------------------------------------------------------


def expected_count(eta, n):
    return int(np.floor(eta * n + 0.5))


@settings(max_examples=30, deadline=None)
@given(eta=eta_strategy(), n_classes=st.integers(2, 4), n=st.integers(2, 300), seed=SEEDS)
def test_structured_exact_count(eta, n_classes, n, seed):
    split = gaussian_mixture(n_classes=n_classes, n_unlabeled=n, random_state=seed)
    labels, alpha = split.unlabeled_labels, split.unlabeled_alpha
    before = labels.copy()
    pseudo = structured_noise(labels, alpha, eta, random_state=seed)
    np.testing.assert_array_equal(labels, before)
    assert pseudo.dtype == np.int64 and not np.shares_memory(pseudo, labels)
    assert np.sum(pseudo != labels) == expected_count(eta, n)
    assert noise_rate(labels, pseudo) == expected_count(eta, n) / n
    assert set(np.unique(pseudo)) <= set(np.unique(labels))


@pytest.mark.parametrize("eta", [0.02, 0.1, 0.3, 0.6])
def test_structured_flips_the_samples_alpha_explains_worst(eta):
    split = gaussian_mixture(n_classes=3, n_unlabeled=3000, alpha_separation=2.0, random_state=8)
    labels, alpha = split.unlabeled_labels, split.unlabeled_alpha
    pseudo = structured_noise(labels, alpha, eta, random_state=0)
    flipped = pseudo != labels
    true_posterior = lda_posterior(alpha, labels, 3)[np.arange(len(labels)), labels]
    # every flipped sample has a true-class posterior no higher than any kept one (up to the ridge)
    assert true_posterior[flipped].max() <= true_posterior[~flipped].min() + 1e-6


def test_structured_errors_are_the_alpha_teachers_errors():
    """Two classes: up to the α-classifier's error rate the flips are its mistakes, relabelled as it predicts."""
    split = gaussian_mixture(n_classes=2, n_unlabeled=3000, alpha_separation=1.0, random_state=9)
    labels, alpha = split.unlabeled_labels, split.unlabeled_alpha
    prediction = lda_posterior(alpha, labels, 2).argmax(axis=1)
    error = np.mean(prediction != labels)
    assert error > 0.2  # the α modality is weak here
    pseudo = structured_noise(labels, alpha, error / 2, random_state=0)
    flipped = pseudo != labels
    assert np.all(prediction[flipped] != labels[flipped])
    np.testing.assert_array_equal(pseudo[flipped], prediction[flipped])
    # with eta equal to the error rate the pseudo labels are the α-classifier's predictions
    at_error = structured_noise(labels, alpha, error, random_state=0)
    assert np.mean(at_error == prediction) > 0.999


def test_structured_errors_mostly_the_alpha_teachers_errors_multiclass():
    """K > 2: a sample with true-class posterior below 1/K is always misclassified; the flips at half the
    error rate are (almost) all mistakes of the α-classifier, relabelled as it predicts."""
    split = gaussian_mixture(n_classes=3, n_unlabeled=3000, alpha_separation=1.5, random_state=9)
    labels, alpha = split.unlabeled_labels, split.unlabeled_alpha
    prediction = lda_posterior(alpha, labels, 3).argmax(axis=1)
    error = np.mean(prediction != labels)
    pseudo = structured_noise(labels, alpha, error / 2, random_state=0)
    flipped = pseudo != labels
    assert np.mean(pseudo[flipped] == prediction[flipped]) > 0.98


@pytest.mark.parametrize("eta", [0.05, 0.2, 0.4])
def test_structured_errors_concentrate_where_alpha_is_ambiguous(eta):
    """On TwoMoon (α = x coordinate) and two-class Gaussians, flipped samples have lower Bayes true-class margin.

    The margin is the true class's log-odds under the generating model; the flips sit at the
    low end of it while symmetric noise at the same rate does not.
    """
    split = gaussian_mixture(n_unlabeled=4000, alpha_separation=1.0, random_state=10)
    labels, alpha = split.unlabeled_labels, split.unlabeled_alpha
    means = np.asarray(split.meta["alpha_means"])
    log_odds = alpha @ (means[1] - means[0]) - 0.5 * (means[1] @ means[1] - means[0] @ means[0])
    margin = np.where(labels == 1, log_odds, -log_odds)
    structured = structured_noise(labels, alpha, eta, random_state=0) != labels
    symmetric = symmetric_noise(labels, eta, random_state=0) != labels
    assert margin[structured].mean() < margin[~structured].mean() - 0.5
    assert margin[structured].mean() < margin[symmetric].mean() - 0.5
    moons = twomoon(n_samples=2000)
    structured_moons = structured_noise(moons.unlabeled_labels, moons.unlabeled_alpha, eta, random_state=0)
    x = moons.unlabeled_alpha[:, 0]
    flipped = structured_moons != moons.unlabeled_labels
    # left moon (class 0) spans low x, right moon (class 1) high x: errors are on the "wrong" side for the class
    side = np.where(moons.unlabeled_labels == 1, x, -x)
    assert side[flipped].mean() < side[~flipped].mean()


def test_structured_multiclass_goes_to_most_probable_wrong_class():
    split = shared_specific(n_classes=4, n_unlabeled=2000, random_state=2)
    labels, alpha = split.unlabeled_labels, split.unlabeled_alpha
    pseudo = structured_noise(labels, alpha, 0.5, random_state=0)
    posterior = lda_posterior(alpha, labels, 4)
    posterior[np.arange(len(labels)), labels] = -np.inf
    flipped = pseudo != labels
    assert np.mean(pseudo[flipped] == posterior[flipped].argmax(axis=1)) > 0.99


def test_structured_ties_broken_by_random_state():
    labels = np.repeat([0, 1], 50)
    alpha = np.zeros((100, 2))  # α carries nothing: every sample of a class has the same posterior
    a, b, c = (structured_noise(labels, alpha, 0.2, random_state=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.sum(a != labels) == 20 and np.sum(c != labels) == 20


def test_structured_extremes():
    split = gaussian_mixture(n_classes=3, n_unlabeled=100, random_state=0)
    labels, alpha = split.unlabeled_labels, split.unlabeled_alpha
    np.testing.assert_array_equal(structured_noise(labels, alpha, 0.0, random_state=0), labels)
    assert np.all(structured_noise(labels, alpha, 1.0, random_state=0) != labels)


def test_structured_only_uses_present_classes():
    labels = np.array([0, 0, 0, 3, 3, 3, 3, 0])
    alpha = np.arange(8.0)[:, None]
    pseudo = structured_noise(labels, alpha, 1.0, random_state=0)
    np.testing.assert_array_equal(pseudo, 3 - labels)


# ---- noise_rate and dispatch -------------------------------------------------------------------


def test_noise_rate_hand_computed():
    assert noise_rate([0, 1, 2, 3], [0, 1, 0, 0]) == 0.5
    assert noise_rate([1], [1]) == 0.0
    assert noise_rate(np.array([2, 2, 2]), np.array([0, 1, 2])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("model", sorted(NOISE_MODELS))
def test_make_pseudo_labels_dispatches(model):
    split = gaussian_mixture(n_classes=3, n_unlabeled=600, random_state=4)
    labels, alpha = split.unlabeled_labels, split.unlabeled_alpha
    pseudo = make_pseudo_labels(model, labels, 0.25, alpha=alpha, n_classes=3, random_state=7)
    direct = {
        "symmetric": lambda: symmetric_noise(labels, 0.25, n_classes=3, random_state=7),
        "class-conditional": lambda: class_conditional_noise(labels, pair_transition(3, 0.25), random_state=7),
        "structured": lambda: structured_noise(labels, alpha, 0.25, random_state=7),
    }[model]()
    np.testing.assert_array_equal(pseudo, direct)
    np.testing.assert_array_equal(make_pseudo_labels(model, labels, 0.0, alpha=alpha, random_state=7), labels)


# ---- argument validation -----------------------------------------------------------------------


@pytest.mark.parametrize("eta", [1.2, -0.1, float("nan"), "0.5", None])
def test_eta_out_of_range(eta):
    labels = np.array([0, 1, 0, 1])
    for call in (
        lambda: symmetric_noise(labels, eta),
        lambda: pair_transition(2, eta),
        lambda: structured_noise(labels, np.ones((4, 1)), eta),
        lambda: make_pseudo_labels("symmetric", labels, eta),
    ):
        with pytest.raises(ValueError, match="^eta"):
            call()


def test_eta_message_states_the_interval():
    with pytest.raises(ValueError, match=r"^eta must lie in \[0, 1\], got 1.2$"):
        symmetric_noise([0, 1], 1.2)


@pytest.mark.parametrize(
    ("transition", "message"),
    [
        (np.ones((2, 3)) / 3, "square"),
        (np.array([0.5, 0.5]), "square"),
        (np.array([[1.0]]), "at least 2"),
        (np.array([[1.5, -0.5], [0.0, 1.0]]), "nonnegative"),
        (np.array([[0.5, 0.4], [0.0, 1.0]]), "sum to 1"),
        (np.array([[0.5, 0.5 + 1e-6], [0.0, 1.0]]), "sum to 1"),
        (np.array([[np.nan, 1.0], [0.0, 1.0]]), "finite"),
    ],
)
def test_bad_transition(transition, message):
    with pytest.raises(ValueError, match=message):
        class_conditional_noise([0, 1, 1], transition)


def test_transition_within_tolerance_is_accepted():
    transition = np.array([[0.3, 0.7 + 1e-10], [0.0, 1.0]])
    assert class_conditional_noise([0, 1], transition, random_state=0).shape == (2,)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="labels must hold class indices < n_classes=2"):
        class_conditional_noise([0, 1, 2], np.eye(2))
    with pytest.raises(ValueError, match="alpha is required"):
        make_pseudo_labels("structured", [0, 1, 0], 0.1)
    with pytest.raises(ValueError, match="alpha has 2 rows but 3 were expected"):
        structured_noise([0, 1, 0], np.zeros((2, 1)), 0.1)
    with pytest.raises(ValueError, match="at least two classes"):
        structured_noise([1, 1, 1], np.zeros((3, 1)), 0.1)
    with pytest.raises(ValueError, match="pseudo_labels has 2 entries but labels has 3"):
        noise_rate([0, 1, 0], [0, 1])
    with pytest.raises(ValueError, match="at least one"):
        noise_rate([], [])
    with pytest.raises(ValueError, match=r"eta\[1\] must lie in \[0, 1\]"):
        pair_transition(2, [0.1, 1.5])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        pair_transition(3, [0.1, 0.2])
    with pytest.raises(ValueError, match="n_classes must lie in"):
        pair_transition(1, 0.1)
    with pytest.raises(ValueError, match="n_classes must lie in"):
        symmetric_noise([0, 1], 0.1, n_classes=1)
    with pytest.raises(ValueError, match="labels must be 1-d"):
        symmetric_noise([[0, 1]], 0.1)
    with pytest.raises(ValueError, match="labels must hold class indices >= 0"):
        symmetric_noise([0, -1, 1], 0.1, n_classes=2)
    with pytest.raises(ValueError, match="random_state"):
        symmetric_noise([0, 1], 0.1, random_state="seed")
    with pytest.raises(ValueError, match="model must be one of 'symmetric', 'class-conditional', 'structured'"):
        make_pseudo_labels("asymmetric", [0, 1], 0.1)
