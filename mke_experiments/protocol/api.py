"""The public entry points of the protocol: ``fit_mke`` (your own arrays, and your own teacher or student
networks), ``run_split`` (every method × seed on one split, the code path of ``mke-exp run``) and ``run``
(``mke-exp run`` from Python). Each builds the run's ``Plan`` once (or takes the CLI's), says its fallbacks
once, and hands the plan to ``run_seeds``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mke_experiments.config import ExperimentConfig, resolve_config
from mke_experiments.protocol.plan import EXPERIMENT_METHODS, METHODS, Plan, warn_fallbacks
from mke_experiments.protocol.seeds import SeedResult, run_seeds
from mke_experiments.train import predict_logits
from mke_experiments.train.loader import as_inputs
from mke_experiments.train.runtime import distributed, resolve_device
from mke_theory.core.errors import MKEError
from mke_theory.core.methods import get_method
from mke_theory.core.split import MultimodalSplit


def fit_mke(split: MultimodalSplit | dict, config: ExperimentConfig | None = None, seed: int = 0, device: str = "auto",
            methods=("teacher", "mm_student"), teacher=None, student=None) -> SeedResult:
    """MKE on your own arrays: pseudo-label D_u with a teacher, train the students on them.

    Parameters
    ----------
    split : a dict of arrays with the keys of the ``arrays`` task's bundle (``mke_theory.core.bundle.KEYS``), which
        is checked, label-encoded and standardised here; or a ``MultimodalSplit`` used as it is.
    config : defaults to the ``arrays`` task's preset.
    methods : which methods to train.
    teacher : your own trained teacher, a ``torch.nn.Module`` taking α (any shape: vectors, images) and
        returning logits over the classes (in the order of the sorted label values). It pseudo-labels
        D_u in evaluation mode on α as you give it (before the library standardises anything) and gives
        the teacher's row from the test set; no teacher is trained. None: a teacher is trained on D_l
        (unless the bundle carries a teacher's output, ``pseudo_labels`` or ``teacher_probs``).
    student : your own MM student network: a callable with no arguments that returns a fresh
        ``nn.Module`` taking (α, β) (a class works); None: the task's. It is built after seeding torch.

    Returns
    -------
    SeedResult with ``predictors["mm_student"]``, the student with the run's preprocessing:
    ``predict(alpha, beta)`` on raw arrays gives labels in your own label values, ``predict_proba``
    the class probabilities, ``save(path)`` / ``Predictor.load(path)`` keep it. ``models`` holds the bare
    networks (they expect standardised inputs), plus the pseudo labels and one record per method.

    Example
    -------
    >>> from mke_theory.generators import gaussian_mixture
    >>> result = fit_mke(gaussian_mixture(random_state=0), device="cpu")      # doctest: +SKIP
    >>> result.records[-1]["metrics"]["test_accuracy"]                        # doctest: +SKIP
    """
    from mke_experiments.tasks import get_task
    from mke_experiments.tasks.arrays import split_from_arrays, standardize

    if teacher is not None:
        split = _with_teacher_output(split, teacher)
    if isinstance(split, dict):  # the arrays of an npz bundle, by the bundle's key names
        split = standardize(split_from_arrays(split, source="the arrays"))
    cfg = config or get_task("arrays").default_config
    dev = resolve_device(device)
    plan = Plan.of(cfg, split, methods, (seed,), student)
    warn_fallbacks(plan)
    return run_seeds(cfg, split, [seed], methods=methods, device=dev, student=student, plan=plan)[0]


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
    unknown = [m for m in methods if m not in EXPERIMENT_METHODS]
    if unknown:
        raise MKEError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(EXPERIMENT_METHODS)}")
    if cfg.mke.pseudo_labels == "soft" and any(get_method(m).select is not None for m in methods):
        raise MKEError("the methods that keep only confident pseudo labels need hard ones: "
                       "drop mke.pseudo_labels=soft or those methods")
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
