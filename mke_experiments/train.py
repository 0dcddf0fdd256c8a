"""The training loop every method uses: one model, its inputs, its targets, and whether the
perturbations T of the MKE objective are on.

Mini-batch training with Adam/SGD; bfloat16 autocast on CUDA; DistributedDataParallel when a
process group is up (``torchrun``); a checkpoint per epoch with every random state, so that an
interrupted run continues exactly where it stopped; model selection on validation data, on the
label-free agreement with the teacher on held-out unlabeled data, or the last epoch.
"""

from __future__ import annotations

import copy
import functools
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from mke_experiments import perturbations
from mke_experiments.config import MKEConfig, TrainConfig
from mke_theory.errors import MKEError
from mke_theory.objective import student_loss
from mke_theory.records import atomic_write
from mke_theory.split import IGNORE as SPLIT_IGNORE


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when there is one, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MKEError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    return torch.device(device)


def distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class FitResult:
    model: nn.Module  # the selected weights, in evaluation mode, unwrapped from DDP
    history: list = field(default_factory=list)  # one dict per epoch: loss, selection score
    best_epoch: int = -1
    wall_time_s: float = 0.0
    resumed_from: int = 0  # epochs that came from a checkpoint


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: tuple, device, batch_size: int = 64) -> torch.Tensor:
    """(n, K, ...) logits on CPU, evaluation mode, in batches."""
    model.eval()
    n = len(inputs[0])
    out = [model(*(x[i:i + batch_size].to(device) for x in inputs)).float().cpu() for i in range(0, n, batch_size)]
    return torch.cat(out)


@torch.no_grad()
def predict(model: nn.Module, inputs: tuple, device, batch_size: int = 64, confidence: bool = False):
    """(n, ...) predicted classes on CPU (argmax over the class axis 1), batch by batch.

    Unlike ``predict_logits`` it never holds all logits: dense predictions stay small. With
    ``confidence`` it returns ``(classes, top-class softmax probability as float16)``.
    """
    model.eval()
    n = len(inputs[0])
    classes, top = [], []
    for i in range(0, n, batch_size):
        logits = model(*(x[i:i + batch_size].to(device) for x in inputs))
        classes.append(logits.argmax(1).to(torch.int16).cpu())
        if confidence:
            top.append(torch.softmax(logits.float(), dim=1).amax(dim=1).half().cpu())
    return (torch.cat(classes), torch.cat(top)) if confidence else torch.cat(classes)


IGNORE = SPLIT_IGNORE  # target value of pixels without a label (void); they add nothing to the loss


def fit(model: nn.Module, inputs: tuple, targets: torch.Tensor, cfg: TrainConfig, mke: MKEConfig | None = None,
        regularised: bool = False, seed: int = 0, device=torch.device("cpu"), score=None,
        checkpoint: Path | None = None, progress=None, stop_after: int | None = None,
        log_dir: Path | None = None, augment=None, perturb=None, identity: dict | None = None,
        resume: bool = True) -> FitResult:
    """Train ``model(*inputs)`` on ``targets``.

    Parameters
    ----------
    inputs : tuple of CPU tensors (n, ...), one per modality the model takes.
    targets : class indices (n,) or per pixel (n, H, W) with ``IGNORE`` for void, or soft labels
        with the class axis second: (n, K) or (n, K, H, W).
    regularised : apply the perturbations T (``perturb``, the model's dropout) and the MKE loss
        form of ``mke``; otherwise plain cross entropy on clean inputs.
    score : ``score(model) -> float`` after every epoch (higher is better: validation metric, or
        label-free agreement with the teacher); the best epoch's weights are returned. None: the
        last epoch.
    checkpoint : file written after every epoch and resumed from if it exists and was written for
        ``identity``; one that vanished before it could be read is absent (a concurrent run finished).
    identity : what the run is (e.g. task, method, seed, config hash), stored in the checkpoint; a
        checkpoint of another identity (copied in, renamed, or from before identities were stored) is
        never resumed: training restarts from scratch with a warning and overwrites it. Restarting is
        what a fresh run of this identity would do anyway, so there is nothing for the user to decide.
        A checkpoint that cannot be read is an ``MKEError`` naming it ("delete it or pass --force").
    resume : False trains from scratch whatever ``checkpoint`` holds (``--force``), overwriting it.
    stop_after : stop (as if killed) after this many epochs; for resume tests.
    log_dir : TensorBoard folder for the per-epoch loss and selection score (needs ``tensorboard``).
    augment : ``augment(inputs, targets, generator) -> (inputs, targets)`` applied to every batch
        (e.g. a joint random crop and flip of images and label maps); None: no augmentation.
    perturb : ``perturb(inputs, generator) -> inputs``, the perturbation T of regularised runs
        (``mke_experiments.perturbations``); default: input noise of strength ``mke.input_noise``.

    Randomness: shuffling draws from a CPU generator seeded with ``seed``; T and the augmentation from
    a generator on ``device`` (on the CPU the same one, so CPU runs draw one stream); dropout and
    modality dropout from the global generators, seeded here. All of their states are checkpointed.
    """
    rank, world = distributed()
    if regularised and perturb is None:
        perturb = perturbations.input_noise(mke.input_noise)
    torch.manual_seed(seed)  # dropout and modality dropout draw from the global generator
    generator = torch.Generator().manual_seed(seed)  # shuffling (and, on the CPU, T and augmentation)
    draws = generator if device.type == "cpu" else torch.Generator(device).manual_seed(seed)  # T, augmentation
    model.to(device)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    history, best_score, best_state, best_epoch, start = [], -np.inf, None, -1, 0
    state = load_checkpoint(checkpoint, identity) if checkpoint is not None and resume else None
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            history, best_score, best_state, best_epoch = (state["history"], state["best_score"],
                                                           state["best_state"], state["best_epoch"])
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            if draws is not generator:
                draws.set_state(state["device_generator"])
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            start = state["epoch"] + 1
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise MKEError(f"{checkpoint}: the checkpoint does not fit this run ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else e!r}); delete it or pass --force") from None
    train_model = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    writer = _tensorboard(log_dir) if log_dir is not None and rank == 0 else None
    use_amp = cfg.amp and device.type == "cuda"
    n = len(targets)
    t0 = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        if stop_after is not None and epoch >= stop_after:
            break
        train_model.train()
        order = torch.randperm(n, generator=generator)  # the same on every rank
        order = order[: len(order) - len(order) % world][rank::world]  # equal shares, as DistributedSampler
        total, batches = 0.0, 0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            if len(idx) == 1 and len(order) > 1:
                continue  # a last batch of one sample: batch norm cannot train on it
            x = tuple(t[idx].to(device, non_blocking=True) for t in inputs)
            y = targets[idx].to(device)
            if augment is not None:
                x, y = augment(x, y, draws)
            if y.dtype != torch.int64 and not y.is_floating_point():
                y = y.long()
            forward = lambda perturbed: train_model(*(perturb(x, draws) if perturbed else x)).float()  # noqa: E731,B023
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = student_loss(forward, y, regularised=regularised, class_dim=1, ignore_index=IGNORE,
                                    **(dict(loss_form=mke.loss_form, gamma=mke.gamma) if regularised else {}))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, batches = total + loss.item(), batches + 1
            if progress is not None:
                progress(1)
        entry = dict(epoch=epoch, loss=total / max(batches, 1))
        if score is not None:
            value = float(score(model))
            entry["selection_score"] = value
            if value > best_score:
                best_score, best_epoch = value, epoch
                best_state = copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})
        history.append(entry)
        if writer is not None:
            for key, value in entry.items():
                if key != "epoch":
                    writer.add_scalar(key, value, epoch)
        if checkpoint is not None and rank == 0:
            state = dict(identity=identity, model=model.state_dict(), optimizer=opt.state_dict(), epoch=epoch,
                         history=history,
                         best_score=best_score, best_state=best_state, best_epoch=best_epoch,
                         generator=generator.get_state(), torch_rng=torch.get_rng_state())
            if draws is not generator:
                state.update(device_generator=draws.get_state(), cuda_rng=torch.cuda.get_rng_state(device))
            atomic_write(checkpoint, functools.partial(torch.save, state))
    if writer is not None:
        writer.close()
    if score is not None and best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = len(history) - 1
    model.eval()
    return FitResult(model, history, best_epoch, time.perf_counter() - t0, resumed_from=start)


def load_checkpoint(checkpoint: Path, identity: dict | None = None) -> dict | None:
    """The state ``fit`` resumes from, or None: no file (or it vanished before it could be read: a
    concurrent run of the same identity finished and removed it), or one written for another identity
    (warned, never resumed). A file that cannot be read is an ``MKEError`` naming it."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        return None
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on a damaged file
        text = str(e).splitlines()[0] if str(e) else repr(e)
        raise MKEError(f"{checkpoint}: not a readable checkpoint ({type(e).__name__}: {text}); "
                       "delete it or pass --force") from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise MKEError(f"{checkpoint}: not a training checkpoint of this library; delete it or pass --force")
    if identity is not None and state.get("identity") != identity:
        warnings.warn(f"{checkpoint} was written for {state.get('identity') or 'an unnamed run'}, not "
                      f"{identity}; training from scratch (it is overwritten)", stacklevel=3)
        return None
    return state


def _tensorboard(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MKEError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(log_dir=str(log_dir))


def steps_per_run(n: int, cfg: TrainConfig) -> int:
    """Optimisation steps one ``fit`` makes on ``n`` samples (progress-bar length)."""
    return cfg.epochs * -(-n // cfg.batch_size)
