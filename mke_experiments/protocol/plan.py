"""The plan of a run, decided once before anything trains: ``Plan``.

Of (config, split, methods, seeds): the methods that cannot run on the split and why (``skipped_methods``),
the methods that train (the teacher unless the split carries its output, ``external_teacher``), whether the
seeds of a method train stacked in one fit (``seeds_together``: small vector networks in one process) or
seed by seed, the model selection the runs really get (``selection_used``), the optimisation steps of the
whole run (``total_steps``, a progress bar's length) and the fallback warnings (``FallbackWarning``) the run
emits. ``mke-exp run`` and ``mke-exp check`` build one and hand it to ``run_split`` / ``run_seeds``, which
read it instead of deciding again; the Python entry points build their own when given none.

The methods are the rows of ``mke_theory.core.methods``: ``EXPERIMENT_METHODS`` every one the pipeline can
train, ``METHODS`` those ``mke-exp run`` trains unless told otherwise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from mke_experiments.config import ExperimentConfig
from mke_experiments.models import stackable
from mke_experiments.train.runtime import distributed
from mke_theory.core.methods import get_method, methods_of
from mke_theory.core.split import MultimodalSplit

EXPERIMENT_METHODS = methods_of("experiments")  # every method the pipeline can train
METHODS = methods_of("experiments", default_only=True)  # what mke-exp run trains unless told otherwise


def external_teacher(split: MultimodalSplit) -> dict | None:
    """The teacher's output the split carries (``pseudo_labels`` or ``teacher_probs`` on D_u, optionally
    ``teacher_test_pred`` or ``teacher_test_probs``), or None when the pipeline trains its own teacher."""
    return split.meta.get("teacher_output")


class FallbackWarning(UserWarning):
    """The run does something other than asked, and says what (e.g. the last epoch for want of a validation set)."""


class SkippedMethodWarning(FallbackWarning):
    """A requested method that cannot run on this split (e.g. the supervised bound without D_u's labels)."""


def skipped_methods(split: MultimodalSplit, methods) -> dict:
    """method -> why it is not trained on ``split``, for the requested ``methods`` that cannot run."""
    why = {}
    teacher = external_teacher(split)
    for m in methods:
        row = get_method(m)
        if row.targets == "true" and split.unlabeled_labels is None:
            why[m] = "the split has no unlabeled_labels (the true labels of D_u) to train it on"
        elif teacher is not None and row.is_teacher and not {"teacher_test_pred", "teacher_test_probs"} & set(teacher):
            why[m] = ("the teacher's output comes from the bundle and it has no teacher_test_pred or "
                      "teacher_test_probs: no teacher row")
        elif row.targets == "labels+pseudo" and split.n_labeled == 0:
            why[m] = "it trains on D_l with its labels, and the bundle has no labeled_alpha / labels"
        elif teacher is not None and row.select is not None and "teacher_probs" not in teacher:
            why[m] = ("it keeps pseudo labels by the teacher's confidence: the bundle needs teacher_probs, "
                      "not pseudo_labels")
    return why


def selection_used(cfg: ExperimentConfig, split: MultimodalSplit) -> str:
    """The model selection the runs really get, in words: ``train.selection=val`` without a validation set
    keeps the last epoch (the records' histories then hold no selection score)."""
    if cfg.train.selection == "val" and split.val_alpha is None:
        return "last (no validation set)"
    if cfg.train.selection == "agreement":
        return "agreement (the teacher: last epoch)"
    return cfg.train.selection


def seeds_together(cfg: ExperimentConfig, split: MultimodalSplit, student=None) -> bool:
    """Whether ``run_split`` trains all seeds of a method in one fit: one process, and the task's networks
    for this split are stackable (small vector networks). The probe builds them on the meta device,
    which allocates and initialises nothing (weights a build would load are not kept: meta tensors).
    ``student``: a user's MM student network (``fit_mke``), probed in place of the task's."""
    from mke_experiments.tasks import get_task

    if distributed()[1] > 1:
        return False
    task = get_task(cfg.task)
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # loading a weights file into meta tensors is a no-op, and says so
        nets = task.build_teacher(split, cfg.model), (
            task.build_student(split, cfg.model, True) if student is None else student())
    return all(stackable(net) for net in nets)


def _trained(split: MultimodalSplit, methods, skipped) -> tuple[str, ...]:
    """The methods that really train: the teacher, always (the students need it) unless the split carries its
    output, and every requested method that is not skipped; each once."""
    external = external_teacher(split) is not None
    rest = [m for m in dict.fromkeys(methods) if m not in skipped and m != "teacher"]
    return tuple(rest if external else ["teacher", *rest])


def _steps(split: MultimodalSplit, cfg: ExperimentConfig, trained, n_seeds: int) -> int:
    per = {"labels": split.n_labeled, "labels+pseudo": split.n_labeled + split.n_unlabeled}
    batches = lambda n: cfg.train.epochs * -(-n // cfg.train.batch_size)  # noqa: E731
    return n_seeds * sum(batches(per.get(get_method(m).targets, split.n_unlabeled)) for m in trained)


def total_steps(split: MultimodalSplit, cfg: ExperimentConfig, methods, n_seeds: int) -> int:
    """Optimisation steps of ``run_split`` (a progress bar's length); ``Plan.total_steps`` of a run."""
    return _steps(split, cfg, _trained(split, methods, skipped_methods(split, methods)), n_seeds)


@dataclass(frozen=True)
class Plan:
    """What a run of ``methods`` × ``seeds`` on one split will do, decided once (``Plan.of``).

    ``skipped``: requested method -> why it cannot run on this split (``skipped_methods``); ``trained``: the
    methods that train (the teacher first unless it is external, then the requested ones not skipped);
    ``external_teacher``: the split carries the teacher's output, no teacher trains; ``stacked``: the seeds
    of a method train in one fit, stacked (``seeds_together``; never for a single seed); ``groups``: the
    seeds ``run_split`` hands to ``run_seeds`` at a time (all at once when stacked, else one by one, so that
    only one seed's models and pseudo labels are held); ``selection``: the model selection in words
    (``selection_used``); ``val_missing``: ``train.selection=val`` without a validation set (every model keeps
    its last epoch); ``total_steps``: optimisation steps of the whole run (the progress bar's length);
    ``fallbacks``: (warning class, message) of each thing the run does other than asked (``warn_fallbacks``).
    """

    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    skipped: dict
    trained: tuple[str, ...]
    external_teacher: bool
    stacked: bool
    groups: tuple[tuple[int, ...], ...]
    selection: str
    val_missing: bool
    total_steps: int
    fallbacks: tuple[tuple[type, str], ...]

    @classmethod
    def of(cls, cfg: ExperimentConfig, split: MultimodalSplit, methods, seeds, student=None) -> Plan:
        """The plan of ``methods`` × ``seeds`` on ``split`` (``student``: a user's MM student network)."""
        methods, seeds = tuple(methods), tuple(seeds)
        skipped = skipped_methods(split, methods)
        trained = _trained(split, methods, skipped)
        stacked = len(seeds) > 1 and seeds_together(cfg, split, student)
        val_missing = cfg.train.selection == "val" and split.val_alpha is None
        fallbacks = tuple((SkippedMethodWarning, f"{method} is skipped: {why}") for method, why in skipped.items())
        if val_missing:
            fallbacks += ((FallbackWarning, "train.selection=val but the split has no validation set: every model "
                                            "keeps its last epoch"),)
        return cls(methods, seeds, skipped, trained, external_teacher(split) is not None, stacked,
                   (seeds,) if stacked else tuple((seed,) for seed in seeds), selection_used(cfg, split),
                   val_missing, _steps(split, cfg, trained, len(seeds)), fallbacks)


def warn_fallbacks(plan: Plan) -> None:
    """One ``FallbackWarning`` per thing the run will do other than asked (the CLI prints them as lines)."""
    for category, message in plan.fallbacks:
        warnings.warn(message, category, stacklevel=3)
