"""``mke-exp``: real-data experiments (list, config, prepare, run, check, sweep, bench) and reports over run records."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path

import click

from mke_experiments.config import TrainConfig, click_type
from mke_theory.console import SEED_LIMIT, parse_seeds, progress_bar, resolve_seeds, threads_option
from mke_theory.core.errors import MKEError, user_errors
from mke_theory.core.methods import methods_of

METHOD_NAMES = methods_of("experiments")  # every method mke-exp can train (mke_theory.core.methods)
DEFAULT_METHODS = methods_of("experiments", default_only=True)


def _small_task(kwargs: dict) -> bool:
    """``Task.small`` of the command's task (an unknown name: large; the command then says it is unknown)."""
    from mke_experiments.tasks import TASKS

    task = TASKS.get(kwargs.get("task"))
    return task is not None and task.small


def _methods(ctx, param, value):
    methods = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown or not methods:
        raise click.BadParameter(f"unknown method(s) {', '.join(unknown) or '(none)'}; "
                                 f"choose from {', '.join(METHOD_NAMES)}")
    return methods


def _with_config(task: str, config_file, overrides: tuple) -> tuple:
    """``overrides`` after the settings of ``--config`` (a file or a preset), checked now, before any data are
    read; a setting the file asks the user to fill in that is still unset is a warning on stderr."""
    if config_file is None:
        return overrides
    from mke_experiments.config import resolve_config, unfilled
    from mke_experiments.config_files import config_settings
    from mke_experiments.tasks import get_task

    spec = get_task(task)
    overrides = config_settings(config_file, spec.name) + tuple(overrides)
    for line in unfilled(spec, resolve_config(spec, overrides), overrides):
        click.echo(f"WARNING: {line}", err=True)
    return overrides


@click.group(context_settings=dict(help_option_names=["-h", "--help"], show_default=True))
@click.version_option(package_name="mke")
def cli():
    """Multimodal Knowledge Expansion on real data, and reports over run records."""


@cli.command(name="list")
def list_tasks():
    """The registered tasks with their defaults."""
    from mke_experiments.tasks import TASKS

    for name, task in sorted(TASKS.items()):
        cfg = task.default_config
        click.echo(f"{name:<10} {task.description}")
        click.echo(f"{'':<10} data: {cfg.data}")
        if cfg.prepare is not None:
            click.echo(f"{'':<10} prepare: {cfg.prepare}")
        click.echo(f"{'':<10} train: epochs={cfg.train.epochs} batch_size={cfg.train.batch_size} lr={cfg.train.lr} "
                   f"selection={cfg.train.selection}; mke: {cfg.mke.loss_form} γ={cfg.mke.gamma} "
                   f"input_noise={cfg.mke.input_noise}; needs --data: {'yes' if task.needs_data else 'no'}")
    _list_presets()


def _list_presets() -> None:
    """The presets (``mke-exp run TASK --config NAME``): name, task, whether published numbers are expected,
    and the description's first sentence."""
    import textwrap

    from mke_experiments.config_files import describe, has_numbers, presets

    click.echo("\npresets (mke-exp run TASK --config NAME; mke-exp config TASK --config NAME shows one whole):")
    for name in presets():
        about = describe(name)
        numbers = "expected numbers: published" if has_numbers(about["expected"]) else "no published numbers"
        click.echo(f"{name:<14} task {about['task']}; {numbers}")
        click.echo(textwrap.fill(str(about["description"]), 118, initial_indent=" " * 15, subsequent_indent=" " * 15))
        if about["cost"]:
            click.echo(textwrap.fill(f"cost: {about['cost']}", 118, initial_indent=" " * 15,
                                     subsequent_indent=" " * 15))


@cli.command(name="config")
@click.argument("task")
@click.option("--config", "config_file", default=None, metavar="FILE|PRESET",
              help="A YAML config file, or a preset's name (mke-exp list); --set wins over it.")
@click.option("--set", "overrides", multiple=True, help="Config override KEY=VALUE, repeatable.")
@user_errors
def show_config(task, config_file, overrides):
    """Print TASK's fully resolved configuration as YAML (every field), with --config and --set applied: what
    mke-exp run would train; saved to a file, it runs the same with --config FILE."""
    from mke_experiments.config import resolve_config
    from mke_experiments.config_files import describe, format_config, format_expected
    from mke_experiments.tasks import get_task

    spec = get_task(task)
    overrides = _with_config(task, config_file, overrides)
    cfg = resolve_config(spec, overrides)
    lines = [f"mke-exp config {task}" + (f" --config {config_file}" if config_file else "")
             + "".join(f" --set {item}" for item in overrides if not hasattr(item, "source"))]
    if config_file is not None:
        about = describe(config_file)
        lines += [f"{about['path'].stem}: {about['description']}" if about["description"] else ""]
        lines += [f"expected: {format_expected(about['expected'])}" if about["expected"] is not None else ""]
        lines += [f"cost: {about['cost']}" if about["cost"] else ""]
    lines += [f"every field resolved; mke-exp run {task} --config THIS_FILE trains exactly this configuration"]
    click.echo(format_config(cfg, spec.ignores, "\n".join(line for line in lines if line)), nl=False)


class _PrepareProgress:
    """``progress`` for a reader's prepare: the bar opens when ``cache.announce`` gives it the number of clips
    (so it shows clips/s and an ETA); ``progress(n)`` before that opens it without a total."""

    def __init__(self, label: str, stack: contextlib.ExitStack):
        self.label, self.stack, self.update = label, stack, None
        self.base, self.bar = label, contextlib.ExitStack()

    def start(self, total: int) -> None:
        if self.update is None:
            self.bar = self.stack.enter_context(contextlib.ExitStack())
            self.update = self.bar.enter_context(progress_bar(total, self.label, unit="clips"))

    def phase(self, name: str | None) -> None:
        """``cache.phase``: the bar so far ends; the next ``start`` opens one for ``name`` (e.g. checking the source
        files before reusing a cache; None: the preparing itself)."""
        self.bar.close()
        self.update, self.label = None, f"{self.base} ({name})" if name else self.base

    def __call__(self, n: int) -> None:
        self.start(0)
        self.update(n)


@cli.command()
@click.argument("task")
@click.option("--raw", type=click.Path(path_type=Path), required=True, help="The downloaded data set as it unpacks.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Cache folder to write.")
@click.option("--set", "overrides", multiple=True, help="Config override KEY=VALUE, e.g. prepare.frames=8.")
@click.option("--config", "config_file", default=None, metavar="FILE|PRESET",
              help="A YAML config file, or a preset's name (mke-exp list); --set wins over it.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes decoding clips in parallel  [default: the usable cores]")
@user_errors
@threads_option(small=_small_task)
def prepare(task, raw, out, overrides, config_file, workers):
    """Turn a real download into a compact cache (re-running skips finished work, a killed run continues)."""
    from mke_experiments.config import resolve_config
    from mke_experiments.tasks import get_preparer

    spec, prepare_data = get_preparer(task)
    if prepare_data is None:
        raise MKEError(f"task {task} needs no preparation; run it directly: mke-exp run {task}")
    overrides = _with_config(task, config_file, overrides)
    if not raw.exists():
        raise MKEError(f"{raw}: no such folder; point --raw at the unpacked download")
    cfg = resolve_config(spec, overrides)
    with contextlib.ExitStack() as stack:
        manifest = prepare_data(raw, out, cfg.prepare, progress=_PrepareProgress(f"preparing {task}", stack),
                                workers=workers)
    click.echo(f"cache written to {out}: " + ", ".join(f"{k}={v}" for k, v in manifest.get("counts", {}).items()))


@cli.command()
@click.argument("cache_dir", metavar="CACHE", type=click.Path(path_type=Path))
@user_errors
def verify(cache_dir):
    """Re-read every array of a prepared cache (its --out folder; the data set is read from its manifest) and
    compare it with the checksums recorded at prepare: bit rot, or files replaced or edited since."""
    from mke_experiments.data import cache, specs

    result = cache.verify(specs.find_spec(cache_dir), cache_dir)
    click.echo(f"ok: {result['arrays']} arrays, {result['rows']} rows, {result['bytes'] / 1e9:.3g} GB checked in "
               f"{result['seconds']:.1f} s ({cache_dir})")


@cli.command()
@click.argument("task")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Prepared cache or data file of the task.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for run records and checkpoints (re-running resumes).")
@click.option("--name", default=None, metavar="NAME",
              help="What the records and the table call your data, e.g. breast-cancer (letters, digits, - and _) "
                   "[default: the task's name]; the records' config still names the task.")
@click.option("--seeds", default=None, callback=parse_seeds,
              help="Initialisation seeds, comma-separated (the split has its own); one seed alone: 3,  "
                   "[default: 0,1,2,3,4]")
@click.option("--n-seeds", type=click.IntRange(1), default=None, help="Shorthand: seeds 0, 1, ..., N−1.")
@click.option("--methods", default=",".join(DEFAULT_METHODS), callback=_methods,
              help=f"Comma-separated methods, of: {', '.join(METHOD_NAMES)}.")
@click.option("--epochs", type=click_type(TrainConfig, "epochs"), default=None, help="Override train.epochs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--set", "overrides", multiple=True, help="Config override KEY=VALUE, repeatable.")
@click.option("--config", "config_file", default=None, metavar="FILE|PRESET",
              help="A YAML config file, or a preset's name (mke-exp list); --set wins over it.")
@click.option("--force", is_flag=True, help="Retrain and overwrite finished records.")
@click.option("--tensorboard", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also log per-epoch loss, selection score and learning rate for TensorBoard here.")
@click.option("--log-every", type=click_type(TrainConfig, "log_every"), default=None, metavar="N",
              help="A line per member on stderr every N epochs: loss, selection score, lr, s/epoch (train.log_every).")
@user_errors
@threads_option(small=_small_task)
def run(task, data, out, seeds, n_seeds, methods, epochs, device, overrides, config_file, force, tensorboard,
        log_every, name):
    """Train every method × seed of TASK and print the table (records with --out)."""
    overrides = overrides + (f"train.log_every={log_every}",) if log_every is not None else overrides
    overrides = _with_config(task, config_file, overrides)
    from mke_experiments.config import resolve_config
    from mke_experiments.protocol import FallbackWarning, Plan, distributed_init, run_split, run_table
    from mke_experiments.train import distributed

    seeds = resolve_seeds(seeds, n_seeds, bare="note", default_n=5)
    spec = _task_with_data(task, data)
    if name is not None:  # ExperimentConfig.name, checked before the data are read
        from mke_experiments.config import check_name
        from mke_experiments.protocol.seeds import task_name

        overrides += (f"name={check_name(name)}",)
        task_name(resolve_config(spec, overrides, epochs))
    if distributed_init():
        click.echo(f"distributed: world size {distributed()[1]}", err=True)
    cfg, split = spec.load_split(resolve_config(spec, overrides, epochs), data, overrides)
    plan = Plan.of(cfg, split, methods, seeds)  # decided once: what the run will do, read below and by run_split
    rank = distributed()[0]
    if rank == 0:  # every fallback in one line on stderr, before the training it changes
        for method, why in plan.skipped.items():
            click.echo(f"WARNING: {method} is skipped: {why}.", err=True)
        if plan.val_missing:
            click.echo("WARNING: train.selection=val but the data have no validation set (val_alpha, val_beta, "
                       "val_labels): every model keeps its last epoch instead.", err=True)
    label = (f"{task}: {len(seeds)} seed{'s' * (len(seeds) > 1)} × {len(methods)} "
             f"method{'s' * (len(methods) > 1)}")
    with warnings.catch_warnings(), open(os.devnull, "w") as devnull, progress_bar(
            plan.total_steps, label, file=sys.stderr if rank == 0 else devnull) as update:
        warnings.simplefilter("ignore", FallbackWarning)  # said above, in one line each
        records = run_split(cfg, split, seeds, methods, out=out, device=device, force=force, progress=update,
                            tensorboard=tensorboard, plan=plan)
    if rank != 0:
        return
    if split.meta.get("leaky"):
        click.echo("WARNING: split=random puts clips of the same actor in train and test (leaky protocol).")
    table = run_table(records, cfg, plan)  # the table fit_mke's result prints too
    if table:
        click.echo(table)
    if out is not None:
        click.echo(f"records in {out}/ (finished runs are skipped when the command is run again)")


def _task_with_data(task: str, data):
    """The task, after the one-sentence errors for a missing or a superfluous ``--data``."""
    from mke_experiments.tasks import data_dir_or_error, get_task

    spec = get_task(task)
    if spec.needs_data and data is None:
        data_dir_or_error(data, task)  # one sentence, with the hint that fits the task
    if not spec.needs_data and data is not None:
        raise MKEError(f"task {task} brings its own data and would ignore --data {data}; drop --data "
                       "(your own arrays: mke-exp run arrays --data FILE.npz)")
    return spec


@cli.command()
@click.argument("task")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Prepared cache or data file of the task.")
@click.option("--seed", type=click.IntRange(0, SEED_LIMIT - 1), default=0, help="Initialisation seed of the teacher.")
@click.option("--epochs", type=click_type(TrainConfig, "epochs"), default=None, help="Override train.epochs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--set", "overrides", multiple=True, help="Config override KEY=VALUE, repeatable.")
@click.option("--config", "config_file", default=None, metavar="FILE|PRESET",
              help="A YAML config file, or a preset's name (mke-exp list); --set wins over it.")
@click.option("--max-samples", type=click.IntRange(10), default=2000,
              help="Check at most this many samples of D_u, drawn at random (seeded by --seed).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write the teacher's record and the check bundle (OUT/check/), as mke-exp run does.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@user_errors
@threads_option(small=_small_task)
def check(task, data, seed, epochs, device, overrides, config_file, max_samples, out, as_json):
    """Train only TASK's teacher for one seed and check whether MKE should help (mke_theory.diagnose).

    The check reads D_u as the students see it with the teacher's pseudo labels (the run's check bundle);
    an arrays bundle with its own teacher output trains nothing."""
    import json

    from mke_experiments.config import resolve_config
    from mke_experiments.protocol import FallbackWarning, Plan, run_seeds, vector_inputs
    from mke_experiments.train import resolve_device
    from mke_theory.diagnose import check_bundle, sample_note
    from mke_theory.results.check_report import format_check, json_safe

    spec = _task_with_data(task, data)
    overrides = _with_config(task, config_file, overrides)
    cfg, split = spec.load_split(resolve_config(spec, overrides, epochs), data, overrides)
    if not vector_inputs(split):
        kind = "images" if split.unlabeled_alpha.ndim == 4 else f"arrays of shape {split.unlabeled_alpha.shape[1:]}"
        raise MKEError(f"mke-exp check needs vector features (mfeat, arrays); {task}'s inputs are {kind}: "
                       "save a network's features of α and β per sample in an arrays bundle and run "
                       "mke-exp check arrays --data FILE.npz")
    plan = Plan.of(cfg, split, ("teacher",), (seed,))
    external = plan.external_teacher  # the bundle's own teacher output: nothing to train
    bar = contextlib.nullcontext() if external else progress_bar(
        plan.total_steps, f"{task}: the teacher, seed {seed}", file=sys.stderr)
    with warnings.catch_warnings(), bar as update:
        warnings.simplefilter("ignore", FallbackWarning)
        (result,) = run_seeds(cfg, split, [seed], methods=("teacher",), out=out, device=resolve_device(device),
                              progress=update, plan=plan)
    report = check_bundle(result.check, source=f"{task} (seed {seed})", max_samples=max_samples, random_state=seed)
    click.echo(sample_note(report, seed) + ("; the teacher's output from the bundle" if external else ""), err=True)
    click.echo(json.dumps(json_safe(report), indent=1, allow_nan=False) if as_json else format_check(report))
    if out is not None:
        click.echo(f"the teacher's record in {out}/, the check bundle in {out / 'check'}/", err=True)


def _sizes(ctx, param, value):
    """``--labeled``: distinct whole numbers >= 1, comma-separated, returned ascending."""
    parts = [v.strip() for v in str(value).split(",") if v.strip()]
    if not parts or not all(v.isascii() and v.isdigit() and int(v) >= 1 for v in parts) or len(set(parts)) < len(parts):
        raise click.BadParameter(f"distinct whole numbers of labeled samples, comma-separated, e.g. 20,60,200,600; "
                                 f"got {value!r}")
    return tuple(sorted(int(v) for v in parts))


@cli.command()
@click.argument("task")
@click.option("--labeled", "sizes", required=True, callback=_sizes, metavar="N,N,...",
              help="Sizes of D_l to train at, e.g. 20,60,200,600 (data.n_labeled of each run).")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Prepared cache or data file of the task.")
@click.option("--seeds", default="0,1,2", callback=parse_seeds,
              help="Initialisation seeds, comma-separated; the paired intervals need at least 2.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for run records and check bundles (re-running resumes: finished runs train nothing).")
@click.option("--figure", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the figure (.png or .pdf)  [default: OUT/sweep.png, else ./sweep.png]")
@click.option("--epochs", type=click_type(TrainConfig, "epochs"), default=None, help="Override train.epochs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--set", "overrides", multiple=True, help="Config override KEY=VALUE, repeatable.")
@click.option("--config", "config_file", default=None, metavar="FILE|PRESET",
              help="A YAML config file, or a preset's name (mke-exp list); --set wins over it.")
@user_errors
@threads_option(small=_small_task)
def sweep(task, sizes, data, seeds, out, figure, epochs, device, overrides, config_file):
    """MKE's gain against teacher strength: at each size of D_l (--labeled), train the teacher and the MM
    student over the seeds as mke-exp run does and run the check (mke-exp check) on each seed's teacher; print
    teacher, MM student, the gain with its paired 95 % interval and the check's predicted gain with its
    interval and verdict, and draw them against the number of labels.

    Tasks whose D_l can be subsampled (a data.n_labeled field): mfeat (its own stratified split) and arrays
    (a stratified subsample of the bundle's D_l, fixed seed; at least one sample per class, at most all of
    D_l)."""
    from mke_experiments.protocol import FallbackWarning
    from mke_experiments.protocol.sweep import SWEEP_METHODS, format_sweep, plan_sweep, run_sweep, sweep_task
    from mke_theory.results.sweep_plot import plot_sweep

    sweep_task(task)  # a task whose D_l cannot be subsampled: said before --data is asked for
    spec = _task_with_data(task, data)
    overrides = _with_config(task, config_file, overrides)
    seeds = resolve_seeds(seeds, None, bare="note", default_n=3)
    points = plan_sweep(spec.name, sizes, seeds, data=data, overrides=overrides, epochs=epochs)
    if points[0].plan.val_missing:
        click.echo("WARNING: train.selection=val but the data have no validation set (val_alpha, val_beta, "
                   "val_labels): every model keeps its last epoch, and the check has nothing to predict from.",
                   err=True)
    label = f"{task}: {len(sizes)} sizes × {len(seeds)} seed{'s' * (len(seeds) > 1)} × {', '.join(SWEEP_METHODS)}"
    with warnings.catch_warnings(), progress_bar(sum(p.plan.total_steps for p in points), label,
                                                 file=sys.stderr) as update:
        warnings.simplefilter("ignore", FallbackWarning)  # said above, in one line
        rows = run_sweep(points, out=out, device=device, progress=update)
    primary = spec.primary
    click.echo(format_sweep(rows, f"{task}: test {primary} (%) against the labeled samples of D_l, mean over "
                            f"seeds {','.join(map(str, seeds))}; gain = MM student − teacher, paired over seeds; "
                            f"the check: mke-exp check's prediction, averaged over the seeds' teachers"))
    figure = figure or (out if out is not None else Path(".")) / "sweep.png"
    plot_sweep(rows, figure, title=f"{task}: MKE against teacher strength")
    click.echo(f"figure written to {figure}", err=True)
    if out is not None:
        click.echo(f"records in {out}/, check bundles in {out / 'check'}/ (finished runs are skipped when the command "
                   "is run again)", err=True)


@cli.command()
@click.argument("task")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Prepared cache: also time data loading.")
@click.option("--batch-size", type=click.IntRange(1), default=32)
@click.option("--steps", type=click.IntRange(1), default=10, help="Timed training steps per variant.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--compile", "use_compile", is_flag=True, help="Also time torch.compile (slow to start).")
@click.option("--set", "overrides", multiple=True, help="Config override KEY=VALUE, repeatable.")
@click.option("--config", "config_file", default=None, metavar="FILE|PRESET",
              help="A YAML config file, or a preset's name (mke-exp list); --set wins over it.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the rows as JSON here.")
@user_errors
@threads_option(small=_small_task)
def bench(task, data, batch_size, steps, device, use_compile, overrides, config_file, json_out):
    """Training throughput of TASK's MM student: fp32 vs mixed precision (and more), side by side."""
    from mke_experiments.bench import bench as measure
    from mke_experiments.config import resolve_config
    from mke_experiments.tasks import get_task

    spec = get_task(task)
    overrides = _with_config(task, config_file, overrides)
    cfg = resolve_config(spec, overrides)
    load = (lambda: spec.load(cfg.data, data)) if data is not None or not spec.needs_data else None  # timed
    rows = measure(task, cfg, batch_size=batch_size, steps=steps, device=device, compile=use_compile, load=load)
    import torch

    where = torch.cuda.get_device_name() if device != "cpu" and torch.cuda.is_available() else "CPU"
    form = "Eq. (3), 2 forward passes" if cfg.mke.loss_form == "consistency" else "CE on f(T(x))"
    click.echo(f"{task}: MM student training step ({form}, γ={cfg.mke.gamma:g}, the task's T), "
               f"batch {batch_size}, {where}")
    for r in rows:
        ratio = "" if r["ratio"] != r["ratio"] else f"  ×{r['ratio']:.2f} vs fp32"
        waiting = f"  waiting for data {r['waiting_fraction']:.0%}" if "waiting_fraction" in r else ""
        peak = "" if r["peak_gpu_bytes"] is None else f"  peak GPU {r['peak_gpu_bytes'] / 2**30:.2f} GiB"
        click.echo(f"  {r['variant']:<40} {r['samples_per_s']:>10.1f} samples/s{ratio}{waiting}{peak}")
    if json_out is not None:
        import json

        from mke_theory.results.check_report import json_safe

        meta = dict(task=task, device=where, batch_size=batch_size, steps=steps, workers=cfg.train.workers,
                    loss_form=cfg.mke.loss_form, gamma=cfg.mke.gamma)
        json_out.write_text(json.dumps(dict(meta, rows=json_safe(rows)), indent=1) + "\n")
        click.echo(f"written to {json_out}", err=True)


def _default_metric(frame, runs, trained_by: dict | None = None) -> str:
    """The metric a table of ``frame`` shows without ``--metric``: each task's primary (``test_<primary>``)
    where the task is registered and its records hold it, else test_accuracy, else the first one found;
    tasks that disagree are an error asking for ``--metric`` or ``--task``. ``trained_by``: the task that
    trained the records of a name (``mke-exp run TASK --name NAME``: NAME → TASK)."""
    from mke_experiments.tasks import TASKS

    chosen = {}
    for name, rows in frame.groupby("task", sort=True):
        metrics = list(dict.fromkeys(rows["metric"]))
        kind = (trained_by or {}).get(name, name)
        primary = f"test_{TASKS[kind].primary}" if kind in TASKS else None
        chosen[name] = (primary if primary in metrics else
                        "test_accuracy" if "test_accuracy" in metrics else metrics[0])
    if len(set(chosen.values())) > 1:
        listed = ", ".join(f"{t}: {m}" for t, m in chosen.items())
        raise MKEError(f"the tasks in {runs} have different primary metrics ({listed}); "
                       "pass --metric NAME or --task NAME")
    return next(iter(chosen.values()))


def _baseline(value: str):
    method, _, variant = value.partition(":")
    return (method, variant) if variant else method


@cli.command()
@click.argument("runs", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--metric", default=None, help="Metric to tabulate (default: the task's primary, test_<primary>).")
@click.option("--task", default=None, help="Only this task (default: every task in the folder).")
@click.option("--baseline", default="teacher", help="Method (or METHOD:VARIANT) the others are tested against.")
@click.option("--test", type=click.Choice(["t", "wilcoxon"]), default="t", help="Paired test over shared seeds.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              help="Significance level after Holm correction.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv"]), default="markdown",
              help="csv: one row per (task, method, variant) with the numbers unrounded, as fractions.")
@click.option("--bootstrap", is_flag=True,
              help="Also list percentile-bootstrap intervals per cell (seeded; warns below 10 runs, where they "
                   "cover far less than 95 %; csv: as columns).")
@user_errors
def report(runs, metric, task, baseline, test, alpha, fmt, bootstrap):
    """Print the table of a folder of run records: mean ± std, 95 % CI, and vs a baseline the paired
    difference with its 95 % t interval, d_z and the Holm-corrected p of a paired test. An external
    teacher is one fixed value (n = 1, a Wilson interval over its test samples), tested against by a
    one-sample test of each method's seeds. --format csv writes the same numbers machine-readable."""
    from mke_theory.core.records import read_records
    from mke_theory.results.stats import check_one_config, compare_methods, records_frame, summarize
    from mke_theory.results.tables import format_bootstrap, format_table, table_frame

    records = read_records(runs)
    frame = records_frame(records)
    if frame.empty:
        raise MKEError(f"{runs} holds no run records (*.json)")
    if task is not None:
        if task not in set(frame["task"]):
            raise MKEError(f"no records of task {task!r} in {runs}; tasks: {', '.join(sorted(set(frame.task)))}")
        frame = frame[frame["task"] == task]
    check_one_config([r for r in records if task is None or r["task"] == task], where=f"the records in {runs}")
    metric = metric or _default_metric(frame, runs, {r["task"]: r["config"].get("task", r["task"]) for r in records})
    if metric not in set(frame["metric"]):
        raise MKEError(f"no records in {runs} hold metric {metric!r}; metrics: "
                       f"{', '.join(sorted(set(frame['metric'])))}; pass one of them as --metric")
    summary = summarize(frame, metric, bootstrap=bootstrap, random_state=0)
    base = _baseline(baseline)
    has_base = (frame["method"] == (base if isinstance(base, str) else base[0])).any()
    comparisons = compare_methods(frame, metric, baseline=base, test=test, alpha=alpha) if has_base else None
    if fmt == "csv":  # the same frames as the tables, as numbers; what a caption says is in the columns
        click.echo(table_frame(summary, comparisons, metric=metric).to_csv(index=False), nl=False)
        if bootstrap:
            click.echo(format_bootstrap(summary), err=True)  # the intervals' label and warning; columns above
    else:
        caption = f"{metric} (%), mean ± std over seeds, records in {runs}"
        click.echo(format_table(summary, comparisons, fmt=fmt, caption=caption))
        if bootstrap:
            click.echo("\n" + format_bootstrap(summary))
    if comparisons is None:
        click.echo(f"(no significance tests: baseline {baseline!r} has no records here)", err=True)


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True, path_type=Path))
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="npz with alpha (n, d_α) and, for multimodal methods, beta (n, d_β): raw, as in the bundle.")
@click.option("--method", default="mm_student", show_default=True, help="Whose predictions (a method of the run).")
@click.option("--seed", type=click.IntRange(0), default=None, help="Which seed's model (default: the only or lowest).")
@click.option("--config-hash", default=None,
              help="Which run's models, where RUN holds several (its config hash, or the start of it).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=Path("predictions.npz"),
              help="Where to write pred (n,) in the bundle's label values and probs (n, K).")
@user_errors
def predict(run_dir, data, method, seed, config_hash, out_file):
    """Predict with a model of a finished run (RUN: its --out folder, or one model file of it), on raw arrays."""
    import numpy as np

    from mke_experiments.protocol.predictor import Predictor, choose_model
    from mke_theory.core.bundle import load_npz
    from mke_theory.core.records import atomic_write

    chosen = choose_model(run_dir, method, seed, config_hash)
    model = Predictor.load(chosen)
    method = model.info.get("method", method)
    arrays = load_npz(data, what=".npz file for --data")
    if "alpha" not in arrays or (model.modalities == 2 and "beta" not in arrays):
        raise MKEError(f"{data} needs the key(s) alpha{' and beta' if model.modalities == 2 else ''} "
                       f"(the raw features {method} takes)")
    probs = model.predict_proba(arrays["alpha"], arrays.get("beta"))
    pred = model.labels(probs)
    atomic_write(out_file, lambda f: np.savez(f, pred=pred, probs=probs))
    click.echo(f"{len(pred)} predictions of {method} (seed {model.info.get('seed', '?')}, {chosen.name}) "
               f"written to {out_file}", err=True)


def _levels(ctx, param, value):
    try:
        levels = sorted({0.0, *(float(v) for v in value.split(",") if v.strip())})
    except ValueError:
        raise click.BadParameter(f"comma-separated numbers, e.g. 0,0.5,1; got {value!r}") from None
    if len(levels) < 2 or any(not (0 <= s < float("inf")) for s in levels):
        raise click.BadParameter(f"at least one finite level above 0 (0, the clean input, is always added); "
                                 f"got {value!r}")
    return tuple(levels)


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Tasks run with --data (arrays): the run's bundle, or an npz with its raw test_alpha, test_beta "
                   "and test_labels. mfeat rebuilds its test set from the records.")
@click.option("--levels", default="0,0.25,0.5,1,2", callback=_levels,
              help="Noise levels σ: Gaussian noise of σ × each feature's training std (0 is always included).")
@click.option("--baseline", default="teacher", help="Method whose curve effective robustness is measured against.")
@click.option("--noise-seed", type=click.IntRange(0), default=0, help="Seed of the one noise draw all models share.")
@click.option("--task", default=None, help="Only this task (a folder with models of several tasks needs it).")
@click.option("--figure", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the figure (.png or .pdf)  [default: RUN_DIR/robustness.png]")
@user_errors
@threads_option(small=True)
def robustness(run_dir, data, levels, baseline, noise_seed, task, figure):
    """Robustness at test time: every saved model of RUN_DIR with β (then α) removed or noised; prints
    MultiBench's relative and effective robustness per method and draws accuracy against the noise level."""
    from mke_experiments.protocol.robustness import evaluate
    from mke_theory.results.robustness import format_robustness, plot_robustness, summarize_robustness

    result = evaluate(run_dir, data=data, levels=levels, noise_seed=noise_seed, task=task)
    frame = result.frame
    if baseline not in set(frame["method"]):
        click.echo(f"(no effective robustness: baseline {baseline!r} has no model in {run_dir})", err=True)
    summary = summarize_robustness(frame, baseline=baseline)
    name = frame["task"].iloc[0]
    caption = (f"{name}: test accuracy (%), mean ± std over seeds, models in {run_dir}; noise σ × the feature's "
               f"training std (one draw, seed {noise_seed}); removed: the training mean put in; features zeroed: "
               "as modality dropout")
    click.echo(format_robustness(summary, caption=caption, baseline=baseline))
    for note in result.notes:
        click.echo(f"NOTE: {note}", err=True)
    figure = figure or run_dir / "robustness.png"
    plot_robustness(frame, figure, title=f"{name}: robustness at test time")
    click.echo(f"figure written to {figure}", err=True)


if __name__ == "__main__":
    cli()
