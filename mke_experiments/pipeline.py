"""The MKE protocol for any task: teacher → pseudo labels → students → run records.

The methods and what each trains on are the rows of ``mke_theory.methods`` (teacher, UM student,
NOISY student, MM student with and without regularisation, the MKE student on confident pseudo
labels only, and the supervised upper bound); ``SeedRun`` turns a row into a training run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mke_experiments.config import ExperimentConfig, resolve_config
from mke_experiments.train import IGNORE, distributed, fit, predict, predict_logits, resolve_device
from mke_theory.errors import MKEError
from mke_theory.methods import Method, get_method, methods_of
from mke_theory.objective import pseudo_labels as make_pseudo_labels
from mke_theory.records import atomic_write, config_hash, make_record, read_record, run_stem, write_record
from mke_theory.split import MultimodalSplit

EXPERIMENT_METHODS = methods_of("experiments")  # every method the pipeline can train
METHODS = methods_of("experiments", default_only=True)  # what mke-exp run trains unless told otherwise


def _t(a) -> torch.Tensor:
    a = np.asarray(a)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32 if a.dtype.kind == "f" else a.dtype))


@dataclass
class SeedResult:
    records: list
    models: dict  # method -> trained model (evaluation mode)
    pseudo_labels: np.ndarray


@dataclass
class RunFiles:
    """Where one (task, seed, config) run keeps its files, and resume: every file name comes from
    ``records.run_stem``. Without ``out`` nothing is written and nothing resumes."""

    out: Path | None
    task: str
    seed: int
    config_hash: str
    split_id: str
    force: bool = False
    rank: int = 0
    tensorboard: Path | None = None

    def stem(self, method: str) -> str:
        return run_stem(self.task, method, self.seed, self.config_hash)

    def checkpoint(self, method: str) -> Path | None:
        return None if self.out is None else self.out / "checkpoints" / f"{self.stem(method)}.pt"

    def identity(self, method: str) -> dict:
        """What a checkpoint of ``method`` belongs to; one of another identity is never resumed."""
        return dict(task=self.task, method=method, seed=self.seed, config_hash=self.config_hash)

    def start_fresh(self, method: str) -> None:
        """``force``: the checkpoint of a run that is redone goes before it trains (rank 0), so neither this
        run nor a later resume can pick it up; ``fit`` is told not to resume on every rank."""
        ckpt = self.checkpoint(method)
        if self.force and ckpt is not None and self.rank == 0:
            ckpt.unlink(missing_ok=True)

    def log_dir(self, method: str) -> Path | None:
        return None if self.tensorboard is None else Path(self.tensorboard) / f"{self.task}__{method}__seed{self.seed}"

    def finished(self, method: str) -> dict | None:
        """The record of ``method`` if ``out`` holds it and ``force`` is off (resume)."""
        if self.out is None or self.force:
            return None
        path = self.out / f"{self.stem(method)}.json"
        return read_record(path) if path.exists() else None

    def write(self, record: dict, keep_checkpoint: bool) -> None:
        """Write the final record (rank 0) and drop the method's checkpoint unless asked to keep it."""
        if self.out is None or self.rank != 0:
            return
        write_record(record, self.out, force=True)
        ckpt = self.checkpoint(record["method"])
        if ckpt is not None and not keep_checkpoint:
            ckpt.unlink(missing_ok=True)  # a concurrent run of the same identity may have removed it already

    def save_examples(self, method: str, pred: np.ndarray, split: MultimodalSplit, n: int) -> None:
        """Predictions of the first ``n`` test samples (and, once per split, those inputs), for figures."""
        if self.out is None or self.rank != 0:
            return
        folder = self.out / "examples"
        folder.mkdir(exist_ok=True)
        atomic_write(folder / f"{self.stem(method)}.npz",
                     lambda f: np.savez_compressed(f, pred=pred, config_hash=self.config_hash, seed=self.seed))
        shown = folder / f"{self.task}__inputs__{self.split_id}.npz"
        if not shown.exists():
            atomic_write(shown, lambda f: np.savez_compressed(
                f, alpha=split.test_alpha[:n], beta=split.test_beta[:n], labels=split.test_labels[:n]))


@dataclass
class PseudoLabels:
    """Eq. (2) on D_u: what the students learn from."""

    predicted: np.ndarray  # (M, ...) the teacher's classes on all of D_u
    targets: torch.Tensor  # (M', ...) hard or soft pseudo labels of the training part of D_u
    train_idx: np.ndarray  # (M',) the part of D_u students train on (all but a held-out tenth with agreement)
    held_out: np.ndarray | None  # (M,) bool, the tenth of D_u kept for label-free selection, or None
    confidence: np.ndarray | None  # (M', ...) the teacher's top-class probability, when a method selects by it
    metrics: dict  # pseudo_label_accuracy where D_u's true labels are known


class SeedRun:
    """The MKE protocol for one initialisation seed, as steps: ``train_teacher`` → ``pseudo_label`` →
    ``train_student`` per method row → ``finish`` (record). Holds the split as tensors, the task's
    hooks and the run's files; every step reads the method table for what a method trains on."""

    def __init__(self, cfg: ExperimentConfig, split: MultimodalSplit, seed: int, files: RunFiles, device,
                 progress=None, stop_after: int | None = None):
        from mke_experiments.tasks import get_task

        self.cfg, self.split, self.seed, self.files, self.device = cfg, split, seed, files, device
        self.task = get_task(cfg.task)
        self.progress, self.stop_after = progress, stop_after
        self.world = distributed()[1]
        self.config = dict(cfg.as_dict(), split_id=split.split_id)
        self.t = {name: _t(getattr(split, name)) for name in
                  ("labeled_alpha", "unlabeled_alpha", "unlabeled_beta", "test_alpha", "test_beta")}
        self.val = (_t(split.val_alpha), _t(split.val_beta)) if split.val_alpha is not None else None
        self.perturb = self.task.perturb(cfg)
        self.augment = self.task.augment(cfg) if self.task.augment is not None else None

    # ---- evaluation and model selection --------------------------------------------------------------
    def metrics_of(self, model, inputs: tuple, labels) -> dict:
        if self.task.scores:  # top-k and average precision need every class score (classification only)
            return self.task.evaluate(predict_logits(model, inputs, self.device).numpy(), labels, self.split.n_classes)
        return self.task.evaluate(predict(model, inputs, self.device).numpy(), labels, self.split.n_classes)

    def selection(self, method: Method, pl: PseudoLabels | None):
        """``score(model)``, higher is better: the primary metric on validation data, or (label-free) the
        agreement with the teacher on a held-out tenth of D_u; None keeps the last epoch. Never test data."""
        modalities = 2 if method.multimodal else 1
        if self.cfg.train.selection == "val" and self.val is not None:
            inputs = self.val[:modalities]
            return lambda model: self.metrics_of(model, inputs, self.split.val_labels)[self.task.primary]
        if self.cfg.train.selection == "agreement" and pl is not None and pl.held_out is not None:
            held = pl.held_out
            inputs = (self.t["unlabeled_alpha"][held], self.t["unlabeled_beta"][held])[:modalities]
            agree = pl.predicted[held]
            return lambda model: float((predict(model, inputs, self.device).numpy() == agree).mean())
        return None  # the teacher cannot be selected by agreement with itself

    def fit(self, method: Method, model, inputs: tuple, targets, pl: PseudoLabels | None):
        tr = self.cfg.train
        self.files.start_fresh(method.name)
        return fit(model, inputs, targets, tr, self.cfg.mke, regularised=method.regularised, seed=self.seed,
                   device=self.device, score=self.selection(method, pl),
                   checkpoint=self.files.checkpoint(method.name) if tr.checkpoint else None,
                   identity=self.files.identity(method.name), resume=not self.files.force,
                   progress=self.progress, stop_after=self.stop_after, log_dir=self.files.log_dir(method.name),
                   augment=self.augment, perturb=self.perturb)

    def interrupted(self, fitted) -> bool:
        return self.stop_after is not None and len(fitted.history) < self.cfg.train.epochs

    # ---- the steps -----------------------------------------------------------------------------------
    def train_teacher(self):
        """Eq. (1): the teacher on α of D_l with its labels (multi-label rows normalised to distributions)."""
        torch.manual_seed(self.seed)
        teacher = self.task.build_teacher(self.split, self.cfg.model)
        fitted = self.fit(get_method("teacher"), teacher, (self.t["labeled_alpha"],), _label_targets(self.split), None)
        return teacher, fitted

    def pseudo_label(self, teacher, need_confidence: bool = False) -> PseudoLabels:
        """Eq. (2) on D_u with the teacher in evaluation mode; hard or soft by ``mke.pseudo_labels``."""
        cfg, split, u = self.cfg, self.split, (self.t["unlabeled_alpha"],)
        confidence = None
        if need_confidence:
            predicted, confidence = predict(teacher, u, self.device, confidence=True)
        else:
            predicted = predict(teacher, u, self.device)
        predicted = predicted.numpy()
        if cfg.mke.pseudo_labels == "soft":  # holds every logit of D_u in memory: (M, K, ...)
            targets = make_pseudo_labels(predict_logits(teacher, u, self.device), "soft", cfg.mke.temperature,
                                         class_dim=1)
        else:
            targets = torch.as_tensor(predicted.astype(np.int64))
        held_out = None
        if cfg.train.selection == "agreement":  # hold out a tenth of D_u, by the split, for label-free selection
            held_out = np.zeros(split.n_unlabeled, bool)
            held_out[np.random.default_rng(0).permutation(split.n_unlabeled)[: max(1, split.n_unlabeled // 10)]] = True
        train_idx = np.flatnonzero(~held_out) if held_out is not None else np.arange(split.n_unlabeled)
        metrics = {}
        if split.unlabeled_labels is not None:
            known = split.unlabeled_labels != IGNORE
            metrics["pseudo_label_accuracy"] = float((predicted == split.unlabeled_labels)[known].mean())
        return PseudoLabels(predicted, targets[train_idx], train_idx, held_out,
                            None if confidence is None else confidence.numpy()[train_idx], metrics)

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
            inputs = (torch.cat([t["labeled_alpha"], inputs[0]]),)
            return inputs, torch.cat([labeled, targets.to(labeled.dtype)]), extra
        return inputs, targets, extra

    def train_student(self, method: Method, pl: PseudoLabels):
        torch.manual_seed(self.seed)
        if method.multimodal:
            model = self.task.build_student(self.split, self.cfg.model, method.regularised)
        else:  # UM students share the teacher's network
            model = self.task.build_teacher(self.split, self.cfg.model)
        inputs, targets, extra = self.student_data(method, pl)
        return model, self.fit(method, model, inputs, targets, pl), extra

    def finish(self, method: Method, model, fitted, extra: dict) -> dict:
        """Test (and validation) metrics of the selected model → the run record, written to the run's files."""
        split, primary = self.split, self.task.primary
        modalities = 2 if method.multimodal else 1
        inputs = (self.t["test_alpha"], self.t["test_beta"])[:modalities]
        metrics = {f"test_{name}": v for name, v in self.metrics_of(model, inputs, split.test_labels).items()}
        metrics.update(extra)
        if self.val is not None:
            metrics[f"val_{primary}"] = self.metrics_of(model, self.val[:modalities], split.val_labels)[primary]
        record = make_record(self.cfg.task, method.name, self.seed, metrics, self.config, fitted.wall_time_s,
                             history=fitted.history, hardware=_hardware(self.device), world_size=self.world,
                             split_id=split.split_id)
        record["best_epoch"] = fitted.best_epoch
        if self.task.examples:
            n = min(self.task.examples, len(split.test_labels))
            pred = predict(model, tuple(x[:n] for x in inputs), self.device).numpy()
            self.files.save_examples(method.name, pred, split, n)
        self.files.write(record, keep_checkpoint=method.is_teacher)  # the teacher's is kept for its pseudo labels
        return record


class SkippedMethodWarning(UserWarning):
    """A requested method that cannot run on this split (e.g. the supervised bound without D_u's labels)."""


def skipped_methods(split: MultimodalSplit, methods) -> dict:
    """method -> why it is not trained on ``split``, for the requested ``methods`` that cannot run."""
    return {m: "the split has no unlabeled_labels (the true labels of D_u) to train it on"
            for m in methods if get_method(m).targets == "true" and split.unlabeled_labels is None}


def selection_used(cfg: ExperimentConfig, split: MultimodalSplit) -> str:
    """The model selection the runs really get, in words: ``train.selection=val`` without a validation set
    keeps the last epoch (the records' histories then hold no selection score)."""
    if cfg.train.selection == "val" and split.val_alpha is None:
        return "last (no validation set)"
    if cfg.train.selection == "agreement":
        return "agreement (the teacher: last epoch)"
    return cfg.train.selection


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


def run_seed(cfg: ExperimentConfig, split: MultimodalSplit, seed: int, methods=METHODS, out: Path | None = None,
             device=torch.device("cpu"), force: bool = False, progress=None,
             stop_after: int | None = None, tensorboard: Path | None = None) -> SeedResult:
    """Train every requested method for one initialisation seed; write records to ``out``.

    The task (``cfg.task``) supplies the networks, the metrics, the augmentation and the
    perturbation T. A method whose record exists in ``out`` is skipped (resume) unless ``force``;
    an interrupted method continues from its checkpoint.
    """
    rank = distributed()[0]
    config = dict(cfg.as_dict(), split_id=split.split_id)
    files = RunFiles(None if out is None else Path(out), cfg.task, seed, config_hash(config), split.split_id,
                     force=force, rank=rank, tensorboard=tensorboard)
    if files.out is not None and rank == 0:
        if (files.out / "checkpoints").exists() and not (files.out / "checkpoints").is_dir():
            raise MKEError(f"{files.out / 'checkpoints'} is a file, but --out needs a folder of that name for "
                           "checkpoints: move the file or choose another --out")
        (files.out / "checkpoints").mkdir(parents=True, exist_ok=True)
    run = SeedRun(cfg, split, seed, files, device, progress, stop_after)
    rows = [get_method(m) for m in methods]
    records, models = [], {}

    teacher, fitted = run.train_teacher()  # always trained (or resumed): its pseudo labels feed the students
    if run.interrupted(fitted):
        return SeedResult(records, models, np.empty(0))  # interrupted (tests)
    finished = files.finished("teacher")
    records.append(finished or run.finish(get_method("teacher"), teacher, fitted, {}))
    models["teacher"] = teacher
    pl = run.pseudo_label(teacher, need_confidence=any(m.select is not None for m in rows))

    for method in rows:
        if method.is_teacher:
            continue
        finished = files.finished(method.name)
        if finished is not None:
            records.append(finished)
            continue
        if method.targets == "true" and split.unlabeled_labels is None:
            continue  # no true labels of D_u: no upper bound
        model, fitted, extra = run.train_student(method, pl)
        if run.interrupted(fitted):
            return SeedResult(records, models, pl.predicted)  # interrupted (tests)
        records.append(run.finish(method, model, fitted, extra))
        models[method.name] = model
    return SeedResult(records, models, pl.predicted)


def _hardware(device) -> str:
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    import os
    import platform

    return f"cpu {platform.machine()} x{os.cpu_count()}"


def fit_mke(split: MultimodalSplit | dict, config: ExperimentConfig | None = None, seed: int = 0, device: str = "auto",
            methods=("teacher", "mm_student")) -> SeedResult:
    """MKE on your own arrays: train the teacher on α of D_l, pseudo-label D_u, train the students.

    Parameters
    ----------
    split : a ``MultimodalSplit`` (features standardised on training data), or a dict of arrays
        with the keys of the ``arrays`` task's bundle, which is checked and standardised here.
    config : defaults to the ``arrays`` task's preset.
    methods : which methods to train (the teacher always is).

    Returns
    -------
    SeedResult with ``models["mm_student"]`` (call it as ``student(alpha, beta)`` on tensors),
    ``models["teacher"]``, the pseudo labels and one record per method with its test metrics.

    Example
    -------
    >>> from mke_theory.generators import gaussian_mixture
    >>> result = fit_mke(gaussian_mixture(random_state=0), device="cpu")      # doctest: +SKIP
    >>> result.records[-1]["metrics"]["test_accuracy"]                        # doctest: +SKIP
    """
    from mke_experiments.tasks import get_task
    from mke_experiments.tasks.arrays import split_from_arrays, standardize

    if isinstance(split, dict):  # the arrays of an npz bundle, by the bundle's key names
        split = standardize(split_from_arrays(split, source="the arrays"))
    cfg = config or get_task("arrays").default_config
    return run_seed(cfg, split, seed, methods=methods, device=resolve_device(device))


def total_steps(split: MultimodalSplit, cfg: ExperimentConfig, methods, n_seeds: int) -> int:
    """Optimisation steps of ``run_split`` (a progress bar's length)."""
    per = {"labels": split.n_labeled, "labels+pseudo": split.n_labeled + split.n_unlabeled}
    batches = lambda n: cfg.train.epochs * -(-n // cfg.train.batch_size)  # noqa: E731
    return n_seeds * sum(batches(per.get(get_method(m).targets, split.n_unlabeled)) for m in set(methods) | {"teacher"})


def run_split(cfg: ExperimentConfig, split: MultimodalSplit, seeds, methods=METHODS, out=None, device="auto",
              force: bool = False, progress=None, tensorboard=None) -> list[dict]:
    """Every method × seed on one split; returns the records of this call (written to ``out``)."""
    unknown = [m for m in methods if m not in EXPERIMENT_METHODS]
    if unknown:
        raise MKEError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(EXPERIMENT_METHODS)}")
    if cfg.mke.pseudo_labels == "soft" and any(get_method(m).select is not None for m in methods):
        raise MKEError("the methods that keep only confident pseudo labels need hard ones: "
                       "drop mke.pseudo_labels=soft or those methods")
    for method, why in skipped_methods(split, methods).items():
        warnings.warn(f"{method} is skipped: {why}", SkippedMethodWarning, stacklevel=2)
    dev = resolve_device(device)
    records = []
    for seed in seeds:
        records += run_seed(cfg, split, seed, methods, out=None if out is None else Path(out), device=dev,
                            force=force, progress=progress, tensorboard=tensorboard).records
    return records


def run(task_name: str, data_dir=None, out=None, seeds=(0, 1, 2, 3, 4), methods=METHODS, epochs=None,
        device: str = "auto", overrides=(), force: bool = False, progress=None) -> list[dict]:
    """``mke-exp run`` from Python: every method × seed of a task; returns the records."""
    from mke_experiments.tasks import get_task

    task = get_task(task_name)
    cfg = resolve_config(task, overrides, epochs)
    cfg, split = task.load_split(cfg, data_dir, overrides)
    return run_split(cfg, split, seeds, methods, out, device, force, progress)


def distributed_init() -> bool:
    """Join the process group ``torchrun`` describes in the environment (gloo on CPU, NCCL on GPU)."""
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return True
