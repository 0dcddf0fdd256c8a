"""Tables a researcher can use (issue point 2): ``records_table`` (one row per record, the config flattened),
``table_frame`` (the table's rows as numbers, for CSV) and an external teacher shown as one fixed value with a
Wilson interval over its test samples, tested against by one-sample tests."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from mke_theory.core.errors import MKEError
from mke_theory.results.stats import (
    compare_methods,
    paired_comparison,
    records_frame,
    records_table,
    summarize,
    wilson_interval,
)
from mke_theory.results.tables import format_table, table_frame

N_TEST = 60
TEACHER = 0.75  # 45 of 60 test samples right


def _record(task, method, seed, metrics, external=False, variant="", **extra):
    config = dict(task="arrays", split_id="s1", train=dict(lr=1e-3, epochs=2), mke=dict(gamma=1.0))
    if external:
        config.update(teacher="external", teacher_output_id="abc")
    return dict(task=task, method=method, variant=variant, seed=seed, metrics=metrics, config=config,
                config_hash="h1", split_id="s1", wall_time_s=0.5, best_epoch=1, history=[{"epoch": 0}], **extra)


def _external_run(seeds=range(5), teacher_seeds=None, n_test=True):
    """An external teacher (one value for every seed) and two seeded students."""
    rng = np.random.default_rng(0)
    records = []
    for s in (seeds if teacher_seeds is None else teacher_seeds):
        extra = dict(n_test=N_TEST, proportion_metrics=["test_accuracy"]) if n_test else {}
        records.append(_record("bc", "teacher", s, dict(test_accuracy=TEACHER, test_macro_f1=0.7), True, **extra))
    for s in seeds:
        records.append(_record("bc", "um_student", s, dict(test_accuracy=float(0.74 + rng.normal(0, 0.02)),
                                                           test_macro_f1=float(0.7 + rng.normal(0, 0.02))), True))
        records.append(_record("bc", "mm_student", s, dict(test_accuracy=float(0.80 + rng.normal(0, 0.02)),
                                                           test_macro_f1=float(0.78 + rng.normal(0, 0.02))), True))
    return records


def _wilson_by_hand(p, n, z=1.959963984540054):
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


# ---- records_table -------------------------------------------------------------------------------


def test_records_table_has_one_row_per_record_with_metrics_and_the_config_flattened():
    records = _external_run(seeds=range(3))
    table = records_table(records)
    assert len(table) == len(records)
    assert list(table.columns[:6]) == ["task", "method", "variant", "seed", "split_id", "config_hash"]
    for column in ("test_accuracy", "test_macro_f1", "train.lr", "train.epochs", "mke.gamma", "teacher",
                   "config.task", "best_epoch", "wall_time_s", "n_test"):
        assert column in table.columns, column
    assert "history" not in table.columns and "split_id" in table.columns and "config.split_id" not in table.columns
    assert table["train.lr"].tolist() == [1e-3] * len(records)
    assert table["test_accuracy"].tolist() == [r["metrics"]["test_accuracy"] for r in records]
    assert set(table["task"]) == {"bc"} and set(table["config.task"]) == {"arrays"}  # the name and the task type
    assert pd.api.types.is_float_dtype(table["test_accuracy"]) and pd.api.types.is_integer_dtype(table["seed"])
    assert table.loc[table.method == "teacher", "n_test"].tolist() == [N_TEST] * 3
    assert table.loc[table.method != "teacher", "n_test"].isna().all()


def test_records_table_of_records_with_other_metrics_leaves_the_missing_ones_empty():
    a = _record("t", "teacher", 0, dict(test_accuracy=0.5))
    b = _record("t", "mm_student", 0, dict(test_accuracy=0.6, pseudo_label_accuracy=0.9))
    table = records_table([a, b])
    assert np.isnan(table.loc[0, "pseudo_label_accuracy"]) and table.loc[1, "pseudo_label_accuracy"] == 0.9


def test_records_frame_keeps_its_six_columns_without_an_external_teacher():
    records = [_record("t", "teacher", s, dict(test_accuracy=0.5 + s / 10)) for s in range(3)]
    assert list(records_frame(records).columns) == ["task", "method", "variant", "seed", "metric", "value"]
    frame = records_frame(_external_run(seeds=range(2)))
    assert list(frame.columns) == ["task", "method", "variant", "seed", "metric", "value", "fixed", "n_test"]
    assert len(frame) == 2 * 3 * 2  # still one row per record × metric


# ---- CSV -----------------------------------------------------------------------------------------


def _seeded_records():
    rng = np.random.default_rng(1)
    records = []
    for task, shift in (("a", 0.0), ("b", 0.1)):
        for s in range(5):
            for method, mean in (("teacher", 0.6), ("um_student", 0.62), ("mm_student", 0.7)):
                records.append(_record(task, method, s, dict(test_accuracy=float(mean + shift + rng.normal(0, 0.02)))))
    return records


def _markdown_rows(text: str) -> dict:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| task"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[(cells[0], cells[1])] = cells
    return rows


def test_csv_round_trips_with_pandas_and_equals_the_markdown_numbers():
    frame = records_frame(_seeded_records())
    summary = summarize(frame, "test_accuracy")
    comparisons = compare_methods(frame, "test_accuracy", baseline="teacher")
    table = table_frame(summary, comparisons, metric="test_accuracy")
    assert len(table) == len(summary) == 6  # one row per (task, method, variant)
    back = pd.read_csv(io.StringIO(table.to_csv(index=False)), keep_default_na=True)
    assert list(back.columns) == list(table.columns)
    for column in ("n", "mean", "std", "ci_low", "ci_high", "mean_diff", "diff_ci_low", "diff_ci_high", "d_z",
                   "p_t", "p_holm"):
        assert pd.api.types.is_numeric_dtype(back[column]), column
        np.testing.assert_allclose(back[column].to_numpy(dtype=float), table[column].to_numpy(dtype=float),
                                   rtol=1e-15, equal_nan=True)
    markdown = _markdown_rows(format_table(summary, comparisons))
    for r in back.itertuples():
        cells = markdown[(r.task, r.method)]
        assert cells[2].split(" ")[0] == f"{100 * r.mean:.1f}"
        assert cells[2].split(" ")[2] == f"{100 * r.std:.1f}"
        assert cells[3] == str(r.n)
        assert cells[4] == f"[{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}]"
        if r.method == "teacher":
            assert cells[5] == "baseline" and r.baseline == "teacher" and np.isnan(r.p_holm)
        else:
            assert cells[5].startswith(f"{100 * r.mean_diff:+.1f}") and cells[6] == f"{r.d_z:+.2f}"
            assert cells[7].split(" ")[0] == ("<0.001" if r.p_holm < 0.001 else f"{r.p_holm:.3f}")
            assert r.design == "paired" and r.test == "t" and r.n_compared == 5
            assert ("†" in cells[2]) == bool(r.significant)


def test_csv_without_comparisons_has_the_summary_columns_only():
    summary = summarize(records_frame(_seeded_records()), "test_accuracy", bootstrap=True, random_state=0)
    table = table_frame(summary)
    assert "baseline" not in table.columns and {"boot_low", "boot_high", "iqm", "interval"} <= set(table.columns)
    assert (table["interval"] == "t").all() and (table["confidence"] == 0.95).all()


# ---- an external teacher -------------------------------------------------------------------------


def test_wilson_interval_is_the_textbook_formula():
    for p, n in ((0.75, 60), (0.0, 10), (1.0, 10), (0.5, 1), (0.33, 300)):
        np.testing.assert_allclose(wilson_interval(p, n), _wilson_by_hand(p, n), rtol=1e-9, atol=1e-12)
    lo, hi = wilson_interval(0.75, 60, confidence=0.9)
    np.testing.assert_allclose((lo, hi), _wilson_by_hand(0.75, 60, z=st.norm.ppf(0.95)), rtol=1e-9)
    with pytest.raises(MKEError, match="proportion"):
        wilson_interval(1.5, 10)


def test_an_external_teacher_is_one_fixed_value_with_a_wilson_interval():
    frame = records_frame(_external_run())
    summary = summarize(frame, "test_accuracy")
    teacher = summary[summary.method == "teacher"].iloc[0]
    assert teacher["n"] == 1 and bool(teacher["fixed"]) and teacher["mean"] == TEACHER and np.isnan(teacher["std"])
    np.testing.assert_allclose((teacher["ci_low"], teacher["ci_high"]), _wilson_by_hand(TEACHER, N_TEST), rtol=1e-9)
    students = summary[summary.method != "teacher"]
    assert (students["n"] == 5).all() and not students["fixed"].any()

    comparisons = compare_methods(frame, "test_accuracy", baseline="teacher")
    text = format_table(summary, comparisons, caption="bc")
    row = _markdown_rows(text)[("bc", "teacher")]
    lo, hi = _wilson_by_hand(TEACHER, N_TEST)
    assert row[2] == "75.0" and row[3] == "fixed" and row[4] == f"[{100 * lo:.1f}, {100 * hi:.1f}]"
    assert "one fixed value" in text and "Wilson interval over its 60 test samples" in text
    assert "one-sample t-test of the seeds against the fixed value" in text and "paired t-test" not in text

    csv = table_frame(summary, comparisons, metric="test_accuracy").set_index("method")
    assert csv.loc["teacher", "n"] == 1 and csv.loc["teacher", "fixed"] and csv.loc["teacher", "n_test"] == N_TEST
    assert csv.loc["teacher", "interval"] == "wilson" and csv.loc["mm_student", "interval"] == "t"


def test_a_comparison_with_a_fixed_teacher_is_a_one_sample_test():
    records = _external_run()
    frame = records_frame(records)
    comparisons = compare_methods(frame, "test_accuracy", baseline="teacher").set_index("method")
    for method in ("um_student", "mm_student"):
        seeds = np.array([r["metrics"]["test_accuracy"] for r in records if r["method"] == method])
        row = comparisons.loc[method]
        assert row["design"] == "one-sample" and row["n"] == 5 and row["baseline_mean"] == TEACHER
        assert row["p_t"] == pytest.approx(st.ttest_1samp(seeds, TEACHER).pvalue, rel=1e-9)
        assert row["t"] == pytest.approx(st.ttest_1samp(seeds, TEACHER).statistic, rel=1e-9)
        assert row["p_wilcoxon"] == pytest.approx(st.wilcoxon(seeds - TEACHER).pvalue, rel=1e-9)
        assert row["mean_diff"] == pytest.approx(seeds.mean() - TEACHER)
        assert row["d_z"] == pytest.approx((seeds.mean() - TEACHER) / seeds.std(ddof=1))
    p = [comparisons.loc[m, "p_t"] for m in ("mm_student", "um_student")]
    holm = sorted(p)[0] * 2
    assert comparisons.loc["mm_student" if p[0] < p[1] else "um_student", "p_holm"] == pytest.approx(min(1, holm))


def test_a_fixed_teacher_needs_no_shared_seeds():
    frame = records_frame(_external_run(teacher_seeds=[0]))  # one teacher record, students over 5 seeds
    summary = summarize(frame, "test_accuracy")
    assert summary.set_index("method").loc["teacher", "n"] == 1
    result = paired_comparison(frame, "test_accuracy", "mm_student", "teacher")
    assert result["n"] == 5 and result["design"] == "one-sample"


def test_a_fixed_method_against_a_seeded_baseline_is_a_one_sample_test_too():
    records = _external_run()
    frame = records_frame(records)
    comparisons = compare_methods(frame, "test_accuracy", baseline="um_student").set_index("method")
    seeds = np.array([r["metrics"]["test_accuracy"] for r in records if r["method"] == "um_student"])
    row = comparisons.loc["teacher"]
    assert row["design"] == "one-sample" and row["n"] == 5
    assert row["p_t"] == pytest.approx(st.ttest_1samp(seeds, TEACHER).pvalue, rel=1e-9)
    assert row["mean_diff"] == pytest.approx(TEACHER - seeds.mean())
    assert comparisons.loc["mm_student", "design"] == "paired"


def test_a_metric_that_is_no_share_of_test_samples_gets_no_interval():
    frame = records_frame(_external_run())
    summary = summarize(frame, "test_macro_f1")
    teacher = summary.set_index("method").loc["teacher"]
    assert teacher["n"] == 1 and np.isnan(teacher["ci_low"]) and np.isnan(teacher["ci_high"])
    text = format_table(summary)
    assert _markdown_rows(text)[("bc", "teacher")][3:5] == ["fixed", "–"] and "no CI" in text
    assert table_frame(summary).set_index("method").loc["teacher", "interval"] == ""


def test_an_external_teacher_written_before_n_test_was_stored_is_still_fixed():
    summary = summarize(records_frame(_external_run(n_test=False)), "test_accuracy")
    teacher = summary.set_index("method").loc["teacher"]
    assert teacher["n"] == 1 and bool(teacher["fixed"]) and np.isnan(teacher["ci_low"])


def test_a_cell_mixing_an_external_and_a_trained_teacher_is_refused():
    records = _external_run(seeds=range(2))
    records.append(_record("bc", "teacher", 7, dict(test_accuracy=0.5, test_macro_f1=0.5)))
    with pytest.raises(MKEError, match="mixes records of an external teacher with trained ones"):
        summarize(records_frame(records), "test_accuracy")


def test_the_bootstrap_of_a_fixed_cell_is_left_empty():
    from mke_theory.results.tables import format_bootstrap

    summary = summarize(records_frame(_external_run()), "test_accuracy", bootstrap=True, random_state=0)
    teacher = summary.set_index("method").loc["teacher"]
    assert np.isnan(teacher["boot_low"]) and np.isnan(teacher["boot_high"])
    text = format_bootstrap(summary)
    assert re.search(r"bc teacher: – \(one fixed value", text) and "2 of 2 cells" in text
