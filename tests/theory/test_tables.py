"""Tables (Markdown, LaTeX, plain text), the palette and the reference numbers: one home each, no torch."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mke_theory.core.methods import NAMES
from mke_theory.core.records import make_record
from mke_theory.results import palette, reference
from mke_theory.results.stats import compare_methods, records_frame, summarize
from mke_theory.results.tables import (
    format_bootstrap,
    format_check,
    format_sweep,
    format_table,
    latex_escape,
    markdown_escape,
)

FACTS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "mke-paper.md"


def frame_of(values: dict, task="twomoon"):
    records = []
    for key, vs in values.items():
        method, variant = (key, "") if isinstance(key, str) else key
        records += [make_record(task=task, method=method, seed=s, metrics={"test_accuracy": v}, config={},
                                wall_time_s=0.0, variant=variant) for s, v in enumerate(vs)]
    return records_frame(records)


FRAME = frame_of({"teacher": [0.70, 0.71, 0.72], "mm_student": [0.770, 0.777, 0.784],
                  "um_student": [0.69, 0.73, 0.70]})


# ---- escaping ----------------------------------------------------------------------------------


@pytest.mark.parametrize("char, escaped", [("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"), ("_", r"\_"),
                                           ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                                           ("^", r"\textasciicircum{}"), ("\\", r"\textbackslash{}"),
                                           ("±", r"$\pm$"), ("†", r"$^\dagger$"), ("Δ", r"$\Delta$"), ("≤", r"$\le$"),
                                           ("≥", r"$\ge$"), ("×", r"$\times$")])
def test_every_latex_special_character_is_escaped(char, escaped):
    assert latex_escape(f"a{char}b") == f"a{escaped}b"


def test_latex_table_escapes_task_method_variant_caption_and_reference():
    frame = frame_of({("mm_student", "in_put"): [0.5, 0.6], "teacher": [0.4, 0.5]}, task="t&50%")
    text = format_table(summarize(frame, "test_accuracy"), fmt="latex", caption="a_b #1 ~ {x}",
                        reference={("mm_student", "in_put"): "$9"})
    body = "\n".join(line for line in text.splitlines() if "&" in line and "toprule" not in line)
    assert r"t\&50\%" in body and r"in\_put" in body and r"\$9" in body and r"mm\_student" in body
    assert r"\caption{a\_b \#1 \textasciitilde{} \{x\}}" in text
    assert "_" not in text.replace(r"\_", "")  # no bare underscore anywhere


def test_markdown_cells_escape_pipes():
    assert markdown_escape("a|b") == r"a\|b"
    frame = frame_of({("mm_student", "x|y"): [0.5, 0.6]})
    text = format_table(summarize(frame, "test_accuracy"))
    assert r"| x\|y |" in text


# ---- plain text --------------------------------------------------------------------------------


def test_plain_table_keeps_its_reference_column_title_and_layout():
    summary = summarize(FRAME, "test_accuracy")
    text = format_table(summary, fmt="plain", caption="TwoMoon, 3 runs", reference={"mm_student": 77.7},
                        reference_label="official notebook")
    lines = text.splitlines()
    assert lines[0] == "TwoMoon, 3 runs"
    assert lines[1].split() == ["method", "runs", "test", "accuracy", "%", "95%", "CI", "official", "notebook"]
    assert set(lines[2]) == {"-"} and len(lines[2]) == len(lines[1])
    rows = {line.split()[0]: line for line in lines[3:]}
    assert list(rows) == ["teacher", "um_student", "mm_student"]  # the method table's order
    assert rows["mm_student"].endswith("77.7") and "77.70 ± 0.70" in rows["mm_student"]
    assert "[" in rows["mm_student"] and rows["teacher"].rstrip().endswith("]")  # no reference: blank cell
    assert all(len(line) == len(lines[1]) for line in lines[3:])  # aligned under the head


@pytest.mark.parametrize("fmt", ["markdown", "latex", "plain"])
def test_reference_column_is_headed_by_the_source_the_caller_names(fmt):
    # bug caught: the official notebook's TwoMoon numbers were headed "paper" (the paper's differ)
    summary = summarize(FRAME, "test_accuracy")
    notebook = format_table(summary, fmt=fmt, reference={"mm_student": 77.7}, reference_label="official notebook")
    assert "official notebook" in notebook and "paper" not in notebook
    paper = format_table(summary, fmt=fmt, reference={"mm_student": 48.88}, reference_label="paper")
    assert "paper" in paper and "official notebook" not in paper


def test_ablation_rows_in_the_regularisers_order_not_alphabetical():
    values = {"none": [0.69, 0.70], "input_noise": [0.72, 0.73], "feature_noise": [0.69, 0.70],
              "dropout": [0.70, 0.71], "all": [0.72, 0.73]}
    frame = frame_of({(m, reg): v for reg, v in sorted(values.items()) for m in ("um_student", "mm_student")},
                     task="twomoon-ablation")
    text = format_table(summarize(frame, "test_accuracy"), fmt="markdown")
    rows = [line.split(" | ")[1:3] for line in text.splitlines()[2:] if line.startswith("|")]
    order = ["none", "input_noise", "feature_noise", "dropout", "all"]
    assert rows == [["um_student", reg] for reg in order] + [["mm_student", reg] for reg in order]


def test_regularisers_order_is_the_ensembles():
    from mke_theory.results.tables import VARIANT_ORDER
    from mke_theory.toy.ensemble import REGULARIZERS

    assert VARIANT_ORDER == tuple(REGULARIZERS)


def test_two_decimals_where_the_reference_has_them():
    frame = frame_of({("um_student", "all"): [0.7250, 0.7260]}, task="twomoon-ablation")  # mean 72.55
    summary = summarize(frame, "test_accuracy")
    text = format_table(summary, fmt="markdown", reference={("um_student", "all"): "72.65"})
    assert "72.55 ± " in text and "| 72.65 |" in text
    assert "72.5 ± " not in text and "72.6 ± " not in text
    assert "72.5 ± " in format_table(summary, fmt="markdown", reference={("um_student", "all"): "72.6"}) or \
        "72.6 ± " in format_table(summary, fmt="markdown", reference={("um_student", "all"): "72.6"})


def test_plain_table_reference_by_method_and_variant_and_no_column_without_reference():
    frame = frame_of({("um_student", "none"): [0.69, 0.70], ("mm_student", "none"): [0.70, 0.71],
                      ("mm_student", "all"): [0.78, 0.79]}, task="twomoon-ablation")
    summary = summarize(frame, "test_accuracy")
    text = format_table(summary, fmt="plain", reference={("um_student", "none"): "69.8 / 70.6",
                                                         "mm_student (none)": "x"})
    rows = {" ".join(line.split()[:2]): line for line in text.splitlines()[2:]}
    assert rows["um_student [none]"].endswith("69.8 / 70.6") and rows["mm_student [none]"].endswith(" x")
    assert "official notebook" not in format_table(summary, fmt="plain")


def test_plain_single_run_and_confidence_in_the_head():
    frame = frame_of({"teacher": [0.695], "mm_student": [0.7, 0.8]})
    text = format_table(summarize(frame, "test_accuracy", confidence=0.9), fmt="plain")
    assert "90% CI" in text.splitlines()[0]
    teacher = next(line for line in text.splitlines() if line.startswith("teacher"))
    assert teacher.split() == ["teacher", "1", "69.50"]


def test_plain_table_marks_significant_rows_and_names_the_test():
    summary = summarize(FRAME, "test_accuracy")
    text = format_table(summary, compare_methods(FRAME, "test_accuracy", "teacher"), fmt="plain")
    mm = next(line for line in text.splitlines() if line.startswith("mm_student"))
    assert "†" in mm and text.count("†") == 2
    assert text.splitlines()[-1].startswith("† p < 0.05, paired t-test")


def test_plain_table_carries_the_paired_difference_columns():
    text = format_table(summarize(FRAME, "test_accuracy"), compare_methods(FRAME, "test_accuracy", "teacher"),
                        fmt="plain")
    head = text.splitlines()[0]
    assert head.endswith("Δ vs teacher [95% CI]     d_z      p (Holm)")
    mm = next(line for line in text.splitlines() if line.startswith("mm_student"))
    assert "+6.70 [+5.95, +7.45]" in mm and "+22.33" in mm  # d = 0.070, 0.067, 0.064; see test_stats_paired
    assert next(line for line in text.splitlines() if line.startswith("teacher")).rstrip().endswith("baseline")


def _degenerate():
    """mm_student − teacher is always +0.05 (t-test undefined), um_student = teacher (no test at all)."""
    frame = frame_of({"teacher": [0.70, 0.80, 0.90], "mm_student": [0.75, 0.85, 0.95],
                      "um_student": [0.70, 0.80, 0.90], "mm_student_confident": [0.80, 0.81, 0.96]})
    return summarize(frame, "test_accuracy"), compare_methods(frame, "test_accuracy", "teacher")


def test_degenerate_comparisons_show_in_the_table_as_footnotes():
    """Bug caught: comparisons whose differences are all equal dropped out of the table's tests silently. Each note
    becomes a lettered footnote after the caption; the row shows "–" for p and d_z and points to its notes."""
    summary, comparisons = _degenerate()
    text = format_table(summary, comparisons, caption="degenerate")
    rows = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| twomoon")}
    # letters in the order of the rows (the method table's order: um_student before mm_student)
    assert rows["um_student"].endswith("| +0.0 [+0.0, +0.0] | – | – (a, b, c) |")
    assert rows["mm_student"].endswith("| +5.0 [+5.0, +5.0] | – | – (a, c) |")
    assert "(" not in rows["mm_student_confident"].split("|")[-2]  # tested: a p and no footnote
    caption = text.splitlines()[-1]
    assert caption.startswith("degenerate. † p < 0.05, paired t-test over seeds, Holm-corrected, vs teacher. ")
    assert caption.endswith("(a) all differences are equal: t-test and d_z undefined. (b) all differences are zero: "
                            "Wilcoxon test undefined. (c) not tested: counted in the Holm family (m = 3) as p = 1.")
    latex = format_table(summary, comparisons, fmt="latex")
    assert r"+5.0 [+5.0, +5.0] & -- & -- (a, c) \\" in latex
    assert "(c) not tested: counted in the Holm family (m = 3) as p = 1.}" in latex


def test_wilcoxon_floor_in_the_latex_caption_is_escaped():
    comparisons = compare_methods(FRAME, "test_accuracy", "teacher", test="wilcoxon")
    latex = format_table(summarize(FRAME, "test_accuracy"), comparisons, fmt="latex")
    caption = next(line for line in latex.splitlines() if line.startswith(r"\caption{"))
    assert caption.endswith(r"(a) Wilcoxon cannot reach p $\le$ 0.05 with 3 nonzero differences "
                            r"(smallest two-sided p = 0.25).}")


def test_bootstrap_intervals_are_labelled_as_computed_and_warned_about_at_few_runs():
    """Bug caught: `mke-exp report --bootstrap` called per-cell intervals "stratified bootstrap 95 %": they are a
    plain percentile bootstrap (one stratum per cell) and at fewer than 10 runs cover far less than 95 %."""
    summary = summarize(FRAME, "test_accuracy", bootstrap=True, random_state=0)
    text = format_bootstrap(summary)
    lines = text.splitlines()
    assert lines[0] == "percentile bootstrap 95 % intervals of the mean (2000 resamples, random_state=0):"
    assert "stratified" not in text
    mm = summary[summary.method == "mm_student"].iloc[0]
    assert f"  twomoon mm_student: [{100 * mm.boot_low:.1f}, {100 * mm.boot_high:.1f}] (3 runs)" in lines
    assert lines[-1].startswith("Warning: 3 of 3 cells have fewer than 10 runs")
    assert "50 % of the time at 2 runs, 75 % at 3, 84 % at 5 and 90 % at 10" in lines[-1]

    many = frame_of({"teacher": [0.70 + 0.001 * i for i in range(10)],
                     "mm_student": [0.8 + 0.002 * i for i in range(12)]})
    text = format_bootstrap(summarize(many, "test_accuracy", bootstrap=True, random_state=np.random.default_rng(1)))
    assert "Warning" not in text  # every cell has >= 10 runs; a generator seed is not printed
    assert text.splitlines()[0] == "percentile bootstrap 95 % intervals of the mean (2000 resamples):"
    with pytest.raises(ValueError, match="bootstrap=True"):
        format_bootstrap(summarize(FRAME, "test_accuracy"))


def test_stratified_label_only_for_several_strata():
    summary = summarize(FRAME, "test_accuracy", bootstrap=True, random_state=0, n_resamples=100)
    summary.attrs["bootstrap"] = dict(summary.attrs["bootstrap"], strata=2)
    assert format_bootstrap(summary).startswith("stratified percentile bootstrap (2 strata) 95 % intervals")


def test_format_table_digits_default_per_format_and_validation():
    summary = summarize(FRAME, "test_accuracy")
    assert "77.7 ± 0.7" in format_table(summary) and "77.70 ± 0.70" in format_table(summary, fmt="plain")
    assert "77.700 ± 0.700" in format_table(summary, fmt="plain", digits=3)
    with pytest.raises(ValueError, match="fmt"):
        format_table(summary, fmt="html")
    with pytest.raises(ValueError, match="digits"):
        format_table(summary, fmt="plain", digits=-1)


# ---- simulate and check --------------------------------------------------------------------------


def _sweep_rows():
    rows = []
    for eta in (0.3, 0.1):
        rows.append(dict(method="teacher", config={"eta": eta},
                         metrics=dict(pseudo_label_error=eta, um_c=2.0, um_mu=0.1, um_bound=float("nan"),
                                      mm_c=5.0, mm_mu=0.05, mm_bound=0.2, um_condition=0.0, mm_condition=1.0)))
        for seed in (0, 1):
            rows.append(dict(method="mm_student", config={"eta": eta},
                             metrics=dict(test_error=0.1 + 0.1 * seed, pseudo_label_error=eta, corrected=3,
                                          corrupted=1)))
    return rows


def test_sweep_tables_sort_by_eta_and_show_missing_bounds_as_dashes():
    text = format_sweep(_sweep_rows(), "caption line")
    lines = text.splitlines()
    assert lines[0] == "caption line"
    students = [line.split() for line in lines[3:5]]
    assert [r[0] for r in students] == ["0.10", "0.30"] and students[0][2:6] == ["mm_student", "15.0", "±", "7.1"]
    theory = [line.split() for line in lines[-2:]]
    assert theory[0] == ["0.10", "2.00", "0.100", "–", "5.00", "0.050", "0.200", "MM"]


def test_check_report_text():
    interval = lambda e: dict(estimate=e, low=e - 0.02, high=e + 0.02)  # noqa: E731
    space = dict(radius=0.5, mean_neighbours=3.0, c=float("inf"), c_lower=float("inf"), c_upper=float("inf"),
                 mu=0.0, pseudo_label_error=0.2, bound=0.0, condition_holds=True, status="label correction guaranteed",
                 sensitivity=[dict(scale=s, radius=0.5 * s, c=1.0, c_upper=1.5, mu=0.1 * s, condition_holds=False)
                              for s in (0.5, 1.0, 2.0)])
    report = dict(n_samples=10, n_used=8, n_val=6, n_classes=2, probe="kNN, k = 20", teacher_on_val="given",
                  accuracy=dict(teacher=0.5, um_probe=0.6, mm_probe=0.75, student_like_probe=0.7,
                                shuffled_beta_probe=0.55),
                  predicted_gain=interval(0.25), beta_contribution=interval(0.2), predicted_gain_over_um=interval(0.15),
                  student_like_over_um=interval(0.1), probe_vs_teacher=interval(0.3),
                  verdict="helps", verdict_text="β helps: because.", a_bar=0.3, input_noise=0.5, um=space,
                  mm=dict(space, c_lower=1.2, c=1.2, c_upper=4.0, bound=None, condition_holds=False,
                          status="undetermined"))
    text = format_check(report)
    lines = text.splitlines()
    assert lines[0] == "MKE check: D_u 10 samples (8 used, drawn at random), labeled validation data 6"
    assert "predicted gain of the MM student over the teacher   +25.0 points [+23.0, +27.0]" in lines
    assert "verdict: helps" in lines and "β helps: because." in lines
    assert "  student-like probe − α probe (what β adds)        +10.0 points [+8.0, +12.0]" in lines
    assert "  cross-fitted probe − teacher                      +30.0 points [+28.0, +32.0]" in lines
    assert "  (α, β) probe, β as the student sees it          70.0 %" in lines
    rows = {line[:34].strip(): line[34:].split() for line in lines if line[:34].strip()}
    assert rows["c, certified lower bound"] == ["inf", "1.20"]
    assert rows["bound (certified c)"] == ["0.000", "–"]
    assert rows["label correction guaranteed"] == ["yes", "no"]
    assert rows["at r × 2: c upper / μ"] == ["1.50", "/", "0.200", "1.50", "/", "0.200"]
    assert "UM: label correction guaranteed" in lines and "MM: undetermined" in lines
    no_val = format_check(dict(report, um=None, mm=None, verdict="unclear", verdict_text="No labeled validation data."))
    assert no_val.splitlines()[-2:] == ["verdict: unclear", "No labeled validation data."]


# ---- palette and reference numbers -------------------------------------------------------------


def test_palette_is_okabe_ito_and_lighten_blends_with_white():
    assert palette.MODALITY_COLOURS == {"um": "#E69F00", "mm": "#0072B2"}
    assert set(palette.CLASS_COLOURS) <= set(palette.OKABE_ITO.values())
    assert palette.lighten("#0173B2") == "#B3D5E8"  # 70 % white
    assert palette.lighten("#123456", 0) == "#123456" and palette.lighten("#123456", 1) == "#FFFFFF"
    with pytest.raises(ValueError, match="colour"):
        palette.lighten("blue")


def test_plots_take_their_colours_from_the_palette():
    from mke_theory.results import plots

    assert {colour for _, _, colour, _ in plots.SWEEP_STUDENTS} == set(palette.MODALITY_COLOURS.values())
    assert [colour for _, _, colour in plots.SPACES] == [palette.MODALITY_COLOURS[s] for s, _, _ in plots.SPACES]


def test_reference_numbers_are_keyed_by_method_names():
    assert set(reference.NOTEBOOK_REFERENCE) <= set(NAMES) and set(reference.PAPER_NYUDV2) <= set(NAMES)
    assert set(reference.NOTEBOOK_ABLATION) == {"none", "input_noise", "feature_noise", "dropout", "all"}
    from mke_theory.toy import twomoon

    assert twomoon.NOTEBOOK_REFERENCE is reference.NOTEBOOK_REFERENCE  # one home, still importable there


@pytest.mark.skipif(not FACTS.exists(), reason="the paper's fact sheet is not beside the checkout")
def test_every_reference_number_is_in_the_fact_sheet():
    facts = FACTS.read_text()
    twomoon, nyu = facts.split("## 3.")[1].split("## 4.")
    nyu = nyu.split("## 5.")[0]
    numbers = set(re.findall(r"\d+\.\d+", twomoon))
    for value in reference.NOTEBOOK_REFERENCE.values():
        assert str(value) in numbers, value
    pairs = twomoon.replace(" ", "")
    for reg, (um, mm) in reference.NOTEBOOK_ABLATION.items():
        assert f"{um}/{mm}" in pairs, reg  # "none 69.8/70.6 (UM/MM)"
    for value in reference.PAPER_NYUDV2.values():
        assert f"| {value:.2f} |" in nyu, value
