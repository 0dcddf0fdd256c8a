"""benchmarks/bench_check.py: its statistics helpers on hand-computed cases and its control bundles."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_check.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_check", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spearman_with_ties(bench):
    # ranks of x: 1, 2.5, 2.5, 4; of y: 1, 2, 3, 4 -> Pearson of the ranks = 4.5 / sqrt(4.5 * 5) = 0.9487
    assert bench.spearman([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(4.5 / np.sqrt(4.5 * 5))
    assert bench.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert bench.spearman([1, np.nan, 2, 3, 4], [1, 5, 2, 3, 4]) == pytest.approx(1.0)  # NaN pair dropped
    assert np.isnan(bench.spearman([1, 1, 1, 1], [1, 2, 3, 4]))  # a constant score has no ρ


def test_paired_ci_known_example(bench):
    # d = 1, 2, 3: mean 2, sd 1, half width t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051 = 2.484138
    ci = bench.paired_ci([2, 4, 6], [1, 2, 3])
    assert ci["mean"] == pytest.approx(2.0)
    assert (ci["low"], ci["high"]) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-5)
    assert not ci["significant"]  # the interval holds 0
    assert bench.paired_ci([2, 3, 4, 5], [1, 2, 3, 4.1])["significant"]


def test_sign_agreement_unclear_disagrees(bench):
    sig_pos, sig_neg, flat = (dict(mean=m, significant=s) for m, s in ((0.05, True), (-0.05, True), (0.01, False)))
    verdicts = ["helps", "unclear", "hurts", "helps", "hurts"]
    gains = [sig_pos, sig_pos, sig_neg, sig_neg, flat]
    out = bench.sign_agreement(verdicts, gains)
    assert (out["agree"], out["n_significant"]) == (2, 4)  # the unclear one and the wrong sign disagree
    assert out["agreement"] == pytest.approx(0.5)
    assert out["coverage"] == pytest.approx(4 / 5)
    assert out["precision_helps"] == pytest.approx(1 / 2)  # helps on a sig + and a sig − gain
    assert out["three_way"] == pytest.approx(2 / 5)  # helps/sig +, hurts/sig −; unclear ≠ helps; hurts ≠ n.s.
    assert bench.sign_agreement([None, "helps"], [sig_pos, sig_neg])["n_significant"] == 1  # no check: left out


def test_old_label(bench):
    assert bench.old_label("The bound guarantees ... : β is expected to help.") == "helps"
    assert bench.old_label("No guarantee, but ...: β looks helpful, without proof.") == "helps"
    assert bench.old_label("No sign that β helps: the MM space does not separate ...") == "hurts"


def _class_means(x, y):
    return np.stack([x[y == k].mean(0) for k in np.unique(y)])


@pytest.mark.parametrize("name", ["ctrl-indep", "ctrl-copy", "ctrl-redundant", "ctrl-misaligned", "twomoon"])
def test_control_bundles(bench, name):
    b = bench.control_bundle(name)
    sizes = bench.SIZES if name != "twomoon" else dict(labeled=30, val=100, test=200, unlabeled=270)
    for part, n in sizes.items():
        a_key, y_key = ("labeled_alpha", "labels") if part == "labeled" else (f"{part}_alpha", f"{part}_labels")
        assert len(b[a_key]) == len(b[y_key]) == n
        if part != "labeled":
            assert len(b[f"{part}_beta"]) == n
    n_classes = 2 if name == "twomoon" else bench.K
    assert set(np.unique(b["test_labels"])) == set(range(n_classes))
    assert np.array_equal(bench.control_bundle(name)["unlabeled_beta"], b["unlabeled_beta"])  # fixed seed


def test_independent_beta_carries_no_class(bench):
    b = bench.control_bundle("ctrl-indep")
    x, y = b["unlabeled_beta"], b["unlabeled_labels"]
    noise = 4 / np.sqrt(len(y) / bench.K)  # 4 standard errors of a class mean of unit-variance noise
    assert np.abs(_class_means(x, y)).max() < noise
    assert np.abs(_class_means(b["unlabeled_alpha"], y)).max() > 1.0  # while α does


def test_redundant_beta_is_noise_near_the_boundary(bench):
    b = bench.control_bundle("ctrl-redundant")
    a, x, y = b["unlabeled_alpha"], b["unlabeled_beta"], b["unlabeled_labels"]
    means = bench.SEPARATION / np.sqrt(2) * np.eye(bench.K, bench.DIM)
    near = bench.bayes_gap(a, means) <= bench.GAP
    assert 0.2 < near.mean() < 0.8
    noise = 4 / np.sqrt(near.sum() / bench.K)
    assert np.abs(_class_means(x[near], y[near])).max() < noise  # no class signal near the boundary
    assert np.abs(_class_means(x[~near], y[~near])).max() > 1.5  # the class far from it


def test_noisy_copy(bench):
    b = bench.control_bundle("ctrl-copy")
    assert np.std(b["unlabeled_beta"] - b["unlabeled_alpha"]) == pytest.approx(0.5, rel=0.05)


def test_misaligned_beta_shows_the_next_class_in_d_u_only(bench):
    b = bench.control_bundle("ctrl-misaligned")
    beta_means = 4.0 / np.sqrt(2) * np.eye(bench.K, bench.DIM)
    for part, shift in (("unlabeled", 1), ("val", 0), ("test", 0)):
        y = b[f"{part}_labels"]
        nearest = np.argmin(((b[f"{part}_beta"][:, None, :] - beta_means[None]) ** 2).sum(-1), axis=1)
        assert np.mean(nearest == (y + shift) % bench.K) > 0.9, part
