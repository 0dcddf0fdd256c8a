"""The public entry points of the protocol: ``fit_mke`` (your own arrays, and your own teacher or student
networks; returns an ``MKEResult``), ``run_split`` (every method × seed on one split, the code path of
``mke-exp run``) and ``run`` (``mke-exp run`` from Python). Each builds the run's ``Plan`` once (or takes the
CLI's), says its fallbacks once, and hands the plan to ``run_seeds``, a group of seeds at a time (all
stacked in one fit, or one by one: ``Plan.groups``). ``run_table`` is the table ``mke-exp run`` prints.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mke_experiments.config import ExperimentConfig, resolve_config
from mke_experiments.protocol.plan import EXPERIMENT_METHODS, METHODS, Plan, warn_fallbacks
from mke_experiments.protocol.seeds import SeedResult, run_seeds, task_name
from mke_experiments.train import predict_logits
from mke_experiments.train.loader import as_inputs
from mke_experiments.train.runtime import distributed, resolve_device
from mke_theory.core.errors import MKEError
from mke_theory.core.methods import get_method
from mke_theory.core.split import MultimodalSplit


def fit_mke(split: MultimodalSplit | dict, config: ExperimentConfig | None = None, seed: int | None = None,
            device: str = "auto", methods=("teacher", "mm_student"), teacher=None, student=None, *,
            seeds=None, threads=None) -> MKEResult:
    """MKE on your own arrays: pseudo-label D_u with a teacher, train the students on them.

    Parameters
    ----------
    split : a dict of arrays with the keys of the ``arrays`` task's bundle (``mke_theory.core.bundle.KEYS``), which
        is checked, label-encoded and standardised here; or a ``MultimodalSplit`` used as it is.
    config : defaults to the ``arrays`` task's preset.
    seed : one initialisation seed (default 0).
    seeds : several seeds, e.g. ``[0, 1, 2]``, trained as ``mke-exp run --seeds 0,1,2`` trains them (stacked
        in one fit where the networks allow it: ``Plan.groups``); each seed's records equal those of a
        call with that seed alone. Give ``seed`` or ``seeds``, not both.
    methods : which methods to train.
    teacher : your own trained teacher, a ``torch.nn.Module`` taking α (any shape: vectors, images) and
        returning logits over the classes (in the order of the sorted label values). It pseudo-labels
        D_u in evaluation mode on α as you give it (before the library standardises anything) and gives
        the teacher's row from the test set; no teacher is trained. None: a teacher is trained on D_l
        (unless the bundle carries a teacher's output, ``pseudo_labels`` or ``teacher_probs``).
    student : your own MM student network: a callable with no arguments that returns a fresh
        ``nn.Module`` taking (α, β) (a class works); None: the task's. It is built after seeding torch.
    threads : torch threads to compute with, as ``--threads`` of the CLI (``mke_theory.console.choose_threads``):
        None takes ``$MKE_THREADS``, else the task's default (``Task.small``: 1 for the small networks of
        ``arrays`` and ``mfeat``, where more threads only wait on each other; every core for the image and
        audio tasks). The count holds for this call only: torch's previous count is set again when it
        returns (or fails), so your process is left as it was.

    Returns
    -------
    MKEResult: ``seeds`` (one ``SeedResult`` per seed, in the order given), ``records`` (every record, seed by
    seed), ``table()`` (the table ``mke-exp run`` prints for them: mean ± std, CI, and with several seeds the
    paired tests against the teacher). The rest is the first seed's, as ``fit_mke`` returned it for one seed:
    ``predictors["mm_student"]``, the student with the run's preprocessing (``predict(alpha, beta)`` on raw
    arrays gives labels in your own label values, ``predict_proba`` the class probabilities, ``save(path)`` /
    ``Predictor.load(path)`` keep it); ``models``, the bare networks (they expect standardised inputs);
    ``pseudo_labels``; ``check``.

    Example
    -------
    >>> from mke_theory.generators import gaussian_mixture
    >>> result = fit_mke(gaussian_mixture(random_state=0), device="cpu", seeds=[0, 1, 2])  # doctest: +SKIP
    >>> print(result.table())                                                             # doctest: +SKIP
    >>> result.seeds[2].predictors["mm_student"]                                          # doctest: +SKIP
    """
    from mke_experiments.tasks import get_task
    from mke_experiments.tasks.arrays import split_from_arrays, standardize
    from mke_theory.console import torch_threads

    seeds = _seed_list(seed, seeds)
    cfg = config or get_task("arrays").default_config
    _check_methods(cfg, methods)
    with torch_threads(threads, small=get_task(cfg.task).small):  # a bad count fails before torch is touched
        if teacher is not None:
            split = _with_teacher_output(split, teacher)
        if isinstance(split, dict):  # the arrays of an npz bundle, by the bundle's key names
            split = standardize(split_from_arrays(split, source="the arrays"))
        dev = resolve_device(device)
        plan = Plan.of(cfg, split, methods, seeds, student)
        warn_fallbacks(plan)
        results = [result for group in plan.groups  # as run_split: stacked, or seed by seed
                   for result in run_seeds(cfg, split, group, methods, device=dev, student=student, plan=plan)]
    return MKEResult(results, plan, cfg)


def _seed_list(seed, seeds) -> tuple[int, ...]:
    """``fit_mke``'s seeds: ``seed`` alone (default 0) or the list ``seeds``; distinct whole numbers >= 0."""
    if seed is not None and seeds is not None:
        raise MKEError("give fit_mke seed= (one seed) or seeds= (a list of seeds), not both")
    whole = lambda s: isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0  # noqa: E731
    if seeds is None:
        seed = 0 if seed is None else seed
        if not whole(seed):
            raise MKEError(f"seed must be a whole number >= 0, got {seed!r}")
        return (int(seed),)
    given = tuple(seeds) if hasattr(seeds, "__iter__") and not isinstance(seeds, (str, bytes)) else None
    if not given or not all(whole(s) for s in given) or len(set(given)) != len(given):
        raise MKEError(f"seeds must be a list of distinct whole numbers >= 0, e.g. [0, 1, 2], got {seeds!r}")
    return tuple(int(s) for s in given)


@dataclass(frozen=True, repr=False)
class MKEResult:
    """What ``fit_mke`` returns: one ``SeedResult`` per seed (``seeds``), the run's ``Plan`` and its config.

    It reads like the first seed's ``SeedResult`` (what ``fit_mke`` returned for one seed): ``models``,
    ``predictors``, ``pseudo_labels`` and ``check`` are the first seed's; ``records`` is every seed's, in
    seed order (for one seed: that seed's). ``table()`` is the table ``mke-exp run`` prints for these records.
    """

    seeds: list[SeedResult]
    plan: Plan
    config: ExperimentConfig

    @property
    def records(self) -> list[dict]:
        return [record for result in self.seeds for record in result.records]

    @property
    def models(self) -> dict:
        return self.seeds[0].models

    @property
    def predictors(self) -> dict:
        return self.seeds[0].predictors

    @property
    def pseudo_labels(self) -> np.ndarray:
        return self.seeds[0].pseudo_labels

    @property
    def check(self) -> dict | None:
        return self.seeds[0].check

    def table(self) -> str:
        """The table ``mke-exp run`` prints for these records (``run_table``)."""
        return run_table(self.records, self.config, self.plan)

    def __repr__(self) -> str:
        return (f"MKEResult(task={task_name(self.config)!r}, seeds={list(self.plan.seeds)}, "
                f"methods={list(self.plan.methods)}, records={len(self.records)})")


def run_table(records: list[dict], cfg: ExperimentConfig, plan: Plan) -> str:
    """The table ``mke-exp run`` prints after training ``plan`` with ``cfg``: per method, mean ± std of the
    task's primary test metric over the seeds with its CI; with several seeds, a teacher among several
    methods and a teacher row, the paired tests against the teacher. The caption names the run (``task_name``:
    ``--name`` or the task), the seeds, the model selection the runs got and an external teacher. "" when
    there are no records."""
    from mke_experiments.tasks import get_task
    from mke_theory.results.stats import compare_methods, records_frame, summarize
    from mke_theory.results.tables import format_table

    frame = records_frame(records)
    if frame.empty:
        return ""
    primary = get_task(cfg.task).primary
    metric, tests = f"test_{primary}", None
    if (len(plan.seeds) > 1 and "teacher" in plan.methods and len(plan.methods) > 1
            and (frame["method"] == "teacher").any()):
        tests = compare_methods(frame, metric, baseline="teacher")  # not without a teacher row
    teacher = "; teacher: external (its predictions from the bundle)" if plan.external_teacher else ""
    return format_table(summarize(frame, metric), tests, caption=f"{task_name(cfg)}: test {primary} (%), "
                        f"{len(plan.seeds)} seeds, model selection: {plan.selection}{teacher}")


def _check_methods(cfg: ExperimentConfig, methods) -> None:
    """The methods ``run_split`` and ``fit_mke`` refuse before training: unknown ones, and the ones that keep
    confident pseudo labels when the pseudo labels are soft."""
    unknown = [m for m in methods if m not in EXPERIMENT_METHODS]
    if unknown:
        raise MKEError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(EXPERIMENT_METHODS)}")
    if cfg.mke.pseudo_labels == "soft" and any(get_method(m).select is not None for m in methods):
        raise MKEError("the methods that keep only confident pseudo labels need hard ones: "
                       "drop mke.pseudo_labels=soft or those methods")


@torch.no_grad()
def _with_teacher_output(split: MultimodalSplit | dict, teacher) -> MultimodalSplit | dict:
    """The split with a trained teacher's output (softmax of its logits, evaluation mode) on α of D_u, of the
    test set and of the validation set, as the bundle keys ``teacher_probs`` / ``teacher_test_probs`` /
    ``teacher_val_probs`` carry it."""
    get = split.get if isinstance(split, dict) else lambda key: getattr(split, key)
    device = next(teacher.parameters()).device
    teacher.eval()

    def probs(alpha) -> np.ndarray:
        return torch.softmax(predict_logits(teacher, (as_inputs(alpha),), device, batch_size=256), dim=1).numpy()

    output = dict(teacher_probs=probs(get("unlabeled_alpha")), teacher_test_probs=probs(get("test_alpha")))
    if get("val_alpha") is not None:  # for the check bundle (mke-theory check scores the teacher on it)
        output["teacher_val_probs"] = probs(get("val_alpha"))
    if isinstance(split, dict):
        drop = ("pseudo_labels", "teacher_test_pred", "teacher_val_pred")
        return {**{k: v for k, v in split.items() if k not in drop}, **output}
    if output["teacher_probs"].shape[1] != split.n_classes:
        raise MKEError(f"the teacher returns {output['teacher_probs'].shape[1]} class scores, the split has "
                       f"{split.n_classes} classes")
    return replace(split, meta=dict(split.meta, teacher_output=output))


def run_split(cfg: ExperimentConfig, split: MultimodalSplit, seeds, methods=METHODS, out=None, device="auto",
              force: bool = False, progress=None, tensorboard=None, plan: Plan | None = None) -> list[dict]:
    """Every method × seed on one split; returns the records of this call (written to ``out``).

    ``plan``: the run's ``Plan`` of these methods and seeds (``mke-exp run`` builds it first, for its
    progress bar and warnings); None: built here."""
    _check_methods(cfg, methods)
    plan = Plan.of(cfg, split, methods, seeds) if plan is None else plan
    if tuple(methods) != plan.methods or tuple(seeds) != plan.seeds:
        raise MKEError("internal: run_split was given the plan of other methods or seeds")
    warn_fallbacks(plan)
    if plan.external_teacher and distributed()[0] == 0:
        print("teacher: external predictions from the bundle (pseudo labels on D_u"
              + (", test scores from its test predictions)" if "teacher" in methods and "teacher" not in
                 plan.skipped else ")") + "; no teacher is trained", file=sys.stderr)
    dev = resolve_device(device)
    out = None if out is None else Path(out)
    records = []
    for group in plan.groups:
        results = run_seeds(cfg, split, group, methods, out=out, device=dev, force=force, progress=progress,
                            tensorboard=tensorboard, plan=plan)
        records += [record for result in results for record in result.records]
    return records


def run(task_name: str, data_dir=None, out=None, seeds=(0, 1, 2, 3, 4), methods=METHODS, epochs=None,
        device: str = "auto", overrides=(), force: bool = False, progress=None) -> list[dict]:
    """``mke-exp run`` from Python: every method × seed of a task; returns the records."""
    from mke_experiments.tasks import get_task

    task = get_task(task_name)
    cfg = resolve_config(task, overrides, epochs)
    cfg, split = task.load_split(cfg, data_dir, overrides)
    return run_split(cfg, split, seeds, methods, out, device, force, progress)
