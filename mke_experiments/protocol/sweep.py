"""``mke-exp sweep``: MKE's gain against teacher strength, as a user would measure it.

For each size of D_l (``data.n_labeled``: a task's own split for mfeat, a stratified subsample of the bundle's
D_l for arrays), the teacher and the MM student train over the seeds by the run path of ``mke-exp run``
(``run_seeds``, a plan group at a time: records under ``out``, resumable, a finished record is never trained
again); then ``mke_theory.diagnose.check_bundle`` runs on each seed's check bundle (the arrays written to
``OUT/check/``, as ``mke-exp check`` reads them). The size is in every record's config, so the records of
all sizes share one folder without colliding.

``sweep_row`` turns one size's records and checks into numbers: teacher and MM student (mean and 95 % t
interval over seeds, ``stats.t_interval``), the gain MM − teacher with its paired 95 % interval over the
seeds both share (``stats.paired_comparison``), and the check's predicted gain (the mean over seeds of its
estimate and interval ends) and verdicts. ``format_sweep`` prints them; the figure is
``mke_theory.results.sweep_plot.plot_sweep``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mke_experiments.config import ExperimentConfig, resolve_config
from mke_experiments.protocol.plan import Plan
from mke_experiments.protocol.seeds import run_seeds, task_name
from mke_experiments.train.runtime import resolve_device
from mke_theory.core.errors import MKEError
from mke_theory.core.split import MultimodalSplit

SWEEP_METHODS = ("teacher", "mm_student")
SIZE_FIELD = "n_labeled"  # the data field a task must have for its D_l to be swept
CHECK_SAMPLES = 2000  # D_u rows the check reads per seed, as mke-exp check's --max-samples default


def sweepable(task) -> bool:
    """Whether ``task``'s D_l can be subsampled: its data config has the field ``n_labeled``."""
    return any(f.name == SIZE_FIELD for f in dataclasses.fields(task.default_config.data))


def sweepable_tasks() -> list[str]:
    """The registered tasks ``mke-exp sweep`` can run, sorted."""
    from mke_experiments.tasks import TASKS

    return sorted(name for name, task in TASKS.items() if sweepable(task))


@dataclass(frozen=True)
class SweepPoint:
    """One size of D_l: its resolved config, its split and the plan of teacher and MM student over the seeds."""

    size: int
    cfg: ExperimentConfig
    split: MultimodalSplit
    plan: Plan


def sweep_task(task: str):
    """The registered task ``task`` if its D_l can be subsampled, else a one-sentence ``MKEError``."""
    from mke_experiments.tasks import get_task

    spec = get_task(task)
    if not sweepable(spec):
        raise MKEError(f"task {task} has no data.{SIZE_FIELD}, so its D_l cannot be subsampled; mke-exp sweep runs "
                       f"{', '.join(sweepable_tasks())}")
    return spec


def plan_sweep(task: str, sizes, seeds, data=None, overrides=(), epochs=None) -> list[SweepPoint]:
    """Every size's config, split and plan, all loaded before anything trains (so that a bad size is refused
    before the first one has trained). A task without ``data.n_labeled``, a ``--set data.n_labeled`` (what
    ``sizes`` sweeps) and a split whose teacher is given (nothing trains on D_l) are one-sentence errors."""
    spec = sweep_task(task)
    if any(str(item).split("=", 1)[0].strip() == f"data.{SIZE_FIELD}" for item in overrides):
        raise MKEError(f"--set data.{SIZE_FIELD} is what --labeled sweeps; drop it and list the sizes in --labeled")
    points = []
    for size in sizes:
        at_size = tuple(overrides) + (f"data.{SIZE_FIELD}={size}",)
        try:
            cfg, split = spec.load_split(resolve_config(spec, at_size, epochs), data, at_size)
        except MKEError as e:
            raise MKEError(f"--labeled {size}: {e}") from None
        plan = Plan.of(cfg, split, SWEEP_METHODS, seeds)
        if plan.external_teacher:
            raise MKEError(f"the data of {task} carry their own teacher output, so no teacher trains on D_l and a "
                           "sweep of its size measures nothing; use a bundle without pseudo_labels / teacher_probs")
        points.append(SweepPoint(int(size), cfg, split, plan))
    return points


def run_sweep(points: list[SweepPoint], out: Path | None = None, device="auto", progress=None,
              max_samples: int = CHECK_SAMPLES) -> list[dict]:
    """Train every point's teacher and MM student over its seeds (``run_seeds``, resumable under ``out``),
    check each seed's bundle, and return one ``sweep_row`` per point, in the order of ``points``."""
    from mke_experiments.tasks import get_task
    from mke_theory.diagnose import check_bundle

    dev = resolve_device(device) if isinstance(device, str) else device
    rows = []
    for point in points:
        cfg, plan = point.cfg, point.plan
        results = [result for group in plan.groups for result in run_seeds(
            cfg, point.split, group, SWEEP_METHODS, out=out, device=dev, progress=progress, plan=plan)]
        checks = [None if result.check is None else check_bundle(
            result.check, source=f"{task_name(cfg)} with {point.size} labels (seed {seed})", max_samples=max_samples,
            random_state=seed) for seed, result in zip(plan.seeds, results)]
        records = [record for result in results for record in result.records]
        rows.append(sweep_row(point.size, records, checks, f"test_{get_task(cfg.task).primary}"))
    return rows


def sweep_row(size: int, records: list[dict], checks: list, metric: str = "test_accuracy") -> dict:
    """One size's numbers, in points (%): ``teacher`` and ``mm`` (mean over seeds, with ``*_low``, ``*_high``
    their 95 % t interval), ``gain`` = MM − teacher, the paired mean difference over the seeds both share,
    with ``gain_low``, ``gain_high`` its paired 95 % t interval and ``n`` the pairs; ``check``, ``check_low``,
    ``check_high``: the check's predicted gain and interval, averaged over the seeds' checks (None without a
    prediction: no check bundle or no validation set); ``verdicts``: each seed's verdict."""
    from mke_theory.results.stats import paired_comparison, records_frame, t_interval

    frame = records_frame(records)
    frame = frame[frame["metric"] == metric]
    row = dict(size=int(size))
    for key, method in (("teacher", "teacher"), ("mm", "mm_student")):
        values = 100 * frame.loc[frame["method"] == method, "value"].to_numpy(float)
        if values.size == 0:
            raise MKEError(f"internal: no {method} record holds {metric} at {size} labels")
        row[key] = float(values.mean())
        row[f"{key}_low"], row[f"{key}_high"] = t_interval(values)
    pair = paired_comparison(frame, metric, "mm_student", "teacher")
    row.update(gain=100 * pair["mean_diff"], gain_low=100 * pair["diff_ci_low"],
               gain_high=100 * pair["diff_ci_high"], n=int(pair["n"]))
    predicted = [c["predicted_gain"] for c in checks if c is not None and c["predicted_gain"]["estimate"] is not None]
    for key, part in (("check", "estimate"), ("check_low", "low"), ("check_high", "high")):
        row[key] = 100 * float(np.mean([p[part] for p in predicted])) if predicted else None
    row["verdicts"] = tuple(c["verdict"] for c in checks if c is not None)
    return row


def _verdicts(verdicts: tuple) -> str:
    """``helps`` when every seed's check agrees, else the count of each (``helps 2, unclear 1``)."""
    if not verdicts:
        return "–"
    counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
    return verdicts[0] if len(counts) == 1 else ", ".join(f"{v} {n}" for v, n in counts.items())


def format_sweep(rows: list[dict], caption: str) -> str:
    """The sweep's markdown table: one line per size (ascending), numbers in points (%)."""
    span = lambda lo, hi: "–" if lo is None or not np.isfinite(lo) else f"[{lo:+.1f}, {hi:+.1f}]"  # noqa: E731
    lines = [caption, "",
             "| labels | seeds | teacher | MM student | gain | 95 % CI (paired) | check: predicted | check: 95 % CI "
             "| verdict |", "|---:|---:|---:|---:|---:|---|---:|---|---|"]
    for r in sorted(rows, key=lambda r: r["size"]):
        check = "–" if r["check"] is None else f"{r['check']:+.1f}"
        lines.append(f"| {r['size']} | {r['n']} | {r['teacher']:.1f} | {r['mm']:.1f} | {r['gain']:+.2f} | "
                     f"{span(r['gain_low'], r['gain_high'])} | {check} | {span(r['check_low'], r['check_high'])} | "
                     f"{_verdicts(r['verdicts'])} |")
    return "\n".join(lines)
