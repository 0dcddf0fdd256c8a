"""Every results table as text: Markdown, LaTeX and plain text (no torch).

``format_table`` writes the output of ``stats.summarize`` (and optionally of
``stats.compare_methods``) as a GitHub pipe table, a booktabs LaTeX table or the aligned plain-text
table ``mke-theory twomoon`` prints; ``table_frame`` gives the same rows as numbers, one per (task,
method, variant), for CSV (``mke-exp report --format csv``); ``format_bootstrap`` lists the percentile
bootstrap intervals of ``summarize(..., bootstrap=True)`` with the coverage warning; ``format_sweep`` writes
the tables of ``mke-theory simulate``; ``format_check`` (``check_report``, which loads neither pandas nor scipy,
so that ``mke-theory check`` starts fast) those of ``mke-theory check``.  The numbers
all come from ``mke_theory.results.stats``, ``mke_theory.toy.simulate`` and ``mke_theory.diagnose``; this module
only lays them out.
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np
import pandas as pd

from mke_theory.core.checks import check_choice, check_range
from mke_theory.core.errors import MKEError
from mke_theory.core.methods import REGULARIZERS, table_order
from mke_theory.results.check_report import _cell, format_check, json_safe  # noqa: F401 (re-exported)
from mke_theory.results.stats import BOOTSTRAP_FEW_RUNS, KEYS, ONE_SAMPLE_TESTS, SUMMARY_COLUMNS, TESTS

FORMATS = ("markdown", "latex", "plain")
DIGITS = {"markdown": 1, "latex": 1, "plain": 2}  # default decimals of mean ± std per format
PLAIN_METRIC = "test accuracy %"  # column heads of the plain table (mke-theory twomoon)
# head of the reference column unless the caller names its source (reference_label): the defaults
# of earlier versions, kept for callers that rely on them; every table of this package names it
REFERENCE_LABEL = {"markdown": "paper", "latex": "paper", "plain": "official notebook"}
# ablation rows go in the regularisers' order (none -> input noise -> feature noise -> dropout -> all), not
# alphabetically
VARIANT_ORDER = REGULARIZERS

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "†": r"$^\dagger$", "Δ": r"$\Delta$", "≤": r"$\le$", "≥": r"$\ge$",
                  "×": r"$\times$", "−": "-"}


def latex_escape(text) -> str:
    """``text`` with LaTeX's special characters escaped (±, †, Δ, ≤, ≥ and × as math)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def markdown_escape(text) -> str:
    """``text`` safe inside a cell of a Markdown pipe table."""
    return str(text).replace("|", r"\|")


def _label(method: str, variant: str) -> str:
    return f"{method} ({variant})" if variant else method


def reference_for(reference: dict, method: str, variant: str):
    """The reference value of a row: keyed by (method, variant), by method (rows without a variant)
    or by "method (variant)"; None when there is none."""
    if (method, variant) in reference:
        return reference[(method, variant)]
    if variant == "":
        return reference.get(method)
    return reference.get(_label(method, variant))


COMPARISON_NEEDS = KEYS + ["baseline", "baseline_variant", "n", "mean_diff", "diff_ci_low", "diff_ci_high", "d_z",
                            "test", "p_holm", "alpha", "significant", "note"]
BOOTSTRAP_COVERAGE = ("for normal data a nominal 95 % percentile bootstrap interval covers the mean about "
                      "50 % of the time at 2 runs, 75 % at 3, 84 % at 5 and 90 % at 10 (docs/statistics.md)")


def _significance(comparisons: pd.DataFrame | None) -> tuple[dict, str, str]:
    """({(task, method, variant): significant}, the note, the note in LaTeX) of ``compare_methods`` output."""
    if comparisons is None:
        return {}, "", ""
    missing = [c for c in COMPARISON_NEEDS if c not in comparisons.columns]
    if missing:
        raise MKEError(f"comparisons misses column(s) {', '.join(missing)}; pass the output of compare_methods")
    significant = {(r.task, r.method, r.variant): bool(r.significant) for r in comparisons.itertuples()}
    if not len(comparisons):
        return significant, "", ""
    designs = comparisons["design"] if "design" in comparisons.columns else ["paired"] * len(comparisons)
    tests = ", ".join(dict.fromkeys((ONE_SAMPLE_TESTS if d == "one-sample" else TESTS).get(t, str(t))
                                    for t, d in zip(comparisons["test"], designs) if d != "fixed"))
    alphas = "/".join(f"{a:g}" for a in dict.fromkeys(comparisons["alpha"]))
    bases = ", ".join(_label(m, v) for m, v in dict.fromkeys(zip(comparisons["baseline"],
                                                                  comparisons["baseline_variant"])))
    rest = f", {tests}, Holm-corrected, vs {bases}"
    return significant, f"† p < {alphas}{rest}", rf"$^\dagger$\,$p < {alphas}${latex_escape(rest)}"


def _fixed(r) -> bool:
    """Whether a summary row is a fixed value (an external teacher: ``stats.summarize``'s ``fixed``)."""
    value = getattr(r, "fixed", False)
    return bool(value) if value == value else False  # NaN: not fixed


def _has_interval(r) -> bool:
    """Whether a summary row's CI is shown: a t interval of at least 2 runs, or a fixed value's Wilson interval."""
    if _fixed(r):
        return not (math.isnan(r.ci_low) or math.isnan(r.ci_high))
    return int(r.n) > 1


def _fixed_note(summary: pd.DataFrame) -> str:
    """The sentence a table adds about its fixed rows (one value, the Wilson interval over test samples), or ""."""
    if "fixed" not in summary.columns or not summary["fixed"].astype(bool).any():
        return ""
    confidence = summary.attrs.get("confidence")
    level = f"{100 * confidence:g} % " if isinstance(confidence, numbers.Real) else ""
    pieces = []
    for r in _in_table_order(summary).itertuples():
        if not _fixed(r):
            continue
        n_test = float(getattr(r, "n_test", math.nan))
        interval = (f"its {level}CI a Wilson interval over its {int(n_test)} test samples" if math.isfinite(n_test)
                    else "no CI (the metric is no share of test samples and the record holds no predictions)")
        pieces.append(f"{_label(r.method, r.variant)} ({r.task}): one fixed value, an external teacher's "
                      f"(the same predictions for every seed), n = 1, {interval}")
    return "; ".join(pieces) + "."


def _ci_head(summary: pd.DataFrame, space: str = " ") -> str:
    confidence = summary.attrs.get("confidence")
    return f"{100 * confidence:g}{space}% CI" if isinstance(confidence, numbers.Real) else "CI"


def _signed(v: float, scale: float, digits: int) -> str:
    text = f"{v * scale:+.{digits}f}"
    return f"{0:+.{digits}f}" if float(text) == 0 else text  # no "-0.0"


def _p_text(p: float) -> str:
    return "–" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


class _Compared:
    """The comparison columns of ``format_table``: Δ vs the baseline [CI], d_z, Holm p and footnotes."""

    def __init__(self, comparisons: pd.DataFrame | None, scale: float, digits: int):
        self.rows, self.baselines, self.notes = {}, {}, {}
        self.scale, self.digits = scale, digits
        if comparisons is None or not len(comparisons):
            self.head = []
            return
        for r in comparisons.itertuples():
            self.rows[(r.task, r.method, r.variant)] = r
            self.baselines[r.task] = (r.baseline, r.baseline_variant)
        bases = list(dict.fromkeys(zip(comparisons["baseline"], comparisons["baseline_variant"])))
        versus = _label(*bases[0]) if len(bases) == 1 else "baseline"
        confidence = comparisons.attrs.get("confidence")
        ci = f"{100 * confidence:g} % CI" if isinstance(confidence, numbers.Real) else "CI"
        self.head = [f"Δ vs {versus} [{ci}]", "d_z", "p (Holm)"]

    def marks(self, key) -> str:
        """The footnote letters of a row, "(a, c)"; new notes get the next letter."""
        r = self.rows.get(key)
        pieces = [piece for piece in (r.note.split("; ") if r is not None and r.note else []) if piece]
        letters = [self.notes.setdefault(piece, chr(ord("a") + len(self.notes))) for piece in pieces]
        return f"({', '.join(letters)})" if letters else ""

    def cells(self, task, method, variant) -> list[str]:
        if not self.head:
            return []
        key = (task, method, variant)
        if key not in self.rows:
            return ["baseline" if self.baselines.get(task) == (method, variant) else "", "", ""]
        r = self.rows[key]
        if int(r.n) == 0:
            delta = "–"
        else:
            delta = _signed(r.mean_diff, self.scale, self.digits)
            if not math.isnan(r.diff_ci_low):
                delta += (f" [{_signed(r.diff_ci_low, self.scale, self.digits)}, "
                          f"{_signed(r.diff_ci_high, self.scale, self.digits)}]")
        d_z = "–" if math.isnan(r.d_z) else f"{r.d_z:+.2f}"
        p = " ".join(t for t in (_p_text(r.p_holm), self.marks(key)) if t)
        return [delta, d_z, p]

    def footnotes(self) -> str:
        return " ".join(f"({letter}) {piece}." for piece, letter in self.notes.items())


def _variant_rank(variant) -> int:
    return VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)


def _in_table_order(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by task (first appearance), then in the method table's order (mke_theory.core.methods),
    a method's variants in the regularisers' order (``VARIANT_ORDER``; others after, as they come)."""
    task_rank = {t: i for i, t in enumerate(dict.fromkeys(summary["task"]))}
    ordered = summary.assign(_rank=summary["task"].map(task_rank), _method=summary["method"].map(table_order),
                             _variant=summary["variant"].map(_variant_rank))
    return ordered.sort_values(["_rank", "_method", "_variant"], kind="mergesort")


def _reference_decimals(reference: dict) -> int:
    """The most decimals any reference value is written with ("72.65" and "72.4 / 77.7": 2 and 1)."""
    found = [len(m) for v in reference.values() for m in re.findall(r"\d\.(\d+)", str(v))]
    return max(found, default=0)


def format_table(summary: pd.DataFrame, comparisons: pd.DataFrame | None = None, fmt: str = "markdown",
                 scale: float = 100, digits: int | None = None, caption: str | None = None,
                 reference: dict | None = None, reference_label: str | None = None) -> str:
    """A results table: one row per (method, variant) per task, mean ± std, n, CI and significance.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of ``stats.summarize``; rows are grouped by task (first appearance) and put in the
        method table's order (``mke_theory.core.methods``), teacher first, upper bound last.
    comparisons : pandas.DataFrame, optional
        Output of ``stats.compare_methods``; rows whose ``significant`` is true get a † after
        their mean, and the caption (plain: a line below the table) names the test, the
        correction, α and the baseline. Three columns are added: "Δ vs BASELINE [95 % CI]" (the
        mean paired difference, method − baseline, with its t interval, scaled like the means;
        "baseline" on the baseline's row), "d_z" (mean / sd of the differences) and "p (Holm)"
        (the Holm-adjusted p that decides the †). Every piece of a row's ``note`` (why a number
        is missing, a comparison that is not tested but counted in the Holm family, a Wilcoxon
        test that cannot reach α with so few seeds) becomes a footnote: a letter such as "(a)"
        after the row's p, and "(a) text." after the caption.
    fmt : {"markdown", "latex", "plain"}, default "markdown"
        GitHub pipe table with the caption on a line below; a booktabs ``tabular`` inside a
        ``table`` environment with ``\\caption{...}``; or aligned plain text for a terminal, one
        "method [variant]" column, with the caption as a title line above it.
    scale : float, default 100
        Factor applied to mean, std and CI (100: fractions shown as percentages).
    digits : int, optional
        Decimals of mean ± std (and of the CI; plain text shows the CI with one fewer). Default:
        1 for Markdown and LaTeX, 2 for plain text, or more where ``reference`` has more (a
        reference of 72.65 is shown beside 72.55, not 72.5).
    caption : str, optional
        Markdown / LaTeX: text put before the significance note; plain: the title line.
    reference : dict, optional
        Numbers to show in a reference column, keyed by method (rows without a variant), by
        (method, variant) or by "method (variant)"; values are shown as given.
    reference_label : str, optional
        Head of the reference column: its source, e.g. "official notebook" or "paper" (default,
        as in earlier versions: "paper", plain "official notebook"; name the source). Rows of a
        method's variants come in the regularisers' order (none, input noise, feature noise,
        dropout, all).

    Returns
    -------
    str
        Cells read ``77.7 ± 0.7`` (mean ± std, std omitted for a single run); the CI column is
        headed with ``summary.attrs["confidence"]`` when present (``95 % CI``), and shows "–"
        (plain: nothing) for a single run. Differences read ``+6.7 [+5.4, +8.0]``.
    """
    digits = _check_table_args(summary, fmt, scale, digits, reference)
    label = reference_label or REFERENCE_LABEL[fmt]
    fixed_note = _fixed_note(summary)
    if fixed_note:
        text = (caption or "").strip()
        caption = f"{text}{'' if not text or text.endswith(('.', '!', '?', ':')) else '.'} {fixed_note}".strip()
    significant, note, note_latex = _significance(comparisons)
    ordered = _in_table_order(summary)
    compared = _Compared(comparisons, scale, digits)
    number, marked, ref_of = _cell_writers(scale, digits, significant, reference)
    if fmt == "plain":
        return _plain(summary, ordered, number, max(digits - 1, 0), marked, ref_of if reference else None,
                      caption, note, compared, label)

    # the cells first: they number the footnotes in the order of the rows
    ci_head = _ci_head(summary)
    with_variant = bool((summary["variant"].astype(str) != "").any())
    head = ["task", "method"] + (["variant"] if with_variant else []) + ["mean ± std", "n", ci_head] + compared.head
    head += [label] if reference else []
    body, tasks = _table_body(ordered, number, marked, ref_of if reference else None, compared, with_variant)
    text, text_latex = _table_caption(caption, note, note_latex, compared.footnotes())
    if fmt == "markdown":
        return _markdown(head, body, text, with_variant)
    return _latex(head, body, tasks, text_latex if text else "", ci_head, compared.head, with_variant)


# the comparison columns of table_frame, from compare_methods (its n renamed: the summary has one)
TABLE_COMPARED = ["baseline", "baseline_variant", "n_compared", "baseline_mean", "mean_diff", "diff_ci_low",
                  "diff_ci_high", "d_z", "design", "test", "t", "p_t", "p_wilcoxon", "p_wilcoxon_min", "p", "p_min",
                  "p_holm", "alpha", "significant", "prob_improvement_paired", "prob_improvement_all_pairs", "note"]


def table_frame(summary: pd.DataFrame, comparisons: pd.DataFrame | None = None, metric: str | None = None,
                reference: dict | None = None) -> pd.DataFrame:
    """The rows of ``format_table`` as numbers: one row per (task, method, variant), in the table's order.

    Nothing is computed here: the columns are those of ``stats.summarize`` and ``stats.compare_methods``
    (the frames ``format_table`` lays out), unscaled (fractions, as in the records) and unrounded, so
    a CSV of it (``mke-exp report --format csv``) reads back with ``pandas.read_csv`` as numbers.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of ``stats.summarize``.
    comparisons : pandas.DataFrame, optional
        Output of ``stats.compare_methods``.
    metric : str, optional
        Written into a ``metric`` column (after the keys) when given.
    reference : dict, optional
        As in ``format_table``: a ``reference`` column of the values as given (text).

    Returns
    -------
    pandas.DataFrame
        task, method, variant, [metric], n, fixed (an external teacher's one value: n = 1), n_test
        (the test samples of a fixed value's Wilson interval, else NaN), mean, std, ci_low, ci_high
        (NaN where the table shows "–": a single run), interval ("t", "wilson" or "" where none),
        confidence, iqm, [boot_low, boot_high]; with ``comparisons`` the columns of
        ``TABLE_COMPARED`` (``compare_methods``' ``n`` as ``n_compared``; ``baseline`` and
        ``baseline_variant`` also on the baseline's own row, its other comparison columns empty; a
        row of a task without the baseline has them all empty); [reference].
    """
    _check_table_args(summary, "markdown", 100, None, reference)
    _significance(comparisons)  # checks its columns
    ordered = _in_table_order(summary).reset_index(drop=True)
    rows = list(ordered.itertuples())
    out = ordered[KEYS].copy()
    if metric is not None:
        out["metric"] = metric
    fixed = [_fixed(r) for r in rows]
    shown = np.array([_has_interval(r) for r in rows], dtype=bool)
    out["n"] = ordered["n"].astype(int)
    out["fixed"] = np.array(fixed, dtype=bool)
    out["n_test"] = ordered["n_test"].astype(float) if "n_test" in ordered.columns else np.nan
    for name in ("mean", "std"):
        out[name] = ordered[name].astype(float)
    out["ci_low"] = ordered["ci_low"].astype(float).where(shown)
    out["ci_high"] = ordered["ci_high"].astype(float).where(shown)
    out["interval"] = ["" if not s else "wilson" if f else "t" for s, f in zip(shown, fixed)]
    confidence = summary.attrs.get("confidence")
    out["confidence"] = float(confidence) if isinstance(confidence, numbers.Real) else np.nan
    for name in ("iqm", "boot_low", "boot_high"):
        if name in ordered.columns:
            out[name] = ordered[name].astype(float)
    if comparisons is not None:
        compared = comparisons.rename(columns={"n": "n_compared"})
        compared = compared[KEYS + [c for c in TABLE_COMPARED if c in compared.columns]]
        out = out.merge(compared, on=KEYS, how="left", validate="one_to_one")
        out["n_compared"] = out["n_compared"].astype("Int64")  # a count, empty where nothing was compared
        bases = dict(zip(comparisons["task"], zip(comparisons["baseline"], comparisons["baseline_variant"])))
        is_base = [bases.get(t) == (m, v) for t, m, v in zip(out["task"], out["method"], out["variant"])]
        out.loc[is_base, "baseline"] = out.loc[is_base, "method"]
        out.loc[is_base, "baseline_variant"] = out.loc[is_base, "variant"]
    if reference:
        out["reference"] = [reference_for(reference, r.method, r.variant) for r in rows]
    return out


def _check_table_args(summary: pd.DataFrame, fmt: str, scale: float, digits: int | None,
                      reference: dict | None) -> int:
    """``format_table``'s arguments checked; returns the decimals of mean ± std (``digits``, or by default
    the format's, more where ``reference`` is written with more)."""
    check_choice("fmt", fmt, FORMATS)
    check_range("scale", scale, 0.0, low_inclusive=False)
    if digits is None:
        digits = max(DIGITS[fmt], _reference_decimals(reference) if reference else 0)
    check_range("digits", digits, 0, 15, integer=True)
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise MKEError(f"summary misses column(s) {', '.join(missing)}; pass the output of summarize")
    return digits


def _cell_writers(scale: float, digits: int, significant: dict, reference: dict | None):
    """(number, marked, ref_of): a value ×``scale`` with ``digits`` (or ``d``) decimals; whether a summary row
    is significant (``_significance``); a summary row's reference value as text, "" when it has none."""

    def number(v: float, d: int = digits) -> str:
        return f"{v * scale:.{d}f}"

    def marked(r) -> bool:
        return significant.get((r.task, r.method, r.variant), False)

    def ref_of(r) -> str:
        ref = reference_for(reference, r.method, r.variant)
        return "" if ref is None else str(ref)

    return number, marked, ref_of


def _table_body(ordered: pd.DataFrame, number, marked, ref_of, compared: _Compared,
                with_variant: bool) -> tuple[list[list[str]], list[str]]:
    """The Markdown / LaTeX table's cells, one list of strings per row of ``ordered`` (mean ± std with its †,
    n, CI, the comparison columns, the reference when ``ref_of`` is given), and each row's task."""
    body, tasks = [], []
    for r in ordered.itertuples():
        n = int(r.n)
        cell = number(r.mean) + (f" ± {number(r.std)}" if n > 1 and not math.isnan(r.std) else "")
        cell += " †" if marked(r) else ""
        ci = f"[{number(r.ci_low)}, {number(r.ci_high)}]" if _has_interval(r) else "–"
        row = [r.task, r.method] + ([r.variant] if with_variant else []) + [cell, "fixed" if _fixed(r) else str(n), ci]
        row += compared.cells(r.task, r.method, r.variant)
        row += [ref_of(r)] if ref_of else []
        body.append(row)
        tasks.append(r.task)
    return body, tasks


def _table_caption(caption: str | None, note: str, note_latex: str, footnotes: str) -> tuple[str, str]:
    """(the caption text, the same in LaTeX): ``caption``, then the significance note, then the footnotes."""
    text = (caption or "").strip()
    if text and (note or footnotes) and not text.endswith((".", "!", "?", ":")):
        text += "."
    note_end = "." if note and footnotes else ""
    text_latex = " ".join(t for t in (latex_escape(text), note_latex + note_end, latex_escape(footnotes)) if t)
    text = " ".join(t for t in (text, note + note_end, footnotes) if t)
    return text, text_latex


def _markdown(head: list[str], body: list[list[str]], text: str, with_variant: bool) -> str:
    """A GitHub pipe table of ``head`` and ``body`` (text columns left, numbers right), ``text`` below."""
    lines = ["| " + " | ".join(map(markdown_escape, head)) + " |",
             "|" + "|".join("---" if i < 2 + with_variant else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(map(markdown_escape, row)) + " |" for row in body]
    if text:
        lines += ["", text]
    return "\n".join(lines)


def _latex(head: list[str], body: list[list[str]], tasks: list[str], text_latex: str, ci_head: str,
           compared_head: list[str], with_variant: bool) -> str:
    """A booktabs ``tabular`` in a ``table`` with ``\\caption{text_latex}`` (none when ``text_latex`` is
    empty), a rule between tasks."""
    latex_head = [latex_escape(h) for h in head]
    latex_head[head.index("n")] = "$n$"
    latex_head[head.index(ci_head)] = ci_head.replace(" % ", r"\,\% ")
    if compared_head:
        at = head.index(compared_head[0])
        latex_head[at:at + 3] = [latex_escape(compared_head[0]).replace(r" \% ", r"\,\% "), "$d_z$", "$p$ (Holm)"]
    lines = [r"\begin{table}", r"\centering"]
    if text_latex:
        lines.append(r"\caption{" + text_latex + "}")
    lines += [r"\begin{tabular}{" + "l" * (2 + with_variant) + "r" * (len(head) - 2 - with_variant) + "}",
              r"\toprule", " & ".join(latex_head) + r" \\", r"\midrule"]
    for i, row in enumerate(body):
        if i and tasks[i] != tasks[i - 1]:
            lines.append(r"\midrule")
        cells = [latex_escape(c) for c in row]
        cells[head.index("mean ± std")] = cells[head.index("mean ± std")].replace(r" $^\dagger$", r"$^\dagger$")
        for at in [head.index(ci_head)] + [head.index(h) for h in compared_head]:
            cells[at] = cells[at].replace("–", "--")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def _plain(summary, ordered, number, ci_digits, marked, ref_of, title, note, compared, label) -> str:
    """The plain-text layout of ``format_table``: method [variant], runs, mean ± std, CI, Δ, d_z, p, reference."""
    head = f"{'method':<28}{'runs':>5}  {PLAIN_METRIC:>16}  {_ci_head(summary, space=''):>15}"
    widths = (24, 6, 12)
    head += "".join(f"  {h.replace(' % ', '% '):>{w}}" for h, w in zip(compared.head, widths))
    head += f"  {label:>17}" if ref_of else ""
    lines = [title, head, "-" * len(head)] if title else [head, "-" * len(head)]
    for r in ordered.itertuples():
        n = int(r.n)
        name = r.method + (f" [{r.variant}]" if r.variant else "")
        std = ("" if n < 2 else f" ± {number(r.std)}") + (" †" if marked(r) else "")
        ci = f"[{number(r.ci_low, ci_digits)}, {number(r.ci_high, ci_digits)}]" if _has_interval(r) else ""
        line = f"{name:<28}{'fixed' if _fixed(r) else n:>5}  {number(r.mean):>9}{std:<7}  {ci:>15}"
        line += "".join(f"  {c:>{w}}" for c, w in zip(compared.cells(r.task, r.method, r.variant), widths))
        lines.append(line + (f"  {ref_of(r):>17}" if ref_of else ""))
    footnotes = compared.footnotes()
    if note or footnotes:
        lines += [""] + [t for t in (note + ("." if note and footnotes else ""), footnotes) if t]
    return "\n".join(lines)


def format_bootstrap(summary: pd.DataFrame, scale: float = 100, digits: int = 1) -> str:
    """The bootstrap intervals of ``summarize(..., bootstrap=True)`` as text, labelled as computed.

    A title line names the interval (percentile bootstrap; "stratified" only when
    ``summary.attrs["bootstrap"]["strata"] > 1``), its level, resamples and seed; one line per
    cell follows ("task method [variant]: [low, high] (n runs)"). When any cell has fewer than
    ``stats.BOOTSTRAP_FEW_RUNS`` runs a last line warns that the interval's coverage is low
    there, with the simulated coverage of docs/statistics.md, and points to the t interval.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of ``stats.summarize(..., bootstrap=True)`` (columns ``boot_low``, ``boot_high``).
    scale : float, default 100
        Factor applied to the bounds.
    digits : int, default 1
        Decimals of the bounds.
    """
    check_range("scale", scale, 0.0, low_inclusive=False)
    check_range("digits", digits, 0, 15, integer=True)
    missing = [c for c in SUMMARY_COLUMNS + ["boot_low", "boot_high"] if c not in summary.columns]
    if missing:
        raise MKEError(f"summary misses column(s) {', '.join(missing)}; pass the output of "
                       "summarize(..., bootstrap=True)")
    info = summary.attrs.get("bootstrap", {})
    strata = int(info.get("strata", 1))
    kind = f"stratified percentile bootstrap ({strata} strata)" if strata > 1 else "percentile bootstrap"
    details = [f"{info['n_resamples']} resamples" if "n_resamples" in info else "",
               f"random_state={info['random_state']}" if info.get("random_state") is not None else ""]
    details = ", ".join(d for d in details if d)
    confidence = summary.attrs.get("confidence")
    level = f"{100 * confidence:g} % " if isinstance(confidence, numbers.Real) else ""
    lines = [f"{kind} {level}intervals of the mean" + (f" ({details})" if details else "") + ":"]
    for r in _in_table_order(summary).itertuples():
        name = " ".join(t for t in (r.task, r.method, f"[{r.variant}]" if r.variant else "") if t)
        if _fixed(r):
            lines.append(f"  {name}: – (one fixed value: no runs to resample)")
            continue
        lines.append(f"  {name}: [{r.boot_low * scale:.{digits}f}, {r.boot_high * scale:.{digits}f}] "
                     f"({int(r.n)} run{'s' if int(r.n) != 1 else ''})")
    seeded = summary[~summary["fixed"].astype(bool)] if "fixed" in summary.columns else summary
    few = int((seeded["n"] < BOOTSTRAP_FEW_RUNS).sum())
    if few:
        lines.append(f"Warning: {few} of {len(seeded)} cells have fewer than {BOOTSTRAP_FEW_RUNS} runs, where these "
                     f"intervals cover the true mean far less often than their nominal level: {BOOTSTRAP_COVERAGE}. "
                     "Quote the t interval of the table instead.")
    return "\n".join(lines)


def format_runs(runs: list[dict], task: str, metric: str, caption: str, scale: float = 100, digits: int = 1) -> str:
    """One line per student run (in the order the runs were made, a repeated seed listed each time),
    one column per method: the per-run numbers a notebook prints, below ``caption``."""
    rows = [r for r in runs if r["task"] == task and not r.get("variant")]
    methods = sorted(dict.fromkeys(r["method"] for r in rows), key=table_order)
    students = [m for m in methods if m != "teacher"]
    columns = {m: [r for r in rows if r["method"] == m] for m in students}
    n_runs = max((len(v) for v in columns.values()), default=0)
    head = f"{'run':>3}  {'seed':>4}  " + "  ".join(f"{m:>14}" for m in students)
    lines = [caption, head, "-" * len(head)]
    for i in range(n_runs):
        cells = [columns[m][i] if i < len(columns[m]) else None for m in students]
        seed = next(c["seed"] for c in cells if c is not None)
        lines.append(f"{i + 1:>3}  {seed:>4}  " + "  ".join(
            f"{'–' if c is None else format(scale * c['metrics'][metric], f'.{digits}f'):>14}" for c in cells))
    return "\n".join(lines)


# ---- mke-theory simulate and check ------------------------------------------------------------


def format_sweep(rows: list[dict], caption: str) -> str:
    """The tables of a noise sweep (``mke_theory.toy.simulate.simulate`` records), below a caption line.

    First the students: per η and method the pseudo labels' error on D_u, the test error (mean ±
    std over seeds) and the pseudo labels each student corrected and corrupted (mean count); then
    the theory of the teacher rows: c, μ and the bound of Theorem 4.3 in the UM and the MM space,
    and which space guarantees label correction ("–": outside the theorem's domain).
    """
    frame = pd.DataFrame([dict(eta=r["config"]["eta"], method=r["method"], **r["metrics"]) for r in rows])
    students = frame[frame.method != "teacher"]
    table = students.groupby(["eta", "method"], sort=False).agg(
        test_error=("test_error", "mean"), test_error_std=("test_error", "std"),
        pseudo_label_error=("pseudo_label_error", "mean"), corrected=("corrected", "mean"),
        corrupted=("corrupted", "mean")).reset_index().sort_values("eta", kind="stable")
    head = (f"{'η':>5}  {'pseudo-label err %':>18}  {'method':<18}{'test error %':>16}"
            f"  {'corrected':>9}  {'corrupted':>9}")
    lines = [caption, head, "-" * len(head)]
    for _, r in table.iterrows():
        std = 0.0 if math.isnan(r.test_error_std) else r.test_error_std
        lines.append(f"{r.eta:>5.2f}  {100 * r.pseudo_label_error:>18.1f}  {r.method:<18}"
                     f"{100 * r.test_error:>8.1f} ± {100 * std:<5.1f}"
                     f"  {r.corrected:>9.1f}  {r.corrupted:>9.1f}")
    lines += ["", "Theory (Wei et al. 2021, Thm 4.3, by mke-theory check with the test set as labeled validation data: "
                  "c certified over sets of mass ≤ ā, μ of the validation labels; '–': outside the theorem's domain)"]
    head = f"{'η':>5}  {'UM c':>6} {'UM μ':>6} {'UM bound':>9}  {'MM c':>6} {'MM μ':>6} {'MM bound':>9}  guarantee"
    lines += [head, "-" * len(head)]

    def cell(v, d):
        return _cell(None if v is None or v != v else v, d)

    for r in sorted((r for r in rows if r["method"] == "teacher"), key=lambda r: r["config"]["eta"]):
        m = r["metrics"]
        holds = [name for name in ("um", "mm") if m.get(f"{name}_condition") == 1.0]
        lines.append(f"{r['config']['eta']:>5.2f}  {cell(m.get('um_c'), 2):>6} {cell(m.get('um_mu'), 3):>6} "
                     f"{cell(m.get('um_bound'), 3):>9}  {cell(m.get('mm_c'), 2):>6} {cell(m.get('mm_mu'), 3):>6} "
                     f"{cell(m.get('mm_bound'), 3):>9}  {'+'.join(holds).upper() or 'none'}")
    return "\n".join(lines)
