"""``mke-theory``: the TwoMoon experiment and teacher-noise simulations from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from mke_theory.console import parse_seeds, progress_bar, resolve_seeds, threads_option  # noqa: F401 (re-exported)
from mke_theory.core.errors import MKEError, user_errors
from mke_theory.core.methods import LOSS_FORMS, REGULARIZERS
from mke_theory.core.records import RecordError, make_record, record_path, write_record
from mke_theory.generators import GENERATORS
from mke_theory.noise import NOISE_MODELS


class RateList(click.ParamType):
    """A comma-separated list of rates in [0, 1], e.g. ``0.1,0.2,0.3``."""

    name = "RATES"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            rates = tuple(float(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers, e.g. 0.1,0.2,0.3", param, ctx)
        if not rates:
            self.fail("give at least one rate, e.g. 0.3", param, ctx)
        bad = [r for r in rates if not 0.0 <= r <= 1.0]
        if bad:
            self.fail(f"every rate must lie in [0, 1]; got {bad[0]:g}", param, ctx)
        return rates


def write_records(rows: list[dict], out: Path | None, force: bool) -> int:
    """Write the run records to ``out``; without ``force`` a record that exists is kept, not overwritten.

    Returns the number written. Kept records are counted on stderr, so a second run into the same
    folder adds only the missing ones (as ``mke-exp run`` does) instead of refusing.
    """
    if out is None:
        return 0
    if out.exists() and not out.is_dir():
        raise RecordError(f"--out {out} is a file, not a folder; pass a folder for the run records")
    by_path = {}  # a repeated seed (--rng notebook: the notebook draws 94 twice) is one run: one record
    for row in rows:
        record = make_record(**row)
        by_path.setdefault(record_path(record, out), record)
    records = list(by_path.values())
    todo = records if force else [r for r in records if not record_path(r, out).exists()]
    for record in todo:
        write_record(record, out, force=force)
    kept = len(records) - len(todo)
    note = f"; kept {kept} existing record(s) (pass --force to overwrite them)" if kept else ""
    if len(rows) > len(records):
        note += f"; {len(rows) - len(records)} repeated run(s) of the same seed stored once"
    click.echo(f"wrote {len(todo)} run records to {out}/{note}", err=True)
    return len(todo)


@click.group(context_settings=dict(help_option_names=["-h", "--help"], show_default=True))
@click.version_option(package_name="mke")
def cli():
    """Multimodal Knowledge Expansion: theory, toy experiments and simulations."""


@cli.command()
@click.option("--seeds", default=None, callback=parse_seeds,
              help="Student seeds, comma-separated, e.g. 81,14,3 (one alone: 81,).  [default: the first 10 of "
                   "the notebook's seed stream]")
@click.option("--n-seeds", type=click.IntRange(1), default=None,
              help="Shorthand: the first N seeds of the notebook's seed stream (81, 14, 3, 94, ...).")
@click.option("--ablation/--no-ablation", default=False,
              help="Also run the regulariser ablation (none / input / feature / dropout / all).")
@click.option("--regularizer", type=click.Choice(REGULARIZERS), default="input_noise",
              help="Perturbation of the main students (official: input noise a=1).")
@click.option("--loss-form", type=click.Choice(LOSS_FORMS), default="perturbed_ce",
              help="perturbed_ce: CE on f(T(x)) as the official code; consistency: CE + γ·L_reg (Eq. 3).")
@click.option("--gamma", type=click.FloatRange(0), default=1.0, help="γ of the consistency form.")
@click.option("--rng", type=click.Choice(["library", "notebook"]), default="library",
              help="notebook: the official notebook's random streams and its 10 seeds (94 twice), so every "
                   "per-run number is the notebook's; also prints the per-run table.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the run records (one JSON per method and seed).")
@click.option("--force", is_flag=True, help="Overwrite finished records in --out.")
@click.option("--figure", type=click.Path(dir_okay=False, path_type=Path), default=Path("twomoon.png"),
              help="Where to write the six-panel figure (PNG or PDF).")
@click.option("--no-figure", is_flag=True, help="Skip the figure.")
@user_errors
@threads_option(small=True)  # MLPs: one thread unless --threads / $MKE_THREADS say otherwise
def twomoon(seeds, n_seeds, ablation, regularizer, loss_form, gamma, rng, out, force, figure, no_figure):
    """The paper's TwoMoon experiment: teacher, UM student, MM student and the supervised bound."""
    from mke_theory.results.reference import NOTEBOOK_ABLATION, NOTEBOOK_LABEL, NOTEBOOK_REFERENCE
    from mke_theory.results.stats import records_frame, summarize
    from mke_theory.results.tables import format_table
    from mke_theory.toy.twomoon import ABLATION_TASK, TASK, TwoMoonConfig, run_twomoon, total_steps

    # --n-seeds N (or neither: 10): the first N of the notebook's seed stream, TwoMoonConfig(n_runs=N)
    seeds = None if seeds is None else tuple(resolve_seeds(seeds, n_seeds, bare="error", default_n=10))
    n_runs = 10 if n_seeds is None else n_seeds
    cfg = TwoMoonConfig(n_runs=n_runs, seeds=seeds, ablation=ablation, regularizer=regularizer, loss_form=loss_form,
                        gamma=gamma, rng=rng)
    with progress_bar(total_steps(cfg), "training teacher and students") as update:
        result = run_twomoon(cfg, progress=update)
    if rng == "notebook":
        from mke_theory.results.tables import format_runs

        click.echo(format_runs(result.runs, TASK, "test_accuracy", caption="TwoMoon per run (rng=notebook: the "
                               "notebook's seeds and random streams)") + "\n")
    summary = summarize(records_frame(result.runs), "test_accuracy")
    reference = NOTEBOOK_REFERENCE if regularizer == "input_noise" and loss_form == "perturbed_ce" else None
    click.echo(format_table(summary[summary.task == TASK], fmt="plain", reference=reference,
                            reference_label=NOTEBOOK_LABEL,
                            caption=f"TwoMoon, {len(cfg.student_seeds)} runs (30 labeled / 270 unlabeled / 200 test); "
                            f"pseudo-label accuracy on D_u {100 * result.pseudo_label_accuracy:.1f} %"))
    if ablation:
        ab = summary[summary.task == ABLATION_TASK]
        ref = {(method, reg): f"{um} / {mm}" for reg, (um, mm) in NOTEBOOK_ABLATION.items()
               for method in ("um_student", "mm_student")}  # each row shows both students' numbers
        click.echo("\n" + format_table(ab, fmt="plain", reference=ref if loss_form == "perturbed_ce" else None,
                                       reference_label=NOTEBOOK_LABEL,
                                       caption="Regulariser ablation (UM / MM students); reference column: UM / MM"))
    write_records(result.runs, out, force)
    if not no_figure:
        from mke_theory.results.plots import plot_twomoon

        plot_twomoon(result, figure)
        click.echo(f"figure written to {figure}", err=True)


@cli.command()
@click.option("--noise", type=RateList(), default="0.3", help="Pseudo-label error rate(s) η, comma-separated.")
@click.option("--noise-model", type=click.Choice(list(NOISE_MODELS)), default="symmetric",
              help="How the pseudo-labeller errs; structured = where α is least informative.")
@click.option("--generator", type=click.Choice(list(GENERATORS)), default="gaussian",
              help="Synthetic multimodal data set.")
@click.option("--seeds", default=None, callback=parse_seeds,
              help="Student seeds per η and method, comma-separated; simulate trains seeds 0, 1, ..., N−1, so "
                   "the list must be such a run, e.g. 0,1,2.  [default: 0,1,2,3,4]")
@click.option("--n-seeds", type=click.IntRange(1), default=None, help="Shorthand: seeds 0, 1, ..., N−1.")
@click.option("--data-seed", type=click.IntRange(0), default=0,
              help="random_state of the generator and the pseudo-labeller.")
@click.option("--steps", type=click.IntRange(1), default=2000, help="Full-batch SGD steps per student.")
@click.option("--regularizer", type=click.Choice(REGULARIZERS[1:]), default="input_noise",
              help="Perturbation of the regularised students.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the run records.")
@click.option("--force", is_flag=True, help="Overwrite finished records in --out.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw error vs η for pseudo labels, UM and MM students with the bounds (PNG or PDF).")
@user_errors
@threads_option(small=True)
def simulate(noise, noise_model, generator, seeds, n_seeds, data_seed, steps, regularizer, out, force, plot):
    """Students trained on pseudo labels of error η: test error, labels corrected and corrupted."""
    from mke_theory.results.tables import format_sweep
    from mke_theory.toy.simulate import SimulateConfig, total_steps
    from mke_theory.toy.simulate import simulate as run

    chosen = resolve_seeds(seeds, n_seeds, bare="error", default_n=5)
    if sorted(chosen) != list(range(len(chosen))):
        raise MKEError(f"simulate trains seeds 0, 1, ..., N−1; --seeds {','.join(map(str, chosen))} is not such a "
                       "list; give --n-seeds N (or --seeds 0,1,...,N−1)")
    n_seeds = len(chosen)
    cfg = SimulateConfig(generator=generator, noise=noise, noise_model=noise_model, n_seeds=n_seeds,
                         data_seed=data_seed, steps=steps, regularizer=regularizer)
    with progress_bar(total_steps(cfg), f"training students for η = {','.join(f'{e:g}' for e in noise)}") as update:
        rows = run(cfg, progress=update)
    click.echo(format_sweep(rows, f"{generator} data, {noise_model} pseudo-label noise, {n_seeds} seeds per cell "
                                  "(corrected / corrupted: pseudo labels on D_u the student turned right / wrong, "
                                  "mean count)"))
    if plot is not None:
        from mke_theory.results.plots import plot_noise_sweep

        plot_noise_sweep(rows, plot)
        click.echo(f"figure written to {plot}", err=True)
    write_records(rows, out, force)


@cli.command()
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A check bundle (mke-exp run writes one per seed under OUT/check/) or any bundle of the one "
                   "format: unlabeled_alpha, unlabeled_beta, pseudo_labels or teacher_probs, val_alpha, val_beta, "
                   "val_labels, teacher_val_probs.")
@click.option("--generator", type=click.Choice(list(GENERATORS)), default=None,
              help="Check a built-in generator's D_u instead (its test set serves as the labeled validation data).")
@click.option("--noise", type=click.FloatRange(0, 1), default=0.2, help="With --generator: pseudo-label error η.")
@click.option("--noise-model", type=click.Choice(list(NOISE_MODELS)), default="symmetric",
              help="With --generator: how the pseudo-labeller errs.")
@click.option("--data-seed", type=click.IntRange(0), default=0, help="With --generator: its random_state.")
@click.option("--input-noise", type=click.FloatRange(0), default=None,
              help="The scale a of the student's perturbation T(x) = x + a·mean|x|·ε, which sets the ball "
                   "(default: the bundle's input_noise, else 0.5, mke-exp's default).")
@click.option("--max-samples", type=click.IntRange(2), default=5000, show_default=True,
              help="Use at most this many samples of D_u, drawn at random (said on stderr).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON object: verdict, predicted_gain {estimate, low, high}, um, mm, ...")
@user_errors
def check(data, generator, noise, noise_model, data_seed, input_noise, max_samples, as_json):
    """Before training: will the extra modality β help? A label-free prediction, and Thm 4.3 in both spaces."""
    import json

    import numpy as np

    from mke_theory.diagnose import check_bundle, sample_note
    from mke_theory.results.check_report import format_check, json_safe

    if (data is None) == (generator is None):
        raise MKEError("give exactly one of --data FILE.npz or --generator NAME")
    if data is not None:
        from mke_theory.core.bundle import load_npz

        arrays, source = load_npz(data, what=".npz file for --data"), str(data)
    else:
        from mke_theory.generators import make_split
        from mke_theory.noise import make_pseudo_labels

        split = make_split(generator, random_state=data_seed)
        noisy = lambda y, x, i: make_pseudo_labels(noise_model, y, noise, alpha=x, n_classes=split.n_classes,  # noqa: E731
                                                   random_state=np.random.default_rng([data_seed, i]))
        arrays = dict(unlabeled_alpha=split.unlabeled_alpha, unlabeled_beta=split.unlabeled_beta,
                      pseudo_labels=noisy(split.unlabeled_labels, split.unlabeled_alpha, 1),
                      val_alpha=split.test_alpha, val_beta=split.test_beta, val_labels=split.test_labels,
                      teacher_val_pred=noisy(split.test_labels, split.test_alpha, 2))
        source = f"generator {generator}"
    options = dict(max_samples=max_samples)
    if input_noise is not None:
        options["input_noise"] = input_noise
    import scipy.linalg  # noqa: F401 (loaded first: threadpool_limits reaches only the thread pools already loaded)
    from threadpoolctl import threadpool_limits

    # one BLAS / OpenMP thread: the check's matrices are small (kNN distances, eigh of class graphs of a few hundred
    # samples), and pools of threads spinning against each other took 3 to 5 times the CPU of one thread on two
    # cores (benchmarks/bench_check_speed.py); the printed numbers are the same
    with threadpool_limits(limits=1):
        report = check_bundle(arrays, source=source, **options)
    if report["n_used"] < report["n_samples"]:
        click.echo(f"note: {sample_note(report, 0)} (--max-samples)", err=True)
    click.echo(json.dumps(json_safe(report), indent=1, allow_nan=False) if as_json else format_check(report))


if __name__ == "__main__":
    cli()
