"""The MKE protocol for one split: teacher → pseudo labels → students → run records, seed by seed or stacked.

The methods and what each trains on are the rows of ``mke_theory.core.methods`` (teacher, UM student,
NOISY student, MM student with and without regularisation, the MKE student on confident pseudo
labels only, and the supervised upper bound); ``SeedRun`` turns a row into a training run.

Your own teacher: a split whose ``meta["teacher_output"]`` holds a teacher's output on D_u (the ``arrays``
bundle's ``pseudo_labels`` or ``teacher_probs``) trains no teacher; every seed's students learn from those
labels, and the teacher's record, when the bundle has its test predictions, is scored from them
(``config["teacher"] == "external"``).

Methods outer, seeds inner: ``run_seeds`` trains the teacher of every seed, pseudo-labels D_u with
each seed's own teacher, then each student method for all its unfinished seeds in one ``fit``
(``train_method``: one member per seed). Small vector networks train those members stacked in one
loop; the record of a seed is the same whether it trains alone or with others (tested). Large networks
go seed by seed (``run_split``), so that only one seed's models and pseudo labels are held at a time.
Which of the two a run does is its ``Plan``'s ``stacked`` (``mke_experiments.protocol.plan``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mke_experiments import metrics
from mke_experiments.config import ExperimentConfig, record_dict
from mke_experiments.data.rows import concat, is_lazy
from mke_experiments.metrics import PROPORTIONS
from mke_experiments.protocol.check import check_arrays, dense_labels, vector_inputs
from mke_experiments.protocol.files import RunFiles
from mke_experiments.protocol.plan import METHODS, Plan, external_teacher
from mke_experiments.protocol.predictor import Predictor
from mke_experiments.train import IGNORE, Member, Selection, fit, predict, predict_logits
from mke_experiments.train.loader import as_inputs
from mke_experiments.train.runtime import distributed, hardware
from mke_theory.core.errors import MKEError
from mke_theory.core.methods import Method, get_method
from mke_theory.core.records import config_hash, make_record
from mke_theory.core.split import MultimodalSplit
from mke_theory.objective import pseudo_labels as make_pseudo_labels


def run_config(cfg: ExperimentConfig, split: MultimodalSplit) -> dict:
    """What a record's ``config`` holds (and its hash covers): the resolved config, the split's id, the
    class values behind 0 … K−1 when the data had others (``classes``), and for an external teacher
    ``teacher: "external"`` with a hash of its output (other pseudo labels: other records)."""
    config = dict(record_dict(cfg), split_id=split.split_id)
    if "classes" in split.meta:
        config["classes"] = list(split.meta["classes"])
    teacher = external_teacher(split)
    if teacher is not None:
        h = hashlib.sha256()
        for key in sorted(teacher):
            a = np.ascontiguousarray(teacher[key])
            h.update(f"{key}:{a.dtype.str}{a.shape};".encode() + a.tobytes())
        config.update(teacher="external", teacher_output_id=h.hexdigest()[:12])
    return config


def task_name(cfg: ExperimentConfig) -> str:
    """What a run's records, tables and files call it: ``cfg.name`` (``mke-exp run TASK --name NAME``), or the
    task's name when it has none; the record's config keeps ``task``, the task that trained it. The name of
    another registered task is refused: its records would mix with that task's."""
    from mke_experiments.tasks import TASKS

    if not cfg.name or cfg.name == cfg.task:
        return cfg.task
    if cfg.name in TASKS:
        raise MKEError(f"--name {cfg.name} is the name of another task; choose a name of your own for the records "
                       f"of {cfg.task}")
    return cfg.name


@dataclass
class SeedResult:
    records: list
    models: dict  # method -> trained model (evaluation mode), on the run's standardised inputs
    pseudo_labels: np.ndarray
    predictors: dict = field(default_factory=dict)  # method -> Predictor: the model with its preprocessing
    check: dict | None = None  # the seed's check bundle (``check_arrays``), for tasks with vector inputs

@dataclass
class PseudoLabels:
    """Eq. (2) on D_u: what the students learn from."""

    predicted: np.ndarray  # (M, ...) the teacher's classes on all of D_u
    targets: torch.Tensor  # (M', ...) hard or soft pseudo labels of the training part of D_u
    train_idx: np.ndarray  # (M',) the part of D_u students train on (all but a held-out tenth with agreement)
    held_out: np.ndarray | None  # (M,) bool, the tenth of D_u kept for label-free selection, or None
    confidence: np.ndarray | None  # (M', ...) the teacher's top-class probability, when a method selects by it
    metrics: dict  # pseudo_label_accuracy where D_u's true labels are known
    probs: np.ndarray | None = None  # (M, K) the teacher's class probabilities on all of D_u (classification)


class SeedRun:
    """The MKE protocol for one initialisation seed, as steps: ``train_teacher`` → ``pseudo_label`` →
    ``train_student`` per method row → ``finish`` (record). Holds the split as tensors, the task's
    hooks and the run's files; every step reads the method table for what a method trains on.
    ``train_method`` trains one method for several seeds at once from their ``build``, ``data`` and
    ``selection``."""

    def __init__(self, cfg: ExperimentConfig, split: MultimodalSplit, seed: int, files: RunFiles, device,
                 progress=None, stop_after: int | None = None, student=None):
        from mke_experiments.tasks import get_task

        self.cfg, self.split, self.seed, self.files, self.device = cfg, split, seed, files, device
        self.student = student  # a user's MM student network: student() -> nn.Module, or None (the task's)
        self.task = get_task(cfg.task)
        self.name = task_name(cfg)  # what the records and files say: the task's name, or the run's --name
        self.progress, self.stop_after = progress, stop_after
        self.world = distributed()[1]
        self.config = run_config(cfg, split)
        self.t = {name: as_inputs(getattr(split, name)) for name in
                  ("labeled_alpha", "unlabeled_alpha", "unlabeled_beta", "test_alpha", "test_beta")}
        self.val = (as_inputs(split.val_alpha), as_inputs(split.val_beta)) if split.val_alpha is not None else None
        self.val_labels = torch.as_tensor(split.val_labels) if split.val_alpha is not None else None
        self.primary_score = functools.partial(metrics.selection_score, primary=self.task.primary,
                                               n_classes=split.n_classes)
        self.perturb = self.task.perturb(cfg)
        self.augment = self.task.augment(cfg) if self.task.augment is not None else None

    # ---- evaluation and model selection --------------------------------------------------------------
    def metrics_of(self, model, inputs: tuple, labels) -> dict:
        workers = self.cfg.train.workers
        if self.task.scores:  # top-k and average precision need every class score (classification only)
            scores = predict_logits(model, inputs, self.device, workers=workers).numpy()
            return self.task.evaluate(scores, labels, self.split.n_classes)
        return self.task.evaluate(predict(model, inputs, self.device, workers=workers).numpy(), labels,
                                  self.split.n_classes)

    def selection(self, method: Method, pl: PseudoLabels | None) -> tuple[Selection | None, object]:
        """(what selects the epoch, this seed's labels for it), higher is better: the primary metric on
        validation data, or (label-free) the agreement with this seed's teacher on a held-out tenth of
        D_u; (None, None) keeps the last epoch. Never test data. Scored in torch from predicted classes."""
        modalities = 2 if method.multimodal else 1
        if self.cfg.train.selection == "val" and self.val is not None:
            inputs = self.val[:modalities]
            return (Selection(inputs, self.primary_score, metrics.needs_scores(self.task.primary),
                              name=f"val_{self.task.primary}"), self.val_labels)
        if self.cfg.train.selection == "agreement" and pl is not None and pl.held_out is not None:
            held = pl.held_out
            inputs = (self.t["unlabeled_alpha"][held], self.t["unlabeled_beta"][held])[:modalities]
            return Selection(inputs, metrics.agreement, name="agreement"), torch.as_tensor(pl.predicted[held])
        return None, None  # the teacher cannot be selected by agreement with itself

    def interrupted(self, fitted) -> bool:
        return (self.stop_after is not None and len(fitted.history) < self.cfg.train.epochs
                and fitted.stopped_epoch is None)  # stopped early: done

    # ---- the steps -----------------------------------------------------------------------------------
    def build(self, method: Method):
        """The network of ``method``, initialised after seeding the global generator with this seed."""
        torch.manual_seed(self.seed)
        if method.multimodal and self.student is not None:
            return self.student()
        if method.multimodal:
            return self.task.build_student(self.split, self.cfg.model, method.regularised)
        return self.task.build_teacher(self.split, self.cfg.model)  # UM students share the teacher's network

    def data(self, method: Method, pl: PseudoLabels | None) -> tuple[tuple, torch.Tensor, dict]:
        """(inputs, targets, extra metrics) of ``method``: the teacher's are α of D_l with its labels,
        Eq. (1) (multi-label rows normalised to distributions); a student's are ``student_data``."""
        if method.is_teacher:
            return (self.t["labeled_alpha"],), _label_targets(self.split), {}
        return self.student_data(method, pl)

    def train_teacher(self):
        """Eq. (1) for this seed alone: (teacher, FitResult)."""
        ((teacher, fitted, _),) = train_method([self], get_method("teacher"), [None])
        return teacher, fitted

    def teacher_output(self, teacher, reuse: bool = False) -> dict:
        """The teacher's output on D_u in evaluation mode, from one pass over D_u batch by batch: ``pseudo_labels``
        (M, ...) its classes, and ``teacher_logits`` (M, K) for classification or ``confidence`` (M, H, W) float16,
        the top-class probability, for dense prediction. Saved once per seed as the run's artifact
        (``RunFiles.save_teacher_output``); with ``reuse`` (the teacher's record was already written) it is
        read back instead of computed again."""
        saved = self.files.teacher_output() if reuse else None
        if saved is not None:
            return saved
        u, workers = (self.t["unlabeled_alpha"],), self.cfg.train.workers
        if dense_labels(self.split):
            predicted, confidence = predict(teacher, u, self.device, confidence=True, workers=workers)
            output = dict(pseudo_labels=predicted.numpy(), confidence=confidence.numpy())
        else:
            logits = predict_logits(teacher, u, self.device, workers=workers)
            output = dict(pseudo_labels=logits.argmax(1).numpy(), teacher_logits=logits.numpy())
        self.files.save_teacher_output(output)
        return output

    def pseudo_label(self, teacher, need_confidence: bool = False, reuse: bool = False) -> PseudoLabels:
        """Eq. (2) on D_u from the teacher's output (``teacher_output``); hard or soft by ``mke.pseudo_labels``."""
        cfg = self.cfg
        output = self.teacher_output(teacher, reuse)
        predicted, logits = output["pseudo_labels"], output.get("teacher_logits")
        probs = None if logits is None else torch.softmax(torch.from_numpy(logits), dim=1)
        confidence = None
        if need_confidence:
            confidence = output.get("confidence") if probs is None else probs.amax(dim=1).half().numpy()
        if cfg.mke.pseudo_labels == "soft":  # dense: every logit of D_u in memory, (M, K, H, W)
            scores = torch.from_numpy(logits) if logits is not None else predict_logits(
                teacher, (self.t["unlabeled_alpha"],), self.device, workers=cfg.train.workers)
            targets = make_pseudo_labels(scores, "soft", cfg.mke.temperature, class_dim=1)
        else:
            targets = torch.as_tensor(predicted.astype(np.int64))
        return self._pseudo_labels(predicted, targets, confidence, None if probs is None else probs.numpy())

    def _pseudo_labels(self, predicted: np.ndarray, targets: torch.Tensor, confidence, probs) -> PseudoLabels:
        """``PseudoLabels`` of the teacher's classes on D_u: the held-out tenth for label-free selection (by the
        split, the same for every teacher), the students' part, and the accuracy where D_u's labels are known."""
        split = self.split
        held_out = None
        if self.cfg.train.selection == "agreement":
            held_out = np.zeros(split.n_unlabeled, bool)
            held_out[np.random.default_rng(0).permutation(split.n_unlabeled)[: max(1, split.n_unlabeled // 10)]] = True
        train_idx = np.flatnonzero(~held_out) if held_out is not None else np.arange(split.n_unlabeled)
        metrics = {}
        if split.unlabeled_labels is not None:
            known = split.unlabeled_labels != IGNORE
            metrics["pseudo_label_accuracy"] = float((predicted == split.unlabeled_labels)[known].mean())
        return PseudoLabels(predicted, targets[train_idx], train_idx, held_out,
                            None if confidence is None else np.asarray(confidence)[train_idx], metrics, probs)

    def external_pseudo_label(self) -> PseudoLabels:
        """Eq. (2) read off the bundle: the external teacher's ``pseudo_labels``, or ``teacher_probs`` (their
        argmax; with ``mke.pseudo_labels=soft`` the probabilities themselves, as given: no temperature).
        The same for every seed; the confidence is the top probability (``teacher_probs`` only)."""
        teacher = external_teacher(self.split)
        probs = teacher.get("teacher_probs")
        predicted = teacher["pseudo_labels"] if probs is None else probs.argmax(axis=1)
        if self.cfg.mke.pseudo_labels == "soft" and probs is not None:
            targets = torch.as_tensor(probs, dtype=torch.float32)
        else:
            targets = torch.as_tensor(predicted.astype(np.int64))
        return self._pseudo_labels(predicted, targets, None if probs is None else probs.max(axis=1), probs)

    def check(self, teacher, pl: PseudoLabels) -> dict | None:
        """This seed's check bundle (``check_arrays``), written to the run's files; None for inputs that are
        not vectors (images, audio: no bundle). The teacher's probabilities on D_u are those ``pl`` carries (no
        second pass over D_u); ``teacher``: the trained teacher, whose softmax on α of the validation set gives
        its probabilities there; None: the bundle's own teacher output."""
        if not vector_inputs(self.split):
            return None
        noise = self.cfg.mke.input_noise
        if teacher is None:
            given = external_teacher(self.split)
            arrays = check_arrays(self.split, pl.predicted, given.get("teacher_probs"), given.get("teacher_val_probs"),
                                  given.get("teacher_val_pred"), input_noise=noise)
        else:
            val_probs = None if self.val is None else torch.softmax(
                predict_logits(teacher, (self.val[0],), self.device), dim=1).numpy()
            arrays = check_arrays(self.split, pl.predicted, pl.probs, val_probs, input_noise=noise)
        self.files.save_check(arrays)
        return arrays

    def external_teacher_record(self) -> dict | None:
        """The teacher's row from the bundle's ``teacher_test_probs`` / ``teacher_test_pred`` (the task's own
        metrics), or None when the bundle has no test predictions."""
        teacher, split = external_teacher(self.split), self.split
        probs, pred = teacher.get("teacher_test_probs"), teacher.get("teacher_test_pred")
        if probs is None and pred is None:
            return None
        if probs is None:
            probs = np.eye(split.n_classes, dtype=np.float32)[pred]
        scores = np.log(np.clip(probs, 1e-12, None)) if self.task.scores else probs.argmax(axis=1)
        metrics = {f"test_{k}": v for k, v in self.task.evaluate(scores, split.test_labels, split.n_classes).items()}
        record = make_record(self.name, "teacher", self.seed, metrics, self.config, 0.0,
                             hardware="external (predictions from the bundle)", split_id=split.split_id)
        record["best_epoch"] = None
        # one fixed value for every seed: tables give it a Wilson interval over these test samples
        # (mke_theory.results.stats.summarize), for the metrics that are a share of them
        record["n_test"] = int(len(split.test_labels))
        record["proportion_metrics"] = [f"test_{k}" for k in PROPORTIONS if f"test_{k}" in metrics]
        self.files.write(record, keep_checkpoint=False)
        return record

    def student_data(self, method: Method, pl: PseudoLabels) -> tuple[tuple, torch.Tensor, dict]:
        """(inputs, targets, extra metrics) of a student, read off its row of the method table."""
        t, idx = self.t, pl.train_idx
        inputs = (t["unlabeled_alpha"][idx], t["unlabeled_beta"][idx])[: 2 if method.multimodal else 1]
        extra = dict(pl.metrics)
        if method.targets == "true":
            return inputs, torch.as_tensor(self.split.unlabeled_labels)[idx], {}
        targets = pl.targets
        if method.select is not None:
            keep = torch.as_tensor(method.select(pl.confidence, self.cfg.mke.confidence_threshold))
            targets = targets.masked_fill(~keep, IGNORE)  # L_pl skips them; L_reg still sees every sample
            extra["pseudo_labels_kept"] = float(keep.float().mean())
        if method.targets == "labels+pseudo":  # NOISY student: D_l with labels ∪ D_u with pseudo labels
            labeled, targets = _joined_targets(self.split, targets)
            joined = concat if is_lazy(inputs[0]) else lambda a, b: torch.cat([a, b])
            inputs = (joined(t["labeled_alpha"], inputs[0]),)
            return inputs, torch.cat([labeled, targets.to(labeled.dtype)]), extra
        return inputs, targets, extra

    def train_student(self, method: Method, pl: PseudoLabels):
        """One student method for this seed alone: (model, FitResult, extra metrics)."""
        return train_method([self], method, [pl])[0]

    def finish(self, method: Method, model, fitted, extra: dict) -> dict:
        """Test (and validation) metrics of the selected model → the run record, written to the run's files."""
        split, primary = self.split, self.task.primary
        modalities = 2 if method.multimodal else 1
        inputs = (self.t["test_alpha"], self.t["test_beta"])[:modalities]
        metrics = {f"test_{name}": v for name, v in self.metrics_of(model, inputs, split.test_labels).items()}
        metrics.update(extra)
        if self.val is not None:
            metrics[f"val_{primary}"] = self.metrics_of(model, self.val[:modalities], split.val_labels)[primary]
        record = make_record(self.name, method.name, self.seed, metrics, self.config, fitted.wall_time_s,
                             history=fitted.history, hardware=hardware(self.device), world_size=self.world,
                             split_id=split.split_id, ensemble_size=fitted.members)
        record["best_epoch"] = fitted.best_epoch
        if self.task.examples:
            n = min(self.task.examples, len(split.test_labels))
            pred = predict(model, tuple(x[:n] for x in inputs), self.device).numpy()
            self.files.save_examples(method.name, pred, split, n)
        self.files.write(record, keep_checkpoint=method.is_teacher)  # the teacher's is kept for its pseudo labels
        if vector_inputs(self.split):  # vector inputs: small networks, saved with the run (Predictor takes vectors)
            self.files.save_model(method.name, self.predictor(method, model))
        return record

    def predictor(self, method: Method, model) -> Predictor:
        """``model`` with the preprocessing the run fitted: standardisation statistics and label values."""
        return Predictor(model, 2 if method.multimodal else 1, self.split.meta.get("standardization"),
                         self.split.meta.get("classes"),
                         dict(task=self.cfg.task, method=method.name, seed=self.seed,
                              config_hash=self.files.config_hash))


def _label_targets(split: MultimodalSplit) -> torch.Tensor:
    """The labels of D_l as training targets; multi-label rows become distributions (softmax CE)."""
    y = torch.as_tensor(split.labels)
    if y.is_floating_point():
        y = y / y.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return y


def _joined_targets(split: MultimodalSplit, pseudo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D_l's labels and D_u's pseudo labels in one form: soft on either side makes both soft."""
    y_l = _label_targets(split)
    if y_l.is_floating_point():  # multi-label D_l: rows normalised to distributions
        return y_l, pseudo if pseudo.is_floating_point() else F.one_hot(pseudo.long(), split.n_classes).float()
    if pseudo.is_floating_point():  # soft pseudo labels: the labeled part as one-hot
        return F.one_hot(y_l.long().clamp(min=0), split.n_classes).movedim(-1, 1).float(), pseudo
    return y_l.long(), pseudo


def train_method(runs: list[SeedRun], method: Method, pls: list, stacked: bool = False) -> list[tuple]:
    """(model, FitResult, extra metrics) of ``method`` for each seed of ``runs``, in one ``fit``: one member
    per seed, with its own network (``build``), its own targets (its teacher's pseudo labels), selection
    labels and files; the inputs are the same for every seed (one split, one held-out tenth). ``stacked``
    (the run's ``Plan.stacked``: stackable networks in one process): the seeds train stacked in one ``fit``;
    else one ``fit`` per seed (the same for a single seed)."""
    members, extras, shared = [], [], None
    for run, pl in zip(runs, pls):
        inputs, targets, extra = run.data(method, pl)
        selection, select_on = run.selection(method, pl)
        if shared is None:
            shared = inputs, selection
        elif pl is not None and not np.array_equal(pl.train_idx, pls[0].train_idx):
            raise MKEError("internal: the seeds of one fit must train on the same part of D_u")
        run.files.start_fresh(method.name)
        checkpoint = run.files.checkpoint(method.name) if run.cfg.train.checkpoint else None
        members.append(Member(run.build(method), targets, run.seed, checkpoint, run.files.identity(method.name),
                              run.files.log_dir(method.name), select_on, scalars=extra))
        extras.append(extra)
    (inputs, selection), first = shared, runs[0]
    train = functools.partial(fit, inputs=inputs, cfg=first.cfg.train, mke=first.cfg.mke,
                              regularised=method.regularised, device=first.device, selection=selection,
                              progress=first.progress, stop_after=first.stop_after, augment=first.augment,
                              perturb=first.perturb, resume=not first.files.force)
    fitted = train(members) if stacked else [train([m])[0] for m in members]
    return [(m.model, f, extra) for m, f, extra in zip(members, fitted, extras)]


def _one_run_at_a_time(run_seeds):
    """``run_seeds`` holding the lock of each of its seeds in ``out`` (``RunFiles.lock``; rank 0, in seed order, so
    that two runs over overlapping seeds cannot wait for each other): a second run of the same task, seed and
    config into the same folder waits, saying for whom, and then resumes what the first finished, training
    nothing twice. It waits rather than stops because running the same command twice (or job arrays whose seeds
    overlap) always ended with every record written once, and still does; runs of other seeds or configs into
    one folder go on side by side. Under torchrun the other ranks meet rank 0 at its first collective step."""

    @functools.wraps(run_seeds)
    def locked(cfg: ExperimentConfig, split: MultimodalSplit, seeds, methods=METHODS, out: Path | None = None,
               *args, **kwargs) -> list[SeedResult]:
        if out is None or distributed()[0] != 0:
            return run_seeds(cfg, split, seeds, methods, out, *args, **kwargs)
        name, identity = task_name(cfg), config_hash(run_config(cfg, split))
        with contextlib.ExitStack() as locks:
            for seed in sorted(set(seeds)):
                locks.enter_context(RunFiles(Path(out), name, seed, identity, split.split_id).lock())
            return run_seeds(cfg, split, seeds, methods, out, *args, **kwargs)

    return locked


@_one_run_at_a_time
def run_seeds(cfg: ExperimentConfig, split: MultimodalSplit, seeds, methods=METHODS, out: Path | None = None,
              device=torch.device("cpu"), force: bool = False, progress=None, stop_after: int | None = None,
              tensorboard: Path | None = None, student=None, plan: Plan | None = None) -> list[SeedResult]:
    """Train every requested method for these initialisation seeds, methods outer; write records to ``out``.

    The task (``cfg.task``) supplies the networks, the metrics, the augmentation and the
    perturbation T. A method whose record exists in ``out`` is skipped (resume) unless ``force``;
    an interrupted method continues from its checkpoints. Returns one ``SeedResult`` per seed.
    ``plan``: the run's ``Plan`` of these methods (and of these seeds, or more: ``run_split``'s groups);
    None: the plan of these methods and seeds.
    """
    rank = distributed()[0]
    config = run_config(cfg, split)
    out = None if out is None else Path(out)
    if out is not None and rank == 0:
        if (out / "checkpoints").exists() and not (out / "checkpoints").is_dir():
            raise MKEError(f"{out / 'checkpoints'} is a file, but --out needs a folder of that name for "
                           "checkpoints: move the file or choose another --out")
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    name = task_name(cfg)
    runs = [SeedRun(cfg, split, seed, RunFiles(out, name, seed, config_hash(config), split.split_id, force=force,
                                                rank=rank, tensorboard=tensorboard), device, progress, stop_after,
                    student)
            for seed in seeds]
    results = [SeedResult([], {}, np.empty(0)) for _ in runs]
    rows = [get_method(m) for m in methods]
    teacher = get_method("teacher")

    plan = Plan.of(cfg, split, methods, seeds, student) if plan is None else plan
    if tuple(methods) != plan.methods or not set(seeds) <= set(plan.seeds):
        raise MKEError("internal: run_seeds was given the plan of other methods or seeds")
    skip = plan.skipped
    pls = []
    if plan.external_teacher:  # your own teacher: its pseudo labels from the bundle, no training
        pl = runs[0].external_pseudo_label()
        for run, result in zip(runs, results):
            if "teacher" in methods and "teacher" not in skip:
                result.records.append(run.external_teacher_record())
            pls.append(pl)
            result.pseudo_labels = pl.predicted
            result.check = run.check(None, pl)
        trained = []
    else:
        # always trained (or resumed): students need it
        trained = train_method(runs, teacher, [None] * len(runs), plan.stacked)
    if any(run.interrupted(fitted) for run, (_, fitted, _) in zip(runs, trained)):
        return results  # interrupted (tests)
    for run, result, (model, fitted, _) in zip(runs, results, trained):
        finished = run.files.finished("teacher")
        result.records.append(finished or run.finish(teacher, model, fitted, {}))
        result.models["teacher"] = model
        result.predictors["teacher"] = run.predictor(teacher, model)
        pls.append(run.pseudo_label(model, need_confidence=any(m.select is not None for m in rows),
                                    reuse=finished is not None))  # a finished teacher's output is on disk
        result.pseudo_labels = pls[-1].predicted
        result.check = run.check(model, pls[-1])  # also on resume: the teacher is resumed from its checkpoint

    for method in rows:
        if method.is_teacher:
            continue
        todo = []
        for i, run in enumerate(runs):
            finished = run.files.finished(method.name)
            if finished is not None:
                results[i].records.append(finished)
            else:
                todo.append(i)
        if not todo or method.name in skip:
            continue  # all finished, or it cannot run on this split (skipped_methods says why)
        trained = train_method([runs[i] for i in todo], method, [pls[i] for i in todo], plan.stacked)
        if any(runs[i].interrupted(fitted) for i, (_, fitted, _) in zip(todo, trained)):
            return results  # interrupted (tests)
        for i, (model, fitted, extra) in zip(todo, trained):
            results[i].records.append(runs[i].finish(method, model, fitted, extra))
            results[i].models[method.name] = model
            results[i].predictors[method.name] = runs[i].predictor(method, model)
    return results


def run_seed(cfg: ExperimentConfig, split: MultimodalSplit, seed: int, methods=METHODS, out: Path | None = None,
             device=torch.device("cpu"), force: bool = False, progress=None,
             stop_after: int | None = None, tensorboard: Path | None = None) -> SeedResult:
    """``run_seeds`` for one initialisation seed."""
    return run_seeds(cfg, split, [seed], methods, out, device, force, progress, stop_after, tensorboard)[0]

