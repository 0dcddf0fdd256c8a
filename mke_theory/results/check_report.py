"""The report of ``mke-theory check`` as text (``format_check``) and as JSON-safe values (``json_safe``).

numpy only: ``mke-theory check`` imports this and not ``tables`` (pandas, scipy.stats), which would add about half a
second to every call (benchmarks/bench_check_speed.py).
"""

from __future__ import annotations

import math

import numpy as np


def _cell(value, digits: int) -> str:
    """A number with ``digits`` decimals; "–" for a missing value (None), yes / no for a flag."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.{digits}f}"



CHECK_ROWS = (("radius r of the ball of T", "radius", 3), ("neighbours per N(x), mean", "mean_neighbours", 1),
              ("c, certified lower bound", "c_lower", 2), ("c, search upper bound", "c_upper", 2),
              ("separation μ", "mu", 3), ("teacher error Err(G_pl)", "pseudo_label_error", 3),
              ("bound (certified c)", "bound", 3),
              ("label correction guaranteed", "condition_holds", 0))  # label, key, decimals


def json_safe(value):
    """``value`` with every non-finite float as None (JSON null) and numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _points(x: dict) -> str:
    return f"{100 * x['estimate']:+.1f} points [{100 * x['low']:+.1f}, {100 * x['high']:+.1f}]"


def format_check(report: dict) -> str:
    """The report of ``mke_theory.diagnose.check``: the prediction and its verdict, then the theory of both spaces."""
    used = "all used" if report["n_used"] == report["n_samples"] else f"{report['n_used']} used, drawn at random"
    lines = [f"MKE check: D_u {report['n_samples']} samples ({used}), labeled validation data {report['n_val']}"]
    if report["um"] is None:
        return "\n".join(lines + ["", f"verdict: {report['verdict']}", report["verdict_text"]])
    acc = report["accuracy"]
    teacher = "teacher" if report["teacher_on_val"] == "given" else "teacher (α probe standing in)"
    lines += [f"{report['n_classes']} classes; probes ({report['probe']}) fitted to the pseudo labels of D_u, scored "
              "on the validation labels; D_u's own labels are not used", "",
              "accuracy on the validation data:",
              *(f"  {name:<46}{100 * acc[key]:>6.1f} %" for name, key in (
                  (teacher, "teacher"), ("α probe", "um_probe"), ("(α, β) probe, β as the student sees it",
                                                                   "student_like_probe"),
                  ("(α, β) probe, β's weight cross-fitted", "mm_probe"),
                  ("the same, β shuffled across D_u", "shuffled_beta_probe"))),
              f"{'predicted gain of the MM student over the teacher':<52}{_points(report['predicted_gain'])}",
              "  (calibrated on docs/check_benchmark.md; the interval adds the spread the validation data cannot see)",
              "from the probe differences:",
              f"  {'student-like probe − α probe (what β adds)':<50}{_points(report['student_like_over_um'])}",
              f"  {'cross-fitted probe − teacher':<50}{_points(report['probe_vs_teacher'])}",
              f"  {'cross-fitted probe − α probe':<50}{_points(report['predicted_gain_over_um'])}",
              f"  {'what β itself adds (against β shuffled)':<50}{_points(report['beta_contribution'])}",
              "", f"verdict: {report['verdict']}", report["verdict_text"], "",
              "Theory (Wei et al. 2021, Thm 4.3) on the validation data; sets of class mass ≤ "
              f"ā = {report['a_bar']:.2f}",
              "(the teacher's largest per-class error); ball B(x) of T(x) = x + a·mean|x|·ε with "
              f"a = {report['input_noise']:g}: r = a·sqrt(Σ_m d_m·mean|x_m|²) in each space",
              f"{'':<34}{'UM space (α)':>16}{'MM space (α, β)':>18}"]
    um, mm = report["um"], report["mm"]
    for label, key, digits in CHECK_ROWS:
        lines.append(f"{label:<34}{_cell(um.get(key), digits):>16}{_cell(mm.get(key), digits):>18}")
    for s in range(len(um.get("sensitivity", []))):
        a, b = um["sensitivity"][s], mm["sensitivity"][s]
        if a["scale"] == 1.0:
            continue
        lines.append(f"{'at r × ' + format(a['scale'], 'g') + ': c upper / μ':<34}"
                     f"{_cell(a['c_upper'], 2) + ' / ' + _cell(a['mu'], 3):>16}"
                     f"{_cell(b['c_upper'], 2) + ' / ' + _cell(b['mu'], 3):>18}")
    lines += [f"UM: {um['status']}", f"MM: {mm['status']}",
              "Bound: Err(G) ≤ 2/(c−1)·Err(G_pl) + 2c/(c−1)·μ for c > 3; 'guaranteed' only with the certified c "
              "(docs/theory.md)."]
    return "\n".join(lines)
