"""The MKE protocol for any task: teacher → pseudo labels → students → run records.

Methods (Algorithm 1 and its baselines):
teacher           α of D_l with labels (Eq. 1)
um_student        α of D_u with the teacher's pseudo labels, regularised (perturbations T)
noisy_student     α of D_l ∪ D_u, labels on D_l and pseudo labels on D_u, regularised
mm_student_noreg  α + β of D_u with pseudo labels, no perturbation, plain cross entropy
mm_student        α + β of D_u with pseudo labels, L_pl + γ·L_reg (MKE, Eq. 3)
mm_supervised     α + β of D_u with the true labels: the upper bound (needs them)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from mke_experiments.config import ExperimentConfig, apply_overrides
from mke_experiments.train import IGNORE, distributed, fit, predict, predict_logits, resolve_device
from mke_theory.errors import MKEError
from mke_theory.methods import get_method, methods_of
from mke_theory.objective import pseudo_labels as make_pseudo_labels
from mke_theory.records import atomic_write, config_hash, make_record, read_record, record_path, write_record
from mke_theory.split import MultimodalSplit

METHODS = methods_of("experiments", default_only=True)
MULTIMODAL = {m for m in METHODS if get_method(m).multimodal}


def _t(a) -> torch.Tensor:
    a = np.asarray(a)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32 if a.dtype.kind == "f" else a.dtype))


def classification_metrics(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    """Accuracy and macro-F1 (the default metrics of a task)."""
    return dict(accuracy=float((pred == labels).mean()),
                macro_f1=float(f1_score(labels, pred, average="macro", zero_division=0)))


@dataclass
class SeedResult:
    records: list
    models: dict  # method -> trained model (evaluation mode)
    pseudo_labels: np.ndarray


def run_seed(cfg: ExperimentConfig, split: MultimodalSplit, seed: int, methods=METHODS, out: Path | None = None,
             device=torch.device("cpu"), force: bool = False, progress=None,
             stop_after: int | None = None, tensorboard: Path | None = None) -> SeedResult:
    """Train every requested method for one initialisation seed; write records to ``out``.

    The task (``cfg.task``) supplies the networks, the metrics, the augmentation and the
    perturbation T. A method whose record exists in ``out`` is skipped (resume) unless ``force``;
    an interrupted method continues from its checkpoint.
    """
    from mke_experiments.tasks import get_task

    task = get_task(cfg.task)
    rank, world = distributed()
    config = dict(cfg.as_dict(), split_id=split.split_id)
    chash = config_hash(config)
    ckpt_dir = None if out is None else Path(out) / "checkpoints"
    if ckpt_dir is not None and rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    records, models = [], {}
    k, m, tr = split.n_classes, cfg.model, cfg.train
    t = {name: _t(getattr(split, name)) for name in
         ("labeled_alpha", "unlabeled_alpha", "unlabeled_beta", "test_alpha", "test_beta")}
    has_val = split.val_alpha is not None
    val = (_t(split.val_alpha), _t(split.val_beta)) if has_val else None
    perturb = task.perturb(cfg) if task.perturb is not None else None
    augment = task.augment(cfg) if task.augment is not None else None

    def metrics_of(model, inputs, labels) -> dict:
        if task.scores:  # top-k and average precision need every class score (classification only)
            return task.evaluate(predict_logits(model, inputs, device).numpy(), labels, k)
        return task.evaluate(predict(model, inputs, device).numpy(), labels, k)

    def path_of(method):
        return None if ckpt_dir is None else ckpt_dir / f"{cfg.task}__{method}__seed{seed}__{chash}.pt"

    def log_dir(method):
        return None if tensorboard is None else Path(tensorboard) / f"{cfg.task}__{method}__seed{seed}"

    def done(method):
        """True (and the finished record kept for the caller) when ``out`` already holds it."""
        if out is None or force:
            return False
        path = record_path(dict(task=cfg.task, method=method, seed=seed, config_hash=chash), out)
        if path.exists():
            records.append(read_record(path))
            return True
        return False

    def score(multimodal):
        """Model selection: the primary metric on validation data, or label-free agreement."""
        if tr.selection == "val" and has_val:
            inputs = val if multimodal else val[:1]
            return lambda model: metrics_of(model, inputs, split.val_labels)[task.primary]
        if tr.selection == "agreement" and held_out is not None:
            inputs = (t["unlabeled_alpha"][held_out], t["unlabeled_beta"][held_out])
            inputs = inputs if multimodal else inputs[:1]
            return lambda model: float((predict(model, inputs, device).numpy() == teacher_pred[held_out]).mean())
        return None

    def finish(method, model, fitted, multimodal, extra=None):
        inputs = (t["test_alpha"], t["test_beta"]) if multimodal else (t["test_alpha"],)
        metrics = {f"test_{name}": v for name, v in metrics_of(model, inputs, split.test_labels).items()}
        metrics.update(extra or {})
        if has_val:
            metrics[f"val_{task.primary}"] = metrics_of(model, val if multimodal else val[:1],
                                                        split.val_labels)[task.primary]
        record = make_record(cfg.task, method, seed, metrics, config, fitted.wall_time_s, history=fitted.history,
                             hardware=_hardware(device), world_size=world, split_id=split.split_id)
        record["best_epoch"] = fitted.best_epoch
        if out is not None and rank == 0:
            if task.examples:
                save_examples(method, model, inputs)
            write_record(record, out, force=True)
            ckpt = path_of(method)
            if ckpt is not None and ckpt.exists() and method != "teacher":
                ckpt.unlink()  # the record is final; the teacher's is kept for its pseudo labels
        records.append(record)
        models[method] = model

    def save_examples(method, model, inputs):
        """Predictions (and, once per split, the inputs) of the first test samples, for figures."""
        folder = Path(out) / "examples"
        folder.mkdir(exist_ok=True)
        n = min(task.examples, len(split.test_labels))
        first = tuple(x[:n] for x in inputs)
        pred = predict(model, first, device).numpy()
        atomic_write(folder / f"{cfg.task}__{method}__seed{seed}__{chash}.npz",
                     lambda f: np.savez_compressed(f, pred=pred, config_hash=chash, seed=seed))
        shown = folder / f"{cfg.task}__inputs__{split.split_id}.npz"
        if not shown.exists():
            atomic_write(shown, lambda f: np.savez_compressed(
                f, alpha=split.test_alpha[:n], beta=split.test_beta[:n], labels=split.test_labels[:n]))

    def train(method, model, inputs, targets, regularised, multimodal):
        return fit(model, inputs, targets, tr, cfg.mke, regularised=regularised, seed=seed, device=device,
                   score=score(multimodal), checkpoint=path_of(method) if tr.checkpoint else None,
                   progress=progress, stop_after=stop_after, log_dir=log_dir(method), augment=augment,
                   perturb=perturb)

    # ---- teacher (Eq. 1): α of D_l ------------------------------------------------------------
    held_out = None
    torch.manual_seed(seed)
    teacher = task.build_teacher(split, m)
    teacher_targets = torch.as_tensor(split.labels)
    if teacher_targets.is_floating_point():  # multi-label: softmax cross entropy on normalised label rows
        teacher_targets = teacher_targets / teacher_targets.sum(dim=1, keepdim=True).clamp(min=1e-12)
    fitted = train("teacher", teacher, (t["labeled_alpha"],), teacher_targets, regularised=False, multimodal=False)
    if stop_after is not None and len(fitted.history) < tr.epochs:
        return SeedResult(records, models, np.empty(0))  # interrupted (tests)
    if not done("teacher"):
        finish("teacher", teacher, fitted, multimodal=False)
    models["teacher"] = teacher

    # ---- pseudo labels (Eq. 2) on D_u, teacher in evaluation mode ----------------------------------
    teacher_pred = predict(teacher, (t["unlabeled_alpha"],), device).numpy()
    if cfg.mke.pseudo_labels == "soft":  # holds every logit of D_u in memory: (M, K, ...)
        targets = make_pseudo_labels(predict_logits(teacher, (t["unlabeled_alpha"],), device), "soft",
                                     cfg.mke.temperature, class_dim=1)
    else:
        targets = torch.as_tensor(teacher_pred.astype(np.int64))
    if tr.selection == "agreement":  # hold out a tenth of D_u, by the split, for label-free selection
        held_out = np.zeros(split.n_unlabeled, bool)
        held_out[np.random.default_rng(0).permutation(split.n_unlabeled)[: max(1, split.n_unlabeled // 10)]] = True
    train_idx = np.flatnonzero(~held_out) if held_out is not None else np.arange(split.n_unlabeled)
    a_u, b_u, y_u = t["unlabeled_alpha"][train_idx], t["unlabeled_beta"][train_idx], targets[train_idx]
    extra_pl = {}
    if split.unlabeled_labels is not None:
        known = split.unlabeled_labels != IGNORE
        extra_pl["pseudo_label_accuracy"] = float((teacher_pred == split.unlabeled_labels)[known].mean())

    # ---- students ---------------------------------------------------------------------------------
    for method in methods:
        if method == "teacher" or done(method):
            continue
        if method == "mm_supervised" and split.unlabeled_labels is None:
            continue  # no true labels of D_u: no upper bound
        torch.manual_seed(seed)
        if method in ("um_student", "noisy_student"):
            model, inputs, y = task.build_teacher(split, m), (a_u,), y_u
            if method == "noisy_student":
                y_l = torch.as_tensor(split.labels)
                if y_l.is_floating_point():  # multi-label D_l: rows normalised to distributions
                    y_l = y_l / y_l.sum(dim=1, keepdim=True).clamp(min=1e-12)
                    y_u_l = y_u if y_u.is_floating_point() else F.one_hot(y_u.long(), k).float()
                elif y_u.is_floating_point():  # soft pseudo labels: the labeled part as one-hot
                    y_l, y_u_l = F.one_hot(y_l.long().clamp(min=0), k).movedim(-1, 1).float(), y_u
                else:
                    y_l, y_u_l = y_l.long(), y_u
                inputs, y = (torch.cat([t["labeled_alpha"], a_u]),), torch.cat([y_l, y_u_l.to(y_l.dtype)])
            fitted = train(method, model, inputs, y, regularised=True, multimodal=False)
        else:
            regularised = method != "mm_student_noreg"
            model = task.build_student(split, m, regularised)
            y = torch.as_tensor(split.unlabeled_labels)[train_idx] if method == "mm_supervised" else y_u
            fitted = train(method, model, (a_u, b_u), y, regularised=regularised, multimodal=True)
        if stop_after is not None and len(fitted.history) < tr.epochs:
            return SeedResult(records, models, teacher_pred)  # interrupted (tests)
        finish(method, model, fitted, multimodal=method in MULTIMODAL,
               extra=extra_pl if method != "mm_supervised" else None)
    return SeedResult(records, models, teacher_pred)


def _hardware(device) -> str:
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    import os
    import platform

    return f"cpu {platform.machine()} x{os.cpu_count()}"


def resolve_config(task, overrides=(), epochs: int | None = None) -> ExperimentConfig:
    cfg = apply_overrides(task.default_config, overrides)
    if epochs is not None:
        cfg = replace(cfg, train=replace(cfg.train, epochs=epochs))
    return cfg


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
    per = {"teacher": split.n_labeled, "noisy_student": split.n_labeled + split.n_unlabeled}
    batches = lambda n: cfg.train.epochs * -(-n // cfg.train.batch_size)  # noqa: E731
    return n_seeds * sum(batches(per.get(m, split.n_unlabeled)) for m in set(methods) | {"teacher"})


def run_split(cfg: ExperimentConfig, split: MultimodalSplit, seeds, methods=METHODS, out=None, device="auto",
              force: bool = False, progress=None, tensorboard=None) -> list[dict]:
    """Every method × seed on one split; returns the records of this call (written to ``out``)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise MKEError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
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
    return run_split(cfg, task.load(cfg.data, data_dir), seeds, methods, out, device, force, progress)


def distributed_init() -> bool:
    """Join the process group ``torchrun`` describes in the environment (gloo on CPU, NCCL on GPU)."""
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return True
