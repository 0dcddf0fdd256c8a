"""The expansion figure of ``make figures`` shows something: c (certified to searched) and μ against the ball's
radius, and the UM and MM curves differ on the figure's data (they used to be flat lines at c = 1, the UM curve
hidden under the MM one)."""

from __future__ import annotations

import numpy as np
import pytest

from mke_theory import diagnose
from mke_theory import expansion as ex
from mke_theory.expansion.profile import SCALES, space_profiles
from mke_theory.generators import make_split
from mke_theory.noise import make_pseudo_labels


def test_the_figures_two_spaces_differ_on_its_data():
    # the figure's data: simulate's default sweep (gaussian, symmetric, data seed 0) at its median η > 0, 0.3,
    # with the teacher's classes drawn as simulate draws them (toy.simulate._labeller_rng(data_seed + 1, η))
    split = make_split("gaussian", random_state=0)
    teacher = make_pseudo_labels("symmetric", split.test_labels, 0.3, alpha=split.test_alpha, n_classes=2,
                                 random_state=np.random.default_rng([1, 300_000]))
    # prepared as paper_figures/expansion_figure.py prepares it (profiles())
    za, va = diagnose._zscore(split.unlabeled_alpha, split.test_alpha)
    zb, vb = diagnose._zscore(split.unlabeled_beta, split.test_beta)
    a_bar = diagnose._a_bar(split.test_labels, teacher)
    spaces = {"um": (va, diagnose.t_radius([za], 0.5)), "mm": (np.hstack([va, vb]), diagnose.t_radius([za, zb], 0.5))}
    scales = (0.5, 2.0, 4.0)
    p = space_profiles(spaces, split.test_labels, a_bar, scales=scales)
    um, mm = p["um"], p["mm"]
    assert list(um["scale"]) == list(scales) and 0 < a_bar < 0.5
    assert um["radius"] == pytest.approx(np.array(scales) * spaces["um"][1])
    assert not np.array_equal(um["c_lower"], mm["c_lower"])  # the curves differ: neither hides the other
    assert not np.array_equal(um["mu"], mm["mu"]) and abs(um["mu"][0] - mm["mu"][0]) > 0.3
    for space in (um, mm):
        assert np.all(space["c_lower"] <= space["c_upper"])  # a band: certified below, searched above
        assert len(set(space["c_upper"].tolist())) > 1  # not a flat line
        assert np.all(np.diff(space["mu"]) >= 0)  # a larger ball reaches more pairs
    assert SCALES[0] < 1 < SCALES[-1]


def test_radius_profile_spans_isolated_balls_to_cliques():
    # two tight classes 10 apart: a tiny ball reaches nothing (c = 1, μ = 0), a ball of 1 joins each class into a
    # clique (c = +inf) and no pair of classes (μ = 0), a ball of 6 reaches across (μ = 1)
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    x = (10.0 * y)[:, None] + rng.uniform(0, 1, size=(40, 1))
    p = ex.radius_profile(x, y, [1e-4, 1.0, 6.0], a=0.3)
    assert p["c_lower"][0] == p["c_upper"][0] == 1.0 and p["mu"][0] == 0.0
    assert p["c_lower"][1] == np.inf and p["mu"][1] == 0.0
    assert p["mu"][2] == 1.0
