"""benchmarks/bench_check.py: its statistics helpers and decision scores on hand-computed cases, and the split of
benchmarks/check_cases.py (deterministic, disjoint, stratified by source)."""

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


# ---- issue 24: the case split and the decision scores ---------------------------------------------------------
@pytest.fixture(scope="module")
def cases_module(bench):
    import sys

    return sys.modules["check_cases"]  # bench_check.py imports it from benchmarks/


def test_split_is_deterministic_disjoint_and_stratified(cases_module):
    cases = cases_module.all_cases()
    names = [c.name for c in cases]
    assert len(cases) >= 60 and len(set(names)) == len(names)
    halves = cases_module.assign_halves(cases)
    assert halves == cases_module.assign_halves(list(reversed(cases)))  # not a function of the list's order
    assert set(halves.values()) == {"tuning", "heldout"} and set(halves) == set(names)  # every case in one half
    fresh = [c.name for w in ("fresh", "fresh2", "fresh3") for c in cases_module.all_cases(w)]
    assert not set(names) & set(fresh) and len(set(fresh)) == len(fresh)  # the fresh sets are new cases
    for source in cases_module.SOURCES:
        got = [halves[c.name] for c in cases if c.source == source]
        assert abs(got.count("tuning") - got.count("heldout")) <= 1, source  # half of every source, ±1


def test_split_hash_is_not_salted(cases_module):
    import hashlib

    assert cases_module._h("abc") == int(hashlib.sha256(b"abc").hexdigest()[:8], 16)


def test_regret_of_always_and_never_on_a_hand_made_table(bench):
    teacher = [0.80, 0.60, 0.70]
    mm = [0.75, 0.70, 0.70]  # MKE hurts by 5, helps by 10, ties
    assert bench.regret([True] * 3, teacher, mm) == pytest.approx(0.05 / 3)  # always: loses the 5 of case 1
    assert bench.regret([False] * 3, teacher, mm) == pytest.approx(0.10 / 3)  # never: misses the 10 of case 2
    assert bench.regret([False, True, True], teacher, mm) == pytest.approx(0.0)  # the oracle
    assert bench.regret([True, False, False], teacher, mm) == pytest.approx(0.15 / 3)  # every sign swapped


def test_score_counts_unclear_as_keeping_the_teacher(bench):
    rows = [dict(teacher=[0.6], mm_student=[0.7], gain=dict(mean=0.1), p=dict(verdict="unclear")),
            dict(teacher=[0.8], mm_student=[0.7], gain=dict(mean=-0.1), p=dict(verdict="hurts"))]
    out = bench.score(rows, "p")
    assert out["regret"] == pytest.approx(0.05) and out["unclear"] == pytest.approx(0.5)


def test_a_swapped_sign_fails_rho_and_coverage(bench):
    measured = np.array([-0.04, -0.01, 0.02, 0.05])
    good = [dict(verdict="helps" if g > 0 else "hurts", estimate=g, low=g - 0.01, high=g + 0.01) for g in measured]
    bad = [dict(verdict="hurts" if g > 0 else "helps", estimate=-g, low=-g - 0.01, high=-g + 0.01) for g in measured]
    rows = [dict(teacher=[0.7], mm_student=[0.7 + g], gain=dict(mean=g), good=p, bad=q)
            for g, p, q in zip(measured, good, bad)]
    s_good, s_bad = bench.score(rows, "good"), bench.score(rows, "bad")
    assert s_good["rho"] == pytest.approx(1.0) and s_bad["rho"] == pytest.approx(-1.0)
    assert s_good["coverage"] == 1.0 and s_bad["coverage"] == 0.0
    assert s_good["regret"] == 0.0 and s_bad["regret"] == pytest.approx(np.abs(measured).mean())


def _prediction(raw, se, beta=(0.05, 0.01), vs_teacher=(0.0, -0.05, 0.05)):
    """A ``predict_gain`` result: the probe difference ``raw`` with paired standard error ``se``."""
    z = 1.959963984540054
    return dict(predicted_gain_over_um=dict(estimate=raw, low=raw - z * se, high=raw + z * se),
                beta_contribution=dict(estimate=beta[0], low=beta[1], high=beta[0] + 0.05),
                predicted_gain=dict(zip(("estimate", "low", "high"), vs_teacher)), teacher_on_val="given")


def test_like_for_like_estimate_interval_and_verdict(bench):
    c = dict(slope=2.0, offset=0.01, gap=0.02, tau=0.0, kappa=1.0, beta_guard="off")
    e = bench.like_for_like(_prediction(0.02, 0.01), 100, c)
    assert e["estimate"] == pytest.approx(0.05)  # 2 · 0.02 + 0.01
    half = 1.959963984540054 * np.sqrt(0.02 ** 2 + 0.02 ** 2)  # slope · se_val = 0.02 and gap 0.02: both terms
    assert (e["low"], e["high"]) == pytest.approx((0.05 - half, 0.05 + half))
    assert e["verdict"] == "helps"  # 0.05 − tau > kappa · slope · se = 0.02
    assert bench.like_for_like(_prediction(-0.01, 0.01), 100, c)["verdict"] == "unclear"  # |−0.01| ≤ 0.02
    assert bench.like_for_like(_prediction(-0.03, 0.01), 100, c)["verdict"] == "hurts"
    text = bench.like_for_like(_prediction(-0.01, 0.01), 100, c)["verdict_text"]
    assert "with 100 validation samples" in text and "±2.0 points" in text and "about 400 would resolve ±1.0" in text


def test_like_for_like_guards(bench):
    c = dict(slope=1.0, offset=0.0, gap=0.01, tau=0.0, kappa=0.0, beta_guard="interval")
    assert bench.like_for_like(_prediction(0.05, 0.01, beta=(0.05, 0.01)), 100, c)["verdict"] == "helps"
    shuffled_as_good = _prediction(0.05, 0.01, beta=(0.02, -0.01))  # β's contribution interval holds 0
    assert bench.like_for_like(shuffled_as_good, 100, c)["verdict"] == "hurts"
    assert bench.like_for_like(shuffled_as_good, 100, dict(c, beta_guard="estimate"))["verdict"] == "helps"
    assert bench.like_for_like(shuffled_as_good, 100, dict(c, beta_guard="off"))["verdict"] == "helps"
    # pseudo labels that lose to the teacher with their whole interval: hurts whatever the probes say
    worse = _prediction(0.05, 0.01, vs_teacher=(-0.2, -0.3, -0.1))
    assert bench.like_for_like(worse, 100, dict(c, beta_guard="off"))["verdict"] == "hurts"


def test_tune_uses_the_rows_it_is_given(bench):
    # a toy tuning half where the probe difference predicts the gain exactly (gain = 0.5 · raw): the fit recovers it
    rows = []
    for raw in np.linspace(-0.1, 0.1, 9):
        rows.append(dict(today=dict(parts=_prediction(float(raw), 0.01, beta=(0.05, 0.01)), n_val=100),
                         gain=dict(mean=0.5 * float(raw)), teacher=[0.7], mm_student=[0.7 + 0.5 * float(raw)]))
    c = bench.tune(rows)
    assert c["slope"] == pytest.approx(0.5) and c["offset"] == pytest.approx(0.0, abs=1e-12)
    picked = [bench.estimate(r, c)["verdict"] == "helps" for r in rows]
    assert bench.regret(picked, [r["teacher"][0] for r in rows], [r["mm_student"][0] for r in rows]) == 0.0
