"""The hypothesis strategies of ``mke_theory.testing`` produce valid, varied values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import find, given, settings

from mke_theory.core.split import MultimodalSplit
from mke_theory.generators import GENERATORS
from mke_theory.testing import eta_strategy, labels_strategy, logits_strategy, multimodal_split_strategy


@settings(max_examples=50, deadline=None)
@given(labels_strategy())
def test_labels_default_bounds(drawn):
    labels, n_classes = drawn
    assert isinstance(labels, np.ndarray) and labels.dtype == np.int64 and labels.ndim == 1
    assert 2 <= n_classes <= 5
    assert 1 <= labels.size <= 200
    assert labels.min() >= 0 and labels.max() < n_classes


@settings(max_examples=25, deadline=None)
@given(labels_strategy(min_classes=7, max_classes=7, min_size=13, max_size=13))
def test_labels_custom_bounds(drawn):
    labels, n_classes = drawn
    assert n_classes == 7 and labels.shape == (13,)
    assert np.all((labels >= 0) & (labels < 7))


def test_labels_reach_the_bounds():
    assert find(labels_strategy(), lambda d: d[1] == 5)[1] == 5
    assert find(labels_strategy(), lambda d: d[0].size == 200)[0].size == 200
    assert find(labels_strategy(), lambda d: d[0].max() == d[1] - 1 and d[1] == 5)[0].max() == 4


@settings(max_examples=50, deadline=None)
@given(eta_strategy())
def test_eta_in_unit_interval(eta):
    assert isinstance(eta, float) and np.isfinite(eta) and 0.0 <= eta <= 1.0


@settings(max_examples=25, deadline=None)
@given(eta_strategy(0.2, 0.3))
def test_eta_custom_bounds(eta):
    assert 0.2 <= eta <= 0.3


def test_eta_reaches_the_endpoints():
    assert find(eta_strategy(), lambda e: e == 0.0) == 0.0
    assert find(eta_strategy(), lambda e: e == 1.0) == 1.0


@settings(max_examples=50, deadline=None)
@given(logits_strategy())
def test_logits_finite_and_bounded(logits):
    assert logits.dtype == np.float64 and logits.ndim == 2
    assert 1 <= logits.shape[0] <= 32 and 2 <= logits.shape[1] <= 10
    assert np.all(np.isfinite(logits)) and np.all(np.abs(logits) <= 20.0)


@settings(max_examples=25, deadline=None)
@given(logits_strategy(min_samples=4, max_samples=4, min_classes=3, max_classes=3, bound=1.0))
def test_logits_custom_bounds(logits):
    assert logits.shape == (4, 3) and np.all(np.abs(logits) <= 1.0)


@settings(max_examples=30, deadline=None)
@given(multimodal_split_strategy())
def test_splits_are_valid(split):
    assert isinstance(split, MultimodalSplit)
    assert split.name in GENERATORS
    assert split.n_classes >= 2
    assert split.n_labeled >= 1 and split.n_unlabeled >= 1 and len(split.test_labels) >= 1
    assert split.unlabeled_labels is not None and split.unlabeled_labels.shape == (split.n_unlabeled,)
    for labels in (split.labels, split.unlabeled_labels, split.test_labels):
        assert labels.min() >= 0 and labels.max() < split.n_classes
    for x in (split.labeled_alpha, split.unlabeled_alpha, split.unlabeled_beta, split.test_alpha, split.test_beta):
        assert np.all(np.isfinite(x))
    assert split.unlabeled_alpha.shape[1] == split.test_alpha.shape[1] == split.alpha_dim
    assert split.unlabeled_beta.shape[1] == split.test_beta.shape[1] == split.beta_dim


@settings(max_examples=20, deadline=None)
@given(multimodal_split_strategy(names=["gaussian"]))
def test_splits_restricted_to_names(split):
    assert split.name == "gaussian"
    # the strategy draws at least one labeled sample per class, and gaussian balances them
    assert set(np.unique(split.labels)) == set(range(split.n_classes))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_splits_reach_every_generator(name):
    assert find(multimodal_split_strategy(), lambda s: s.name == name).name == name


@pytest.mark.parametrize(
    ("factory", "kwargs", "parameter"),
    [
        (labels_strategy, {"min_classes": 1}, "min_classes"),
        (labels_strategy, {"min_classes": 4, "max_classes": 3}, "max_classes"),
        (labels_strategy, {"min_size": 5, "max_size": 4}, "max_size"),
        (eta_strategy, {"min_value": -0.1}, "min_value"),
        (eta_strategy, {"min_value": 0.5, "max_value": 0.4}, "max_value"),
        (logits_strategy, {"bound": 0.0}, "bound"),
        (logits_strategy, {"min_samples": 0}, "min_samples"),
        (multimodal_split_strategy, {"names": ["no-such-generator"]}, "names"),
    ],
)
def test_bad_strategy_arguments(factory, kwargs, parameter):
    with pytest.raises(ValueError, match=f"^{parameter} must"):
        factory(**kwargs)

