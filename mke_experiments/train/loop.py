"""The training loop every method uses: S ≥ 1 members (networks, each with its own seed, targets
and files) on shared inputs, and whether the perturbations T of the MKE objective are on.

Mini-batch training with Adam/SGD; bfloat16 autocast on CUDA; DistributedDataParallel when a
process group is up (``torchrun``); checkpoints with every random state, so that an interrupted
run continues exactly where it stopped (written every ``train.checkpoint_every_s`` seconds and
after the last epoch); model selection per member on validation data, on the label-free agreement
with its teacher on held-out unlabeled data, or the last epoch.

Small vector networks (``models.stackable``) train stacked, S members in one loop: their parameters
are stacked, one forward, backward and optimiser step serves them all, and every random draw of
member s (shuffling, T, dropout, modality dropout) comes from member s's own generators, its loss is
computed on its own logits and its optimiser state is its own slice, so that member s trains exactly
as it trains alone (S = 1; tested). Other networks (batch norm, DDP) train one member per fit, as
modules.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mke_experiments import perturbations
from mke_experiments.config import MKEConfig, TrainConfig
from mke_experiments.models import drawing, each_member, stackable
from mke_experiments.train.loader import Batches, index_batches, shard
from mke_experiments.train.runtime import distributed, resolve_device  # noqa: F401 (re-exported)
from mke_theory.core.errors import MKEError
from mke_theory.core.records import atomic_write
from mke_theory.core.split import IGNORE as SPLIT_IGNORE
from mke_theory.objective import student_loss

CHECKPOINT_FORMAT = 2  # 2: one file per member, optimiser state by parameter name


@dataclass
class Member:
    """One network ``fit`` trains, with what is its own: targets, seed, files and selection labels."""

    model: nn.Module
    targets: torch.Tensor  # (n, ...) as ``fit`` describes
    seed: int = 0  # shuffling, T, dropout and modality dropout draw from generators seeded with it
    checkpoint: Path | None = None  # written and resumed from (``fit``); None: none
    identity: dict | None = None  # what the run is, stored in the checkpoint (``load_checkpoint``)
    log_dir: Path | None = None  # TensorBoard folder for the per-epoch loss and selection score
    select_on: object = None  # the labels ``Selection.metric`` scores this member's predictions against


@dataclass
class Selection:
    """Model selection after every epoch, higher is better: ``metric(predicted classes, member.select_on)``
    of each member's predictions on ``inputs`` (validation data, or a held-out tenth of D_u with the
    member's own teacher's predictions as labels); the best epoch's weights are kept."""

    inputs: tuple
    metric: Callable
    scores: bool = False  # the metric reads class scores (n, K), not predicted classes (e.g. mAP)


@dataclass
class FitResult:
    model: nn.Module  # the selected weights, in evaluation mode, unwrapped from DDP: a plain module
    history: list = field(default_factory=list)  # one dict per epoch: loss, selection score
    best_epoch: int = -1
    wall_time_s: float = 0.0  # of the whole fit divided by its members
    resumed_from: int = 0  # epochs that came from a checkpoint
    members: int = 1  # how many members trained in the same loop


def _batches(inputs: tuple, device, batch_size: int, workers: int):
    """The inputs in consecutive batches on ``device`` (``loader.Batches``)."""
    return Batches(inputs, device, workers)(index_batches(len(inputs[0]), batch_size))


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: tuple, device, batch_size: int = 64, workers: int = 0) -> torch.Tensor:
    """(n, K, ...) logits on CPU, evaluation mode, in batches (``workers`` loader processes for cache rows)."""
    model.eval()
    return torch.cat([model(*x).float().cpu() for x in _batches(inputs, device, batch_size, workers)])


@torch.no_grad()
def predict(model: nn.Module, inputs: tuple, device, batch_size: int = 64, confidence: bool = False,
            workers: int = 0):
    """(n, ...) predicted classes on CPU (argmax over the class axis 1), batch by batch.

    Unlike ``predict_logits`` it never holds all logits: dense predictions stay small. With
    ``confidence`` it returns ``(classes, top-class softmax probability as float16)``.
    """
    model.eval()
    classes, top = [], []
    for x in _batches(inputs, device, batch_size, workers):
        logits = model(*x)
        classes.append(logits.argmax(1).to(torch.int16).cpu())
        if confidence:
            top.append(torch.softmax(logits.float(), dim=1).amax(dim=1).half().cpu())
    return (torch.cat(classes), torch.cat(top)) if confidence else torch.cat(classes)


IGNORE = SPLIT_IGNORE  # target value of pixels without a label (void); they add nothing to the loss


def fit(members: list[Member], inputs: tuple, cfg: TrainConfig, mke: MKEConfig | None = None,
        regularised: bool = False, device=torch.device("cpu"), selection: Selection | None = None,
        progress=None, stop_after: int | None = None, augment=None, perturb=None,
        resume: bool = True) -> list[FitResult]:
    """Train every member's ``model(*inputs)`` on its ``targets``; one ``FitResult`` per member.

    Parameters
    ----------
    members : S ≥ 1 networks of one architecture; S > 1 only for stackable ones (``models.stackable``)
        in one process, which train stacked (module docstring); a single other network trains as a module.
    inputs : tuple, one per modality, shared by the members: CPU tensors (n, ...), sliced directly, or rows of
        a prepared cache (``LazyRows``), read batch by batch by a DataLoader with ``cfg.workers`` processes
        (``loader.Batches``); either way the batches hold the same rows in the same order.
    targets (of each member) : class indices (n,) or per pixel (n, H, W) with ``IGNORE`` for void, or
        soft labels with the class axis second: (n, K) or (n, K, H, W).
    regularised : apply the perturbations T (``perturb``, the model's dropout) and the MKE loss
        form of ``mke``; otherwise plain cross entropy on clean inputs.
    selection : per-member model selection after every epoch (``Selection``); None: the last epoch.
    resume : False trains from scratch whatever the checkpoints hold (``--force``), overwriting them.
    stop_after : stop (as if killed) after this many epochs, with a checkpoint; for resume tests.
    augment : ``augment(inputs, targets, generator) -> (inputs, targets)`` applied to every batch
        (e.g. a joint random crop and flip of images and label maps); None: no augmentation.
    perturb : ``perturb(inputs, generator) -> inputs``, the perturbation T of regularised runs
        (``mke_experiments.perturbations``); default: input noise of strength ``mke.input_noise``.

    Checkpoints: a member's file is written when ``cfg.checkpoint_every_s`` passed since the last
    write, after the last epoch and at ``stop_after``, and resumed from if it exists and was written
    for the member's ``identity``; one that vanished before it could be read is absent (a concurrent
    run finished). A checkpoint of another identity (copied in, renamed, or from an older version) is
    never resumed: that member restarts from scratch with a warning and overwrites it, which is what a
    fresh run of this identity would do anyway. One that cannot be read is an ``MKEError`` naming it
    ("delete it or pass --force"). Members resumed from different epochs (e.g. an earlier run with other
    seeds) train in one loop per epoch they resume from.

    Randomness: member s shuffles with a CPU generator seeded with its seed, and draws T, the
    augmentation, dropout and modality dropout from a generator on ``device`` seeded with it (on the
    CPU the same one, so CPU runs draw one stream per member); all states are checkpointed. Torch
    layers of other networks that draw from the global generator (e.g. ``nn.Dropout2d``) get it
    seeded and checkpointed too.
    """
    if regularised and perturb is None:
        perturb = perturbations.input_noise(mke.input_noise)
    states = [load_checkpoint(m.checkpoint, _identity(m)) if m.checkpoint is not None and resume else None
              for m in members]
    start_of = [0 if state is None else state["epoch"] + 1 for state in states]
    results = [None] * len(members)
    for start in sorted(set(start_of)):
        group = [i for i, s in enumerate(start_of) if s == start]
        fitted = _fit([members[i] for i in group], [states[i] for i in group], inputs, cfg, mke, regularised,
                      device, selection, progress, stop_after, augment, perturb)
        for i, result in zip(group, fitted):
            results[i] = result
    return results


def _fit(members, states, inputs, cfg, mke, regularised, device, selection, progress, stop_after, augment,
         perturb) -> list[FitResult]:
    """``fit`` for members that all start at the same epoch (``states``: their checkpoints or None)."""
    rank, world = distributed()
    n_members = len(members)
    stacked = world == 1 and all(stackable(m.model) for m in members)
    if n_members > 1 and not stacked:
        raise MKEError("only small vector networks (models.stackable) train several members at once, in one process")
    shuffles = [torch.Generator().manual_seed(m.seed) for m in members]
    draws = shuffles if device.type == "cpu" else [torch.Generator(device).manual_seed(m.seed) for m in members]
    member_draws = draws if stacked else draws[0]  # what T, augmentation and the models' random layers use
    if not stacked:
        torch.manual_seed(members[0].seed)  # torch layers that draw from the global generator
    for m in members:
        m.model.to(device)
    template = members[0].model
    if stacked:  # (S, ...) leaves; the template runs them through torch.func.functional_call
        params = torch.func.stack_module_state([m.model for m in members])[0]

        def net(*x):
            return torch.func.functional_call(template, params, x)
    else:
        params = dict(template.named_parameters())
    opt = _Optimizer(params, cfg)
    histories = [[] for _ in members]
    best_scores, best_states, best_epochs = [-np.inf] * n_members, [None] * n_members, [-1] * n_members
    start = 0
    for s, (m, state) in enumerate(zip(members, states)):
        if state is None:
            continue
        try:
            if stacked:
                _load_member(params, s, state["model"])
            else:
                template.load_state_dict(state["model"])
            opt.load_member(s if stacked else None, state["optimizer"])
            histories[s], best_scores[s], best_states[s], best_epochs[s] = (
                state["history"], state["best_score"], state["best_state"], state["best_epoch"])
            shuffles[s].set_state(state["generator"])
            if draws is not shuffles:
                draws[s].set_state(state["device_generator"])
            if not stacked:
                torch.set_rng_state(state["torch_rng"])
                if device.type == "cuda":
                    torch.cuda.set_rng_state(state["cuda_rng"], device)
            start = state["epoch"] + 1
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise MKEError(f"{m.checkpoint}: the checkpoint does not fit this run ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else e!r}); delete it or pass --force") from None
    if not stacked:
        net = nn.parallel.DistributedDataParallel(template) if world > 1 else template
    writers = [_tensorboard(m.log_dir) if m.log_dir is not None and rank == 0 else None for m in members]
    use_amp = cfg.amp and device.type == "cuda"
    targets = torch.stack([m.targets for m in members]) if stacked else members[0].targets
    loss_kw = dict(loss_form=mke.loss_form, gamma=mke.gamma) if regularised else {}
    n = len(inputs[0])
    read = Batches(inputs, device, cfg.workers, cfg.prefetch)  # one loader (its workers) for every epoch
    read_selection = (Batches(selection.inputs, device, cfg.workers, cfg.prefetch)
                      if selection is not None else None)
    t0 = last_write = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        if stop_after is not None and epoch >= stop_after:
            break
        template.train()
        order = torch.stack([torch.randperm(n, generator=g) for g in shuffles])  # (S, n), the same on every rank
        order = shard(order, rank, world)  # this rank's equal share, as DistributedSampler
        batch_rows = [order[:, i:i + cfg.batch_size] for i in range(0, order.shape[1], cfg.batch_size)]
        if len(batch_rows) > 1 and batch_rows[-1].shape[1] == 1:
            batch_rows.pop()  # a last batch of one sample: batch norm cannot train on it
        totals, batches = [0.0] * n_members, 0
        for idx, x in zip(batch_rows, read(idx if stacked else idx[0] for idx in batch_rows)):
            # idx (S, B): each member's own batch; x its inputs on the device, (S, B, ...) stacked
            y = (targets[torch.arange(n_members)[:, None], idx] if stacked else targets[idx[0]]).to(device)
            if augment is not None:
                *x, y = each_member(lambda t, g: _flat(augment(t[:-1], t[-1], g)), (*x, y), member_draws)
                x = tuple(x)
            if y.dtype != torch.int64 and not y.is_floating_point():
                y = y.long()
            losses = _losses(net, x, y, member_draws, perturb, regularised, loss_kw, use_amp, device)
            for p in params.values():
                p.grad = None
            losses.sum().backward()  # member s's gradient is that of its own loss: d(sum)/d(loss_s) = 1
            opt.step()
            totals = [t + v for t, v in zip(totals, losses.detach().cpu().tolist())]
            batches += 1
            if progress is not None:
                progress(n_members)
        entries = [dict(epoch=epoch, loss=total / max(batches, 1)) for total in totals]
        if selection is not None:
            predicted = _classes(net, template, read_selection, len(selection.inputs[0]), n_members if stacked else 0,
                                 scores=selection.scores)
            for s, m in enumerate(members):
                value = float(selection.metric(predicted[s], m.select_on))
                entries[s]["selection_score"] = value
                if value > best_scores[s]:
                    best_scores[s], best_epochs[s] = value, epoch
                    best_states[s] = _member_weights(params, s) if stacked else _cpu_state(template)
        for history, entry, writer in zip(histories, entries, writers):
            history.append(entry)
            if writer is not None:
                for key, value in entry.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch)
        now = time.perf_counter()
        due = (now - last_write >= cfg.checkpoint_every_s or epoch == cfg.epochs - 1
               or (stop_after is not None and epoch == stop_after - 1))
        if due and rank == 0:
            for s, m in enumerate(members):
                if m.checkpoint is None:
                    continue
                state = dict(identity=_identity(m), epoch=epoch, history=histories[s], best_score=best_scores[s],
                             best_state=best_states[s], best_epoch=best_epochs[s],
                             model=_member_weights(params, s) if stacked else template.state_dict(),
                             optimizer=opt.member_state(s if stacked else None), generator=shuffles[s].get_state())
                if draws is not shuffles:
                    state["device_generator"] = draws[s].get_state()
                if not stacked:
                    state["torch_rng"] = torch.get_rng_state()
                    if device.type == "cuda":
                        state["cuda_rng"] = torch.cuda.get_rng_state(device)
                atomic_write(m.checkpoint, functools.partial(torch.save, state))
            last_write = time.perf_counter()
    for writer in writers:
        if writer is not None:
            writer.close()
    wall = (time.perf_counter() - t0) / n_members
    results = []
    for s, m in enumerate(members):
        if selection is not None and best_states[s] is not None:
            m.model.load_state_dict(best_states[s])
        else:
            best_epochs[s] = len(histories[s]) - 1
            if stacked:
                m.model.load_state_dict(_member_weights(params, s))
        m.model.eval()
        results.append(FitResult(m.model, histories[s], best_epochs[s], wall, resumed_from=start,
                                 members=n_members))
    return results


def _losses(net, x, y, draws, perturb, regularised, loss_kw, use_amp, device) -> torch.Tensor:
    """(S,) the loss of each member on its own logits of one batch (``student_loss``); ``draws`` a list of
    S generators (stacked members) or one (one network). One forward per call of ``forward`` serves
    every member; T is drawn member by member, dropout inside ``drawing``."""
    logits = {}

    def forward(perturbed: bool) -> torch.Tensor:
        if perturbed not in logits:
            inputs = each_member(perturb, x, draws) if perturbed else x
            logits[perturbed] = net(*inputs).float()
        return logits[perturbed]

    with drawing(draws), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        if not isinstance(draws, list):
            return student_loss(forward, y, regularised=regularised, class_dim=1, ignore_index=IGNORE,
                                **loss_kw)[None]
        return torch.stack([student_loss(lambda p, s=s: forward(p)[s], y[s], regularised=regularised, class_dim=1,
                                         ignore_index=IGNORE, **loss_kw) for s in range(len(draws))])


def _identity(member: Member) -> dict | None:
    """The identity a member's checkpoint stores: the run's, and the checkpoint format, so that a file of
    an older format restarts cleanly (``load_checkpoint``) instead of failing to load."""
    return None if member.identity is None else dict(member.identity, checkpoint_format=CHECKPOINT_FORMAT)


def _flat(pair: tuple) -> tuple:
    inputs, targets = pair
    return (*inputs, targets)


@torch.no_grad()
def _classes(net, template: nn.Module, read: Batches, n: int, members: int, batch_size: int = 64,
             scores: bool = False):
    """Predicted classes on the ``n`` inputs ``read`` gives, in evaluation mode: (1, n, ...) of one network
    (``members`` 0), or (S, n, ...) of S stacked members, which all see the same inputs; with ``scores`` the
    float32 class scores (logits) instead, the class axis after n."""
    template.eval()
    out = []
    for x in read(index_batches(n, batch_size)):
        if members:
            logits, axis = net(*(t.expand(members, *t.shape) for t in x)), 2
        else:
            logits, axis = template(*x)[None], 2
        out.append(logits.float().cpu() if scores else logits.argmax(axis).to(torch.int16).cpu())
    return torch.cat(out, dim=1)


def _member_weights(params: dict, s: int) -> dict:
    """The state dict of member s of stacked ``params``, on the CPU."""
    return {name: p[s].detach().cpu().clone() for name, p in params.items()}


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _load_member(params: dict, s: int, state: dict) -> None:
    """Copy a member's state dict into slot s of stacked ``params``; names and shapes must match."""
    if set(state) != set(params):
        raise KeyError(f"parameters {sorted(set(state) ^ set(params))[:3]} differ")
    with torch.no_grad():
        for name, p in params.items():
            if tuple(state[name].shape) != tuple(p.shape[1:]):
                raise ValueError(f"{name} has shape {tuple(state[name].shape)}, not {tuple(p.shape[1:])}")
            p[s].copy_(state[name])


class _Optimizer:
    """Adam, or SGD with momentum 0.9, over named tensors, through torch's own update functions
    (``torch.optim.adam.adam``, ``torch.optim.sgd.sgd``: the arithmetic of ``torch.optim.Adam`` and
    ``SGD``). The updates are element-wise, so stacked members step exactly as each alone (no
    coupling across members such as global-norm clipping), and the state is kept by parameter name, so
    a member's share of it is one slice (its checkpoint). Constructing a ``torch.optim`` optimiser
    would import ``torch._dynamo`` (≈1.3 s at start-up)."""

    def __init__(self, params: dict, cfg: TrainConfig):
        self.params, self.cfg = params, cfg
        self.state = {}  # name -> Adam: step, exp_avg, exp_avg_sq; SGD: momentum_buffer

    @torch.no_grad()
    def step(self) -> None:
        from torch.optim.adam import adam
        from torch.optim.sgd import sgd

        names = [name for name, p in self.params.items() if p.grad is not None]
        params, grads = [self.params[k] for k in names], [self.params[k].grad for k in names]
        cfg = self.cfg
        if cfg.optimizer == "adam":
            for name, p in zip(names, params):
                if name not in self.state:
                    self.state[name] = dict(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p),
                                            exp_avg_sq=torch.zeros_like(p))
            st = [self.state[k] for k in names]
            adam(params, grads, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], [], [s["step"] for s in st],
                 amsgrad=False, beta1=0.9, beta2=0.999, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=1e-8,
                 maximize=False)
        else:
            buffers = [self.state.get(k, {}).get("momentum_buffer") for k in names]
            sgd(params, grads, buffers, weight_decay=cfg.weight_decay, momentum=0.9, lr=cfg.lr, dampening=0,
                nesterov=False, maximize=False)
            self.state.update({k: dict(momentum_buffer=b) for k, b in zip(names, buffers)})

    def member_state(self, s: int | None) -> dict:
        """name -> state of member s (its slice of stacked tensors; None: all of one network), on the CPU."""
        def part(key, v):
            return v.clone() if key == "step" else (v if s is None else v[s]).detach().cpu().clone()

        return {name: {k: part(k, v) for k, v in st.items()} for name, st in self.state.items()}

    def load_member(self, s: int | None, state: dict) -> None:
        """Restore what ``member_state(s)`` returned (names and shapes must match)."""
        for name, st in state.items():
            p = self.params[name]
            mine = self.state.setdefault(name, {})
            for key, v in st.items():
                if key == "step":  # the same count for every member of a stack
                    mine[key] = v.clone()
                    continue
                if tuple(v.shape) != tuple(p.shape if s is None else p.shape[1:]):
                    raise ValueError(f"optimiser state {name}.{key} has shape {tuple(v.shape)}")
                if s is None:
                    mine[key] = v.to(p.device).clone()
                else:
                    mine.setdefault(key, torch.zeros_like(p))[s].copy_(v)


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
