"""The check's statistical internals, each against the bug it catches (issue 24 point 7; the mutants are in
benchmarks/mutation_check.py): the certificate on graph families of known expansion beyond random graphs, the
standardisation of the validation data with D_u's statistics, every term of each interval, the cross-fitting of
β's weight, and the alignment of rows and pseudo labels under ``--max-samples``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mke_theory import diagnose
from mke_theory import expansion as ex
from mke_theory.cli import cli

# ---- the certificate: graphs of known expansion ---------------------------------------------------------------


def _families():
    """(id, graph, a, the exact minimum certified ratio over sets of mass ≤ a) from ``expansion.known``; the small
    ones (≤ 16 vertices) go through the enumeration, the large ones through the spectral bound."""
    for n, k, a in ((12, 2, 0.3), (40, 2, 0.3), (60, 3, 0.2)):
        m = int(np.floor(a * n))
        yield f"circulant-{n}-{k}", ex.circulant_graph(n, k), a, (m + 2 * k) / m
    for m, a in ((8, 0.3), (20, 0.3), (30, 0.2)):
        s = int(np.floor(a * 2 * m))
        yield f"bipartite-{m}-{m}", ex.bipartite_graph(m), a, (s + m) / s
    for q, p, a in ((8, 6, 0.3), (30, 20, 0.3), (40, 40, 0.2)):
        yield f"clique-{q}-pendants-{p}", ex.clique_with_pendants(q, p), a, 2.0
    for n, a in ((12, 0.2), (40, 0.1)):
        yield f"cocktail-party-{n}", ex.cocktail_party_graph(n), a, n - 1.0


FAMILIES = list(_families())


@pytest.mark.parametrize("graph,a,known", [f[1:] for f in FAMILIES], ids=[f[0] for f in FAMILIES])
def test_the_certificate_brackets_the_known_expansion(graph, a, known):
    n = graph.shape[0]
    labels = np.zeros(n, dtype=np.int64)
    certified = ex.certified_expansion(graph, labels, a)
    assert 1.0 <= certified <= known + 1e-9  # a lower bound, on every family
    assert ex.worst_case_expansion(graph, labels, a=a, random_state=0).c == pytest.approx(known)  # a real witness
    if n <= ex.BRUTE_FORCE_MAX_VERTICES:  # enumerated: exact
        assert certified == pytest.approx(known) and ex.brute_force_expansion(graph, labels, a) == pytest.approx(known)


def test_the_spectral_bound_is_a_lower_bound_on_every_family():
    # the spectral bound alone, also on the small graphs (certified_expansion enumerates those)
    for _, graph, a, known in FAMILIES:
        largest = int(np.floor(a * graph.shape[0] + 1e-9))
        assert ex._spectral_certified(graph.toarray(), largest) <= known + 1e-9


# ---- the standardisation of the validation data ---------------------------------------------------------------


def _two_classes(n, rng, shift=0.0, beta_informative=False, alpha_informative=True):
    """(alpha (n, 2), beta (n, 2), labels): classes 0 / 1 apart by 6 in α's first feature and / or β's."""
    y = np.arange(n) % 2
    alpha = rng.normal(size=(n, 2)) + (6.0 * y[:, None] * [1, 0] if alpha_informative else 0.0) + shift
    beta = rng.normal(size=(n, 2)) + (6.0 * y[:, None] * [1, 0] if beta_informative else 0.0)
    return alpha, beta, y


# ---- the kNN probe: scikit-learn's classifier, computed in numpy ---------------------------------------------


@pytest.mark.parametrize("m, n, d, k", [(40, 7, 1, 2), (300, 120, 12, 3), (1000, 333, 50, 10), (25, 10, 3, 4)])
def test_the_probe_predicts_what_sklearns_distance_weighted_knn_predicts(m, n, d, k):
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(m + n)
    train, test = rng.standard_normal((m, d)), rng.standard_normal((n, d))
    targets = rng.integers(0, k, m) * 3 + 5  # class values that are not 0 … k−1
    ref = KNeighborsClassifier(n_neighbors=min(diagnose.PROBE_K, m), weights="distance", algorithm="brute")
    assert np.array_equal(diagnose._probe(train, targets, test), ref.fit(train, targets).predict(test))


def test_the_probe_in_blocks_is_the_probe_in_one_piece(monkeypatch):
    rng = np.random.default_rng(0)
    train, test, targets = rng.standard_normal((500, 6)), rng.standard_normal((90, 6)), rng.integers(0, 4, 500)
    whole = diagnose._probe(train, targets, test)
    monkeypatch.setattr(diagnose, "PROBE_BLOCK", 1000)  # two test rows per block
    assert np.array_equal(diagnose._probe(train, targets, test), whole)


def test_a_neighbour_at_distance_zero_votes_alone_and_vote_ties_go_to_the_smallest_class():
    train = np.array([[0.0], [1.0], [1.1], [1.2], [0.0]])
    targets = np.array([7, 2, 2, 2, 7])
    # at 0 exactly: the two copies of the point (class 7) outvote three closer-than-average neighbours of class 2
    assert diagnose._probe(train, targets, np.array([[0.0]]))[0] == 7
    # equidistant from one neighbour of class 4 and one of class 1: the tie goes to class 1
    assert diagnose._probe(np.array([[-1.0], [1.0]]), np.array([4, 1]), np.array([[0.0]]))[0] == 1


def test_the_validation_data_is_standardised_with_d_us_statistics():
    # validation α shifted by +6 along the class axis: with D_u's statistics every validation sample lies on class
    # 1's side (the α probe scores about 1/2); standardised with its own statistics the shift would vanish (about 1)
    rng = np.random.default_rng(0)
    a_u, b_u, y_u = _two_classes(400, rng)
    a_v, b_v, y_v = _two_classes(100, rng)
    same = diagnose.check(a_u, b_u, y_u, a_v, b_v, y_v, y_v)
    shifted = diagnose.check(a_u, b_u, y_u, a_v + [6.0, 0.0], b_v, y_v, y_v)
    assert same["accuracy"]["um_probe"] >= 0.95
    assert shifted["accuracy"]["um_probe"] <= 0.6
    za, va = diagnose._zscore(a_u, a_v)
    assert va == pytest.approx((a_v - a_u.mean(0)) / a_u.std(0))
    assert za == pytest.approx((a_u - a_u.mean(0)) / a_u.std(0))


# ---- every term of each interval ------------------------------------------------------------------------------


def test_paired_interval_is_mean_plus_minus_z_times_both_variance_terms():
    a = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0, 1], bool)
    b = np.array([0, 1, 0, 0, 0, 1, 1, 0, 1, 1], bool)
    d = a.astype(float) - b
    for extra in (0.0, 0.003):
        got = diagnose._paired(a, b, extra_variance=extra)
        half = 1.959964 * np.sqrt(d.var(ddof=1) / len(d) + extra)
        assert got["estimate"] == pytest.approx(d.mean())
        assert got["low"] == pytest.approx(d.mean() - half, rel=1e-6)
        assert got["high"] == pytest.approx(d.mean() + half, rel=1e-6)


def test_each_interval_of_the_prediction_has_its_terms(monkeypatch):
    # the probe against the teacher and against the α probe: the validation sampling; β's contribution: that plus
    # the spread of the shuffled-β probes' accuracies, var(ddof=1) · (1 + 1/N_PERMUTATIONS) (the real probe is one
    # more shuffle)
    calls, crossfits = [], []
    paired, crossfit = diagnose._paired, diagnose._crossfit

    def record_paired(a, b, extra_variance=0.0):
        calls.append((np.asarray(a, float), np.asarray(b, float), extra_variance))
        return paired(a, b, extra_variance)

    def record_crossfit(correct, folds):
        crossfits.append(crossfit(correct, folds))
        return crossfits[-1]

    monkeypatch.setattr(diagnose, "_paired", record_paired)
    monkeypatch.setattr(diagnose, "_crossfit", record_crossfit)
    rng = np.random.default_rng(1)
    a_u, b_u, y_u = _two_classes(200, rng, alpha_informative=False, beta_informative=True)
    a_u[:, 0] += 1.5 * y_u  # α weakly informative: the probes' outcomes vary
    a_v, b_v, y_v = _two_classes(80, rng, alpha_informative=False, beta_informative=True)
    a_v[:, 0] += 1.5 * y_v
    teacher = np.where(np.arange(80) % 3 == 0, 1 - y_v, y_v)
    za, va = diagnose._zscore(a_u, a_v)
    zb, vb = diagnose._zscore(b_u, b_v)
    r = diagnose.predict_gain(za, zb, y_u, va, vb, y_v, teacher)
    # the four raw differences, then the α probe against the teacher (the alarm of ``calibrated``)
    assert len(calls) == 5 and len(crossfits) == 1 + diagnose.N_PERMUTATIONS
    draws = np.array([c.mean() for c in crossfits[1:]])
    spread = draws.var(ddof=1) * (1 + 1 / diagnose.N_PERMUTATIONS)
    assert spread > 0
    keys = ("probe_vs_teacher", "predicted_gain_over_um", "student_like_over_um", "beta_contribution")
    for key, (a, b, extra) in zip(keys, calls):
        d = a - b
        assert extra == pytest.approx(spread if key == "beta_contribution" else 0.0), key
        half = 1.959964 * np.sqrt(d.var(ddof=1) / len(d) + (spread if key == "beta_contribution" else 0.0))
        assert r[key]["estimate"] == pytest.approx(d.mean())
        assert r[key]["high"] - r[key]["low"] == pytest.approx(2 * half, rel=1e-5), key
    assert np.array_equal(calls[0][1], teacher == y_v)  # the probe against the teacher …
    assert np.array_equal(calls[2][1], calls[1][1])  # the student-like probe against the α probe …
    w1 = diagnose._probe(np.hstack([za, zb]), y_u, np.hstack([va, vb])) == y_v  # … is β at weight 1, uncross-fitted
    assert np.array_equal(calls[2][0], w1)
    assert np.array_equal(calls[3][0], crossfits[0])  # β's contribution: the real probe …
    assert calls[3][1] == pytest.approx(np.mean(crossfits[1:], axis=0))  # … against the shuffles' mean
    assert np.array_equal(calls[4][0], calls[1][1]) and np.array_equal(calls[4][1], teacher == y_v)


# ---- the cross-fitting of β's weight --------------------------------------------------------------------------


def test_the_weight_is_chosen_on_the_other_fold():
    # weight 0 is right on fold 0 only, weight 1 on fold 1 only: chosen on the other fold, each sample gets the
    # weight that is wrong on it (accuracy 0); chosen on its own fold (or on all samples) it would score 1 (or 1/2)
    folds = np.array([0, 1] * 10)
    correct = {0.0: folds == 0, 1.0: folds == 1}
    assert diagnose._crossfit(correct, folds).sum() == 0
    # a weight that wins on both folds is used on both
    correct = {0.0: np.zeros(20, bool), 1.0: np.ones(20, bool), 2.0: folds == 1}
    assert diagnose._crossfit(correct, folds).all()


def test_predict_gain_draws_balanced_folds_for_the_crossfit(monkeypatch):
    seen = []
    monkeypatch.setattr(diagnose, "_crossfit", lambda correct, folds: seen.append(folds) or correct[0.0])
    rng = np.random.default_rng(2)
    a_u, b_u, y_u = _two_classes(100, rng)
    a_v, b_v, y_v = _two_classes(41, rng)
    diagnose.predict_gain(a_u, b_u, y_u, a_v, b_v, y_v, None)
    folds = seen[0]
    assert set(np.unique(folds)) == {0, 1} and abs(int((folds == 0).sum()) - int((folds == 1).sum())) <= 1
    assert not np.array_equal(folds, np.arange(41) % 2)  # shuffled, not alternating with the sample order


# ---- rows and pseudo labels under --max-samples ---------------------------------------------------------------


@pytest.mark.parametrize("informative", ["alpha", "beta"])
def test_max_samples_keeps_rows_and_pseudo_labels_together(tmp_path, informative):
    # D_u sorted by class, the class in α (or only in β), pseudo labels = the classes: a subsample whose rows of
    # α, β and pseudo labels are drawn apart would score near 1/2 instead of 1
    rng = np.random.default_rng(3)
    a_u, b_u, y_u = _two_classes(600, rng, alpha_informative=informative == "alpha",
                                 beta_informative=informative == "beta")
    order = np.argsort(y_u, kind="stable")
    a_v, b_v, y_v = _two_classes(80, rng, alpha_informative=informative == "alpha",
                                 beta_informative=informative == "beta")
    path = tmp_path / "bundle.npz"
    np.savez(path, unlabeled_alpha=a_u[order], unlabeled_beta=b_u[order], pseudo_labels=y_u[order],
             val_alpha=a_v, val_beta=b_v, val_labels=y_v)
    result = CliRunner().invoke(cli, ["check", "--data", str(path), "--json", "--max-samples", "200"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_used"] == 200 and report["n_samples"] == 600
    probe = "um_probe" if informative == "alpha" else "mm_probe"
    assert report["accuracy"][probe] >= 0.95
