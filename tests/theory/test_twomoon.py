"""The paper's TwoMoon claim, in seconds on CPU, and the official protocol's details."""

import random

import numpy as np
import pytest

from mke_theory.generators import twomoon
from mke_theory.reference import NOTEBOOK_REFERENCE
from mke_theory.twomoon import TwoMoonConfig, official_seeds, run_twomoon


def _means(result):
    by = {}
    for r in result.runs:
        by.setdefault((r["task"], r["method"], r["variant"]), []).append(r["metrics"]["test_accuracy"])
    return {k: 100 * float(np.mean(v)) for k, v in by.items()}


@pytest.fixture(scope="module")
def ten_runs():
    return run_twomoon(TwoMoonConfig(n_runs=10))


def test_official_split_sizes_and_modalities():
    s = twomoon()
    assert (s.n_labeled, s.n_unlabeled, len(s.test_labels)) == (30, 270, 200)
    assert s.alpha_dim == s.beta_dim == 1
    # α is the x coordinate, β the y coordinate of the same points
    assert np.allclose(s.test_multimodal[:, 0], s.test_alpha[:, 0])


def test_seeds_follow_the_notebook_stream_without_repeats():
    rng = random.Random(42)
    stream = [rng.randint(0, 100) for _ in range(10)]
    seeds = official_seeds(10)
    assert seeds[:8] == stream[:8] and len(set(seeds)) == 10
    assert all(s in seeds for s in stream)


def test_mm_student_beats_um_student_beats_teacher(ten_runs):
    m = _means(ten_runs)
    teacher, um, mm = m[("twomoon", "teacher", "")], m[("twomoon", "um_student", "")], m[("twomoon", "mm_student", "")]
    assert mm > um > teacher
    assert m[("twomoon", "mm_supervised", "")] > mm


def test_ten_run_means_match_the_official_notebook(ten_runs):
    m = _means(ten_runs)
    for method, ref in NOTEBOOK_REFERENCE.items():
        tolerance = 2.5 if method == "teacher" else 1.5
        assert abs(m[("twomoon", method, "")] - ref) <= tolerance, (method, m[("twomoon", method, "")], ref)
    assert 100 * ten_runs.pseudo_label_accuracy == pytest.approx(64.4, abs=2.5)


def test_without_regularisation_the_mm_student_barely_beats_the_um_one():
    result = run_twomoon(TwoMoonConfig(n_runs=3, regularizer="none"))
    m = _means(result)
    assert m[("twomoon", "mm_student", "")] - m[("twomoon", "um_student", "")] < 3.0


def test_runs_carry_resolved_config_and_amortised_wall_time(ten_runs):
    students = [r for r in ten_runs.runs if r["method"] != "teacher"]
    assert len(students) == 30 and {r["seed"] for r in students} == set(official_seeds(10))
    for r in ten_runs.runs:
        assert r["config"]["split_id"] == ten_runs.split.split_id and r["wall_time_s"] > 0
        assert 0.0 <= r["metrics"]["test_accuracy"] <= 1.0


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="n_runs"):
        TwoMoonConfig(n_runs=0)
    with pytest.raises(ValueError, match="regularizer"):
        TwoMoonConfig(regularizer="mixup")
    with pytest.raises(ValueError, match="seeds"):
        TwoMoonConfig(seeds=(1, 1))
