"""What every paper_figures script shares: arguments, reading records, writing outputs.

Scripts read run records through ``mke_theory.core.records``, compute every number through
``mke_theory.results.stats``, write tables with ``mke_theory.results.tables`` and take published numbers from
``mke_theory.results.reference``; plotting code (``mke_theory.results.plots``, colours from
``mke_theory.results.palette``) only draws.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mke_theory.core.records import RecordError, read_records


def arguments(description: str, runs: str, extra=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=Path, default=Path(runs), help="folder of run records")
    parser.add_argument("--out", type=Path, default=Path("paper_figures/out"), help="output folder")
    if extra:
        extra(parser)
    return parser.parse_args()


def records_for(runs: Path, task: str, hint: str) -> list[dict] | None:
    """The records of ``task`` under ``runs``; None (and a message) when there are none."""
    try:
        records = [r for r in read_records(runs) if r["task"] == task] if runs.is_dir() else []
    except RecordError as e:
        sys.exit(f"Error: {e}")
    if not records:
        print(f"no runs for {task}: run {hint}")
        return None
    return records


def write_table(out: Path, name: str, markdown: str, latex: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(markdown + "\n")
    (out / f"{name}.tex").write_text(latex + "\n")
    print(f"wrote {out / name}.md and .tex")


def write_figure(fig, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    title = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    metadata = {"Title": title} if title else {}  # the title as text, for readers and tests
    fig.savefig(out / f"{name}.png", dpi=150, bbox_inches="tight", metadata=metadata)
    fig.savefig(out / f"{name}.pdf", bbox_inches="tight", metadata=metadata)
    print(f"wrote {out / name}.png and .pdf")
