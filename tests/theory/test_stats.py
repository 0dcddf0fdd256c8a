"""Statistics over run records: hand-computable intervals, their invariants, per-cell summaries."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.weightstats import DescrStatsW

from mke_theory.core.records import make_record
from mke_theory.results.stats import records_frame, summarize, t_interval

VALUES = st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=2, max_size=30)
LEVELS = st.floats(0.01, 0.999)


# ---- t_interval ----------------------------------------------------------------------------------


def test_t_interval_by_hand():
    # mean 3, sample sd sqrt(2.5), t_{0.975, 4} = 2.776445 (tables): half-width 2.776445 * sqrt(2.5 / 5).
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    low, high = t_interval([1, 2, 3, 4, 5])
    assert low == pytest.approx(3 - half, abs=1e-6)
    assert high == pytest.approx(3 + half, abs=1e-6)


def test_t_interval_by_hand_at_90_percent():
    # values 2, 4: mean 3, sd sqrt(2), t_{0.95, 1} = 6.313752: half-width 6.313752 * sqrt(2) / sqrt(2).
    low, high = t_interval([2.0, 4.0], confidence=0.90)
    assert (low, high) == pytest.approx((3 - 6.313752, 3 + 6.313752), abs=1e-6)


def test_t_interval_of_one_value_is_that_value():
    assert t_interval([0.7]) == (0.7, 0.7)
    assert t_interval(np.array([-2.0]), confidence=0.5) == (-2.0, -2.0)


def test_t_interval_of_equal_values_has_zero_width():
    assert t_interval([0.25, 0.25, 0.25, 0.25]) == (0.25, 0.25)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, 95, float("nan"), "0.95"])
def test_t_interval_rejects_a_bad_confidence(confidence):
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0, 3.0], confidence=confidence)


def test_t_interval_rejects_no_values():
    with pytest.raises(ValueError, match="at least one"):
        t_interval([])


@settings(max_examples=100, deadline=None)
@given(VALUES, LEVELS)
def test_t_interval_is_centred_on_the_mean(values, confidence):
    low, high = t_interval(values, confidence)
    mean = float(np.mean(values))
    assert low <= mean <= high
    assert (low + high) / 2 == pytest.approx(mean, rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(VALUES, LEVELS, LEVELS)
def test_t_interval_widens_with_the_confidence_level(values, c1, c2):
    (lo1, hi1), (lo2, hi2) = t_interval(values, min(c1, c2)), t_interval(values, max(c1, c2))
    assert hi1 - lo1 <= hi2 - lo2
    assert lo2 <= lo1 and hi1 <= hi2


@settings(max_examples=100, deadline=None)
@given(VALUES, LEVELS, st.randoms(use_true_random=False))
def test_t_interval_does_not_depend_on_the_order_of_values(values, confidence, random):
    shuffled = list(values)
    random.shuffle(shuffled)
    assert t_interval(shuffled, confidence) == pytest.approx(t_interval(values, confidence), rel=1e-9, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(VALUES, LEVELS)
def test_t_interval_agrees_with_statsmodels(values, confidence):
    expected = DescrStatsW(np.asarray(values)).tconfint_mean(alpha=1 - confidence)
    assert t_interval(values, confidence) == pytest.approx(expected, rel=1e-7, abs=1e-7)


# ---- records_frame / summarize -------------------------------------------------------------------


def rec(method, seed, accuracy, task="twomoon", variant="", **more):
    return make_record(task=task, method=method, seed=seed, metrics={"test_accuracy": accuracy, **more},
                       config={"steps": 10}, wall_time_s=0.0, variant=variant)


RECORDS = [
    rec("teacher", 39, 0.695),
    rec("um_student", 0, 0.70, corrected=3),
    rec("um_student", 1, 0.72, corrected=5),
    rec("um_student", 2, 0.74, corrected=4),
    rec("mm_student", 0, 0.80),
    rec("mm_student", 1, 0.76),
    rec("mm_student", 0, 0.60, variant="none"),
    rec("mm_student", 1, 0.62, variant="none"),
    rec("mm_student", 0, 0.50, task="simulate"),
]


def test_records_frame_has_one_row_per_record_and_metric():
    frame = records_frame(RECORDS)
    assert list(frame.columns) == ["task", "method", "variant", "seed", "metric", "value"]
    assert len(frame) == len(RECORDS) + 3  # three records also carry `corrected`
    row = frame[(frame.method == "um_student") & (frame.seed == 2) & (frame.metric == "corrected")]
    assert row["value"].tolist() == [4.0]


def test_records_frame_of_no_records_is_empty_with_the_columns():
    frame = records_frame([])
    assert frame.empty and list(frame.columns) == ["task", "method", "variant", "seed", "metric", "value"]


def test_records_frame_with_provenance_carries_split_and_config_hash():
    records = RECORDS[:2] + [make_record(task="twomoon", method="teacher", seed=1, metrics={"test_accuracy": 0.7},
                                         config={"steps": 20}, wall_time_s=0.0, split_id="split-a")]
    frame = records_frame(records, provenance=True)
    assert list(frame.columns) == ["task", "method", "variant", "seed", "split", "metric", "value", "config_hash"]
    assert len(frame) == 4  # the second record also carries `corrected`
    assert frame["split"].isna().tolist() == [True, True, True, False] and frame["split"].iloc[3] == "split-a"
    assert frame["config_hash"].tolist() == [r["config_hash"] for r in records for _ in r["metrics"]]
    assert frame["config_hash"].iloc[0] != frame["config_hash"].iloc[3]
    assert list(records_frame([], provenance=True).columns) == list(frame.columns)
    plain = records_frame(records)
    pd.testing.assert_frame_equal(frame[plain.columns], plain)


def test_summarize_groups_by_task_method_and_variant():
    summary = summarize(records_frame(RECORDS), "test_accuracy")
    cells = {(r.task, r.method, r.variant): r for r in summary.itertuples()}
    assert set(cells) == {("twomoon", "teacher", ""), ("twomoon", "um_student", ""), ("twomoon", "mm_student", ""),
                          ("twomoon", "mm_student", "none"), ("simulate", "mm_student", "")}

    um = cells["twomoon", "um_student", ""]
    assert um.n == 3
    assert um.mean == pytest.approx(0.72)
    assert um.std == pytest.approx(0.02)
    assert (um.ci_low, um.ci_high) == pytest.approx(t_interval([0.70, 0.72, 0.74]))

    mm = cells["twomoon", "mm_student", ""]
    assert (mm.n, mm.mean, mm.std) == (2, pytest.approx(0.78), pytest.approx(math.sqrt(0.0008)))
    ablated = cells["twomoon", "mm_student", "none"]
    assert (ablated.n, ablated.mean) == (2, pytest.approx(0.61))

    teacher = cells["twomoon", "teacher", ""]
    assert teacher.n == 1 and teacher.mean == pytest.approx(0.695) and math.isnan(teacher.std)
    assert (teacher.ci_low, teacher.ci_high) == (0.695, 0.695)
    assert cells["simulate", "mm_student", ""].n == 1


def test_summarize_reads_only_the_named_metric():
    summary = summarize(records_frame(RECORDS), "corrected")
    assert summary[["task", "method", "variant"]].values.tolist() == [["twomoon", "um_student", ""]]
    assert summary["n"].tolist() == [3] and summary["mean"].tolist() == [pytest.approx(4.0)]


def test_summarize_confidence_changes_the_interval_only():
    frame = records_frame(RECORDS)
    wide, narrow = summarize(frame, "test_accuracy", 0.99), summarize(frame, "test_accuracy", 0.5)
    assert wide["mean"].tolist() == narrow["mean"].tolist()
    many = wide["n"] > 1
    assert ((wide["ci_high"] - wide["ci_low"])[many] > (narrow["ci_high"] - narrow["ci_low"])[many]).all()


def test_summarize_of_an_unknown_metric_lists_the_available_ones():
    with pytest.raises(ValueError) as info:
        summarize(records_frame(RECORDS), "test_acc")
    message = str(info.value)
    assert "test_acc'" in message
    assert "corrected" in message and "test_accuracy" in message
