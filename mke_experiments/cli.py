"""``mke-exp``: real-data experiments and reports over run records.

The task registry with ``run``/``prepare``/``list`` arrives with the experiment framework;
``report`` already prints any table from a folder of run records.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group(context_settings=dict(help_option_names=["-h", "--help"], show_default=True))
@click.version_option(package_name="mke")
def cli():
    """Multimodal Knowledge Expansion on real data, and reports over run records."""


def _baseline(value: str):
    method, _, variant = value.partition(":")
    return (method, variant) if variant else method


@cli.command()
@click.argument("runs", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--metric", default=None, help="Metric to tabulate (default: test_accuracy, else the first one found).")
@click.option("--task", default=None, help="Only this task (default: every task in the folder).")
@click.option("--baseline", default="teacher", help="Method (or METHOD:VARIANT) the others are tested against.")
@click.option("--test", type=click.Choice(["t", "wilcoxon"]), default="t", help="Paired test over shared seeds.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              help="Significance level after Holm correction.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex"]), default="markdown")
@click.option("--bootstrap", is_flag=True, help="Also report stratified-bootstrap intervals (seeded).")
def report(runs, metric, task, baseline, test, alpha, fmt, bootstrap):
    """Print the table of a folder of run records: mean ± std, 95 % CI, paired tests vs a baseline."""
    from mke_theory.records import RecordError, read_records
    from mke_theory.stats import compare_methods, format_table, records_frame, summarize

    try:
        frame = records_frame(read_records(runs))
        if frame.empty:
            raise ValueError(f"{runs} holds no run records (*.json)")
        if task is not None:
            if task not in set(frame["task"]):
                raise ValueError(f"no records of task {task!r} in {runs}; tasks: {', '.join(sorted(set(frame.task)))}")
            frame = frame[frame["task"] == task]
        metrics = list(dict.fromkeys(frame["metric"]))
        metric = metric or ("test_accuracy" if "test_accuracy" in metrics else metrics[0])
        summary = summarize(frame, metric, bootstrap=bootstrap, random_state=0)
        base = _baseline(baseline)
        has_base = (frame["method"] == (base if isinstance(base, str) else base[0])).any()
        comparisons = compare_methods(frame, metric, baseline=base, test=test, alpha=alpha) if has_base else None
    except (ValueError, RecordError) as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    caption = f"{metric} (%), mean ± std over seeds, records in {runs}"
    click.echo(format_table(summary, comparisons, fmt=fmt, caption=caption))
    if bootstrap:
        click.echo("\nstratified bootstrap 95 % intervals (2000 resamples, random_state=0):")
        for r in summary.itertuples():
            click.echo(f"  {r.task} {r.method} {r.variant}: [{100 * r.boot_low:.1f}, {100 * r.boot_high:.1f}]")
    if comparisons is None:
        click.echo(f"(no significance tests: baseline {baseline!r} has no records here)", err=True)


if __name__ == "__main__":
    cli()
