"""The self-training bound (Wei et al. 2021, Thm 4.3): hand values, monotonicity, the domain, the
label-correction condition in closed form, vectorisation and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mke_theory.bounds import (
    Bound,
    Correction,
    label_correction,
    max_mu_for_correction,
    min_c_for_correction,
    self_training_bound,
    wei_objective,
)
from mke_theory.testing import eta_strategy

SETTINGS = settings(max_examples=60, deadline=None)

rates = eta_strategy()
# Expansion factors inside the theorem's domain, kept moderate so differences stay far above rounding.
c_in = st.floats(min_value=3.0, max_value=1e3, exclude_min=True, allow_nan=False)
c_out = st.floats(max_value=3.0, allow_nan=False)
outside_rates = st.one_of(
    st.floats(max_value=0.0, exclude_max=True, allow_nan=False),
    st.floats(min_value=1.0, exclude_min=True, allow_nan=False),
)
# Anything real: in and out of the domain, infinities and NaN included.
any_value = st.one_of(rates, c_in, c_out, outside_rates, st.just(np.nan), st.just(np.inf), st.just(3.0))


def by_hand(err, mu, c):
    """2/(c−1)·e + 2c/(c−1)·μ written out, independently of the module."""
    return 2.0 / (c - 1.0) * err + 2.0 * c / (c - 1.0) * mu


# ---- hand-computed values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "mu", "c", "expected"),
    [
        (0.3, 0.01, 5.0, 0.175),  # 2/4·0.3 + 10/4·0.01 = 0.15 + 0.025
        (0.6, 0.1, 7.0, 0.2 + 1.4 / 6.0),  # 2/6·0.6 + 14/6·0.1
        (0.2, 0.0, 11.0, 0.04),  # 2/10·0.2, no separation term
        (0.0, 0.05, 3.5, 0.14),  # 0 + 7/2.5·0.05
        (0.4, 0.1, np.inf, 0.2),  # limit c → inf: 2μ
    ],
)
def test_hand_values(err, mu, c, expected):
    bound = self_training_bound(err, mu, c)
    assert float(bound.value) == pytest.approx(expected, rel=1e-12)
    assert bool(bound.in_domain) and not bool(bound.vacuous) and str(bound.reason) == ""


def test_scalar_input_gives_0d_read_only_arrays():
    bound = self_training_bound(0.3, 0.01, 5)
    for field in ("value", "in_domain", "vacuous", "reason", "pseudo_label_error", "mu", "c"):
        array = getattr(bound, field)
        assert isinstance(array, np.ndarray) and array.shape == ()
        assert not array.flags.writeable
    assert isinstance(float(bound.value), float)
    with pytest.raises(AttributeError):
        bound.value = np.array(0.0)  # frozen dataclass


def test_vacuous_bound_keeps_its_number():
    bound = self_training_bound(0.9, 0.5, 4.0)  # 2/3·0.9 + 8/3·0.5 = 0.6 + 1.333…
    assert float(bound.value) == pytest.approx(0.6 + 4.0 / 3.0)
    assert bool(bound.in_domain) and bool(bound.vacuous)
    assert "vacuous" in str(bound)


def test_boundary_c_equal_3_is_outside():
    bound = self_training_bound(0.3, 0.01, 3.0)
    assert np.isnan(float(bound.value)) and not bool(bound.in_domain)
    assert "c > 3" in str(bound.reason)
    assert "outside the domain" in str(bound) and "c > 3" in str(bound)


def test_wei_objective_hand_values():
    # (c+1)/(c−1)·L_01 + 2c/(c−1)·R_B − Err(G_pl) with c = 5: 1.5·0.1 + 2.5·0.05 − 0.3 = −0.025
    assert float(wei_objective(0.1, 0.05, 0.3, 5.0)) == pytest.approx(-0.025, abs=1e-15)
    # c → inf: L_01 + 2·R_B − Err(G_pl)
    assert float(wei_objective(0.1, 0.05, 0.3, np.inf)) == pytest.approx(-0.1, abs=1e-15)
    # c = 2: 3·0.2 + 4·0.1 − 0.5
    assert float(wei_objective(0.2, 0.1, 0.5, 2.0)) == pytest.approx(0.5)
    values = wei_objective([0.1, 1.5, 0.1], 0.05, 0.3, [1.0, 5.0, np.nan])
    assert values.shape == (3,) and np.isnan(values).all()


@SETTINGS
@given(l01=rates, rob=rates, err=rates, c=c_in)
def test_wei_objective_matches_formula(l01, rob, err, c):
    expected = (c + 1) / (c - 1) * l01 + 2 * c / (c - 1) * rob - err
    assert float(wei_objective(l01, rob, err, c)) == pytest.approx(expected, rel=1e-12, abs=1e-12)


# ---- properties inside the domain ----------------------------------------------------------------


@SETTINGS
@given(err=rates, mu=rates, c=c_in)
def test_matches_formula_and_is_nonnegative(err, mu, c):
    bound = self_training_bound(err, mu, c)
    assert bool(bound.in_domain)
    value = float(bound.value)
    assert value >= 0.0
    assert value >= 2.0 * mu * (1 - 1e-12)  # 2c/(c−1) > 2
    assert value == pytest.approx(by_hand(err, mu, c), rel=1e-12, abs=1e-15)
    assert bool(bound.vacuous) == (value >= 1.0)


@SETTINGS
@given(e1=rates, e2=rates, mu=rates, c=c_in)
def test_increases_with_pseudo_label_error(e1, e2, mu, c):
    e1, e2 = sorted((e1, e2))
    b1, b2 = (float(self_training_bound(e, mu, c).value) for e in (e1, e2))
    assert b1 <= b2
    if e2 - e1 > 1e-6:  # coefficient 2/(c−1) > 0 for finite c
        assert b1 < b2


@SETTINGS
@given(err=rates, m1=rates, m2=rates, c=c_in)
def test_increases_with_mu(err, m1, m2, c):
    m1, m2 = sorted((m1, m2))
    b1, b2 = (float(self_training_bound(err, m, c).value) for m in (m1, m2))
    assert b1 <= b2
    if m2 - m1 > 1e-6:  # coefficient 2c/(c−1) > 2
        assert b1 < b2


@SETTINGS
@given(err=rates, mu=rates, c1=c_in, c2=c_in)
def test_decreases_with_c(err, mu, c1, c2):
    c1, c2 = sorted((c1, c2))
    b1, b2 = (float(self_training_bound(err, mu, c).value) for c in (c1, c2))
    assert b1 >= b2
    # d/dc = −2(e + μ)/(c−1)² < 0 when e + μ > 0
    if err + mu > 1e-3 and c2 - c1 > 1e-3 * c1:
        assert b1 > b2


# ---- outside the domain --------------------------------------------------------------------------


@SETTINGS
@given(err=rates, mu=rates, c=c_out)
def test_c_at_most_3_is_outside(err, mu, c):
    bound = self_training_bound(err, mu, c)
    assert np.isnan(float(bound.value))
    assert not bool(bound.in_domain) and not bool(bound.vacuous)
    assert "c > 3" in str(bound.reason)


@SETTINGS
@given(bad=outside_rates, good=rates, c=c_in, which=st.sampled_from(["pseudo_label_error", "mu"]))
def test_rates_outside_unit_interval_are_outside(bad, good, c, which):
    args = {"pseudo_label_error": good, "mu": good, "c": c, which: bad}
    bound = self_training_bound(**args)
    assert not bool(bound.in_domain) and np.isnan(float(bound.value))
    assert f"{which} outside [0, 1]" in str(bound.reason)
    assert "outside the domain" in str(bound)


@pytest.mark.parametrize("which", ["pseudo_label_error", "mu", "c"])
def test_nan_input_is_reported(which):
    args = {"pseudo_label_error": 0.3, "mu": 0.01, "c": 5.0, which: np.nan}
    bound = self_training_bound(**args)
    assert not bool(bound.in_domain) and np.isnan(float(bound.value))
    assert str(bound.reason) == f"nan input: {which}"


def test_several_reasons_are_joined():
    reason = str(self_training_bound(1.5, -0.1, 2.0).reason)
    assert "c > 3" in reason and "pseudo_label_error outside" in reason and "mu outside" in reason


# ---- label correction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "mu", "c", "holds"),
    [
        (0.3, 0.01, 5.0, True),  # bound 0.175 < 0.3
        (0.3, 0.1, 5.0, False),  # bound 0.4; needs μ < 2/10·0.3 = 0.06
        (0.3, 0.0, 2.0, False),  # outside the domain
        (0.0, 0.0, 10.0, False),  # nothing to correct
    ],
)
def test_label_correction_hand_cases(err, mu, c, holds):
    correction = label_correction(err, mu, c)
    assert isinstance(correction, Correction) and isinstance(correction.bound, Bound)
    assert bool(correction.holds) is holds
    if bool(correction.bound.in_domain):
        assert float(correction.improvement) == pytest.approx(err - float(correction.bound.value))
    else:
        assert np.isnan(float(correction.improvement))
    assert ("guaranteed" in str(correction)) is holds


def test_label_correction_thresholds_by_hand():
    assert float(max_mu_for_correction(0.3, 5.0)) == pytest.approx(0.06)  # (5−3)/10·0.3
    assert float(max_mu_for_correction(0.3, np.inf)) == pytest.approx(0.15)  # e/2
    assert np.isnan(float(max_mu_for_correction(0.3, 3.0)))
    assert float(min_c_for_correction(0.3, 0.1)) == pytest.approx(9.0)  # 0.9/(0.3 − 0.2)
    assert float(min_c_for_correction(0.3, 0.0)) == pytest.approx(3.0)
    assert float(min_c_for_correction(0.2, 0.1)) == np.inf  # e ≤ 2μ: no expansion suffices
    assert float(min_c_for_correction(0.0, 0.0)) == np.inf
    assert np.isnan(float(min_c_for_correction(1.2, 0.1)))


@settings(max_examples=150, deadline=None)
@given(err=rates, mu=rates, c=st.one_of(c_in, c_out))
def test_holds_matches_closed_form(err, mu, c):
    # 2cμ < (c − 3)e, i.e. μ < (c−3)/(2c)·e, away from the boundary where rounding decides
    assume(abs(2 * c * mu - (c - 3) * err) > 1e-9 * (abs(c) + 1))
    expected = c > 3 and 2 * c * mu < (c - 3) * err
    correction = label_correction(err, mu, c)
    assert bool(correction.holds) == expected
    if c > 3:
        assert bool(correction.holds) == (mu < float(correction.max_mu))
        assert bool(correction.holds) == (c > float(correction.min_c))


@SETTINGS
@given(err=st.floats(0.01, 1.0), c=c_in)
def test_max_mu_is_the_threshold(err, c):
    max_mu = float(max_mu_for_correction(err, c))
    assert 0.0 <= max_mu < err / 2
    assume(max_mu > 1e-6)
    assert bool(label_correction(err, max_mu * (1 - 1e-6), c).holds)
    assert not bool(label_correction(err, max_mu * (1 + 1e-6), c).holds)


@SETTINGS
@given(err=st.floats(0.01, 1.0), mu=rates)
def test_min_c_is_the_threshold(err, mu):
    min_c = float(min_c_for_correction(err, mu))
    if err <= 2 * mu:
        assert min_c == np.inf
        for c in (3.5, 10.0, 1e6, np.inf):
            assert not bool(label_correction(err, mu, c).holds)
        return
    assert min_c >= 3.0
    assume(err - 2 * mu > 1e-3 * err and min_c < 1e9)
    assert bool(label_correction(err, mu, min_c * (1 + 1e-6)).holds)
    assert not bool(label_correction(err, mu, min_c * (1 - 1e-6)).holds)


# ---- vectorisation -------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), n=st.integers(1, 8))
def test_arrays_match_elementwise_scalars(data, n):
    err, mu, c = (data.draw(hnp.arrays(np.float64, n, elements=any_value)) for _ in range(3))
    bound = self_training_bound(err, mu, c)
    correction = label_correction(err, mu, c)
    objective = wei_objective(mu, err, err, c)
    max_mu, min_c = max_mu_for_correction(err, c), min_c_for_correction(err, mu)
    assert bound.value.shape == bound.reason.shape == correction.holds.shape == (n,)
    for i in range(n):
        one = self_training_bound(err[i], mu[i], c[i])
        np.testing.assert_equal(bound.value[i], one.value)
        assert bound.in_domain[i] == one.in_domain and bound.vacuous[i] == one.vacuous
        assert bound.reason[i] == one.reason
        assert correction.holds[i] == label_correction(err[i], mu[i], c[i]).holds
        np.testing.assert_equal(objective[i], wei_objective(mu[i], err[i], err[i], c[i]))
        np.testing.assert_equal(max_mu[i], max_mu_for_correction(err[i], c[i]))
        np.testing.assert_equal(min_c[i], min_c_for_correction(err[i], mu[i]))


def test_broadcasting_grid():
    err = np.linspace(0.0, 1.0, 5)[:, None]
    c = np.array([2.0, 4.0, 8.0])
    bound = self_training_bound(err, 0.02, c)
    assert bound.value.shape == bound.in_domain.shape == (5, 3)
    assert not bound.in_domain[:, 0].any() and bound.in_domain[:, 1:].all()
    np.testing.assert_allclose(bound.value[:, 1:], by_hand(err, 0.02, c[1:]))
    assert "over shape (5, 3)" in str(bound) and "(5, 3)" in str(label_correction(err, 0.02, c))


def test_lists_and_ints_are_accepted():
    bound = self_training_bound([0.3, 0.6], [0.01, 0.1], [5, 7])
    np.testing.assert_allclose(bound.value, [0.175, 0.2 + 1.4 / 6.0])


# ---- argument checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("0.3", 0.01, 5.0), "pseudo_label_error"),
        ((0.3, None, 5.0), "mu"),
        ((0.3, 0.01, True), "c"),
        ((0.3, 0.01, [[5.0], [5.0, 6.0]]), "c"),
        ((0.3, 0.01, 5.0 + 1j), "c"),
    ],
)
def test_wrong_types_raise_naming_the_parameter(args, name):
    for function in (self_training_bound, label_correction):
        with pytest.raises(ValueError, match=name):
            function(*args)


def test_shapes_that_do_not_broadcast_raise():
    with pytest.raises(ValueError, match=r"pseudo_label_error \(2,\), mu \(3,\)"):
        self_training_bound([0.1, 0.2], [0.1, 0.2, 0.3], 5.0)
    with pytest.raises(ValueError, match="robustness"):
        wei_objective(0.1, [0.1, 0.2], [0.1, 0.2, 0.3], 5.0)
    with pytest.raises(ValueError, match="must broadcast"):
        max_mu_for_correction([0.1, 0.2], [4.0, 5.0, 6.0])
    with pytest.raises(ValueError, match="must broadcast"):
        min_c_for_correction([0.1, 0.2], [0.1, 0.2, 0.3])

