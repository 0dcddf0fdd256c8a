"""What every paper_figures script shares: arguments, reading records, writing outputs.

Under ``make figures`` each script also records its outcome (``_status``): made when it writes its output,
skipped when its records are missing, with the reason and the command that makes them; ``summary.py`` prints them.

Scripts read run records through ``mke_theory.core.records``, compute every number through
``mke_theory.results.stats``, write tables with ``mke_theory.results.tables`` and take published numbers from
``mke_theory.results.reference``; plotting code (``mke_theory.results.plots``, colours from
``mke_theory.results.palette``) only draws.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _status

from mke_theory.core.errors import MKEError
from mke_theory.core.records import RecordError, read_records


def _one_sentence(kind, error, tb):
    """The scripts are plain top-level code: an ``MKEError`` anywhere in them (records that cannot make the table)
    ends in its one sentence and exit status 1, as in the CLIs; anything else is a bug and keeps its traceback."""
    if issubclass(kind, MKEError):
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(1)
    sys.__excepthook__(kind, error, tb)


sys.excepthook = _one_sentence


def arguments(description: str, runs: str, extra=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=Path, default=Path(runs), help="folder of run records")
    parser.add_argument("--out", type=Path, default=Path("paper_figures/out"), help="output folder")
    if extra:
        extra(parser)
    return parser.parse_args()


def records_for(runs: Path, task: str, hint: str, needs_data: bool = False, outputs=()) -> list[dict] | None:
    """The records of ``task`` under ``runs``; None (and a message naming ``hint``, the command that makes them) when
    there are none. ``needs_data``: the records need a real data set the user may not have (then ``make figures``
    skips the output and still succeeds). ``outputs``: the files this script writes; without records the ones an
    earlier run left are removed (a table whose records are gone could not be checked or remade, and would pass for
    this run's). Records of one method under two configs end the script in one sentence (``check_one_config``)."""
    from mke_theory.results.stats import check_one_config

    try:
        records = [r for r in read_records(runs) if r["task"] == task] if runs.is_dir() else []
    except RecordError as e:
        sys.exit(f"Error: {e}")
    if not records:
        print(f"no runs for {task}: run {hint}")
        why = f"no records of {task} in {runs}" + (" (they need the real data)" if needs_data else "")
        stale = [Path(p) for p in outputs if Path(p).is_file()]
        for path in stale:
            path.unlink()
        if stale:
            print(f"removed {', '.join(map(str, stale))}: made from records that are gone")
            why += f"; removed the earlier {', '.join(p.name for p in stale)}"
        _status.report("skipped", why, hint, needs_data)
        return None
    check_one_config(records, where=f"the {task} records in {runs}")
    return records


def table_numbers(records: list[dict], metric: str, baseline, task: str, expected=()):
    """(summary, comparisons, gaps) of a paper table: the statistics of ``mke_theory.results.stats``, the
    comparisons None when the baseline has no records (the table then says so instead of failing), and what the
    records lack (``missing_runs``: rows of ``expected`` without records, cells missing seeds others have),
    also printed, for the caption."""
    from mke_theory.results.stats import compare_methods, missing_runs, records_frame, summarize

    frame = records_frame(records)
    summary = summarize(frame, metric)
    gaps = missing_runs(frame, metric, expected)
    method, variant = (baseline, None) if isinstance(baseline, str) else baseline
    rows = frame[(frame["metric"] == metric) & (frame["method"] == method)]
    has_baseline = not rows.empty and (variant is None or (rows["variant"] == variant).any())
    comparisons = compare_methods(frame, metric, baseline=baseline, task=task) if has_baseline else None
    if not has_baseline:
        label = method if variant is None else f"{method} ({variant})"
        gaps.append(f"no tests: the baseline {label} has no records")
    for gap in gaps:
        print(f"warning: {task} table: {gap}")
    return summary, comparisons, gaps


def caption_gaps(gaps: list[str]) -> str:
    """The caption's part on what the records lack ("" when nothing)."""
    return f"; INCOMPLETE: {'; '.join(gaps)}" if gaps else ""


RAW = {"nyudv2": "nyu_depth_v2_labeled.mat"}  # what --raw points at, where the README names it


def records_command(name: str, out: Path) -> str:
    """The commands that make the records of mke-exp task ``name`` in ``out``: mfeat ships its data, the others are
    prepared from their download first (audioset-vggsound also reads a prepared AudioSet cache)."""
    from mke_experiments.tasks import TASKS

    task = TASKS[name]
    if not task.needs_data:
        return f"mke-exp run {name} --out {out}"
    steps = [f"mke-exp prepare {name} --raw {RAW.get(name, 'DOWNLOAD')} --out CACHE"] if task.prepare else []
    extra = sorted(task.extra_prepare or {})  # a second data set, passed as data.<its name>
    steps += [f"mke-exp prepare {e} --raw {e.upper()}_DOWNLOAD --out {e.upper()}_CACHE" for e in extra]
    sets = "".join(f" --set data.{e}={e.upper()}_CACHE" for e in extra)
    return " && ".join([*steps, f"mke-exp run {name} --data CACHE{sets} --out {out}"])


def write_table(out: Path, name: str, markdown: str, latex: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(markdown + "\n")
    (out / f"{name}.tex").write_text(latex + "\n")
    print(f"wrote {out / name}.md and .tex")
    _status.report("made")


def write_figure(fig, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    title = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    metadata = {"Title": title} if title else {}  # the title as text, for readers and tests
    fig.savefig(out / f"{name}.png", dpi=150, bbox_inches="tight", metadata=metadata)
    fig.savefig(out / f"{name}.pdf", bbox_inches="tight", metadata=metadata)
    print(f"wrote {out / name}.png and .pdf")
    _status.report("made")
