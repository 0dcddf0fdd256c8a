"""The training loop every method uses: S ≥ 1 members (networks, each with its own seed, targets
and files) on shared inputs, and whether the perturbations T of the MKE objective are on.

Mini-batch training with Adam/AdamW/SGD at a learning rate set per epoch (``train.schedule``); bfloat16
autocast on CUDA; DistributedDataParallel when a process group is up (``torchrun``); checkpoints with every
random state, so that an interrupted run continues exactly where it stopped (written every
``train.checkpoint_every_s`` seconds and after the last epoch); model selection per member on validation
data, on the label-free agreement with its teacher on held-out unlabeled data, or the last epoch.

Small vector networks (``models.stackable``) train stacked, S members in one loop: their parameters
are stacked, one forward, backward and optimiser step serves them all, and every random draw of
member s (shuffling, T, dropout, modality dropout) comes from member s's own generators, its loss is
computed on its own logits and its optimiser state is its own slice, so that member s trains exactly
as it trains alone (S = 1; tested). Other networks (batch norm, DDP) train one member per fit, as
modules.

Read top to bottom: ``fit`` resumes each member from its checkpoint and trains the members that resume from one
epoch together (``_fit``), which sets up (``stacking.Stack``, ``stacking.Generators``, ``optim.Optimizer``,
``checkpoints.restore``) and runs epoch after epoch ``train_one_epoch`` (one ``train_step`` per batch), model
selection, early stopping, the history, TensorBoard and the log lines, and when due
``checkpoints.write_checkpoint``; then it hands back each member's selected weights.

Early stopping (``train.early_stopping``, a patience in epochs; 0: off): a member stops after the epoch at which
its selection score has not improved (``Selection``: strictly higher) for ``patience`` epochs; that epoch's history
entry says ``stopped_early: True`` and its checkpoint is written then. A stopped member is done: its best epoch's
weights are what it hands back, its history, selection and checkpoint never change again. Stacked members stop
each on its own: a stopped member still rides along in the shared forward and backward passes (its slice of the
stacked weights keeps moving but is never read again; the other members' arithmetic does not depend on it), and
the loop ends once every member stopped. The patience counter is ``epoch - best_epoch`` of the member's ``Track``,
which its checkpoint keeps, so a resumed run stops where an uninterrupted one does. Early stopping acts on model
selection; a fit without it (no validation data) is an ``MKEError``, except under ``train.selection=agreement``,
whose teacher cannot be selected (agreement with itself) and trains every epoch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from mke_experiments import perturbations
from mke_experiments.config import MKEConfig, TrainConfig
from mke_experiments.models import drawing, each_member
from mke_experiments.train.checkpoints import Track, checkpoint_identity, load_checkpoint, restore, write_checkpoint
from mke_experiments.train.loader import Batches, shard
from mke_experiments.train.optim import Optimizer, learning_rate
from mke_experiments.train.runtime import distributed
from mke_experiments.train.stacking import Generators, Stack, stacks
from mke_theory.core.errors import MKEError
from mke_theory.core.split import IGNORE as SPLIT_IGNORE
from mke_theory.objective import student_loss

IGNORE = SPLIT_IGNORE  # target value of pixels without a label (void); they add nothing to the loss


@dataclass
class Member:
    """One network ``fit`` trains, with what is its own: targets, seed, files and selection labels."""

    model: nn.Module
    targets: torch.Tensor  # (n, ...) as ``fit`` describes
    seed: int = 0  # shuffling, T, dropout and modality dropout draw from generators seeded with it
    checkpoint: Path | None = None  # written and resumed from (``fit``); None: none
    identity: dict | None = None  # what the run is, stored in the checkpoint (``load_checkpoint``)
    log_dir: Path | None = None  # TensorBoard folder for the per-epoch loss, selection score and learning rate
    select_on: object = None  # the labels ``Selection.metric`` scores this member's predictions against
    scalars: dict = field(default_factory=dict)  # written once to its TensorBoard at step 0 (e.g. the accuracy of
    # the pseudo labels it learns from, where D_u's labels are known)


@dataclass
class Selection:
    """Model selection after every epoch, higher is better: ``metric(predicted classes, member.select_on)``
    of each member's predictions on ``inputs`` (validation data, or a held-out tenth of D_u with the
    member's own teacher's predictions as labels); the best epoch's weights are kept."""

    inputs: tuple
    metric: Callable
    scores: bool = False  # the metric reads class scores (n, K), not predicted classes (e.g. mAP)
    name: str = "selection_score"  # what the score is, in log lines and TensorBoard (e.g. val_accuracy, agreement)


@dataclass
class FitResult:
    model: nn.Module  # the selected weights, in evaluation mode, unwrapped from DDP: a plain module
    history: list = field(default_factory=list)  # one dict per epoch: loss, selection score
    best_epoch: int = -1
    wall_time_s: float = 0.0  # of the whole fit divided by its members
    resumed_from: int = 0  # epochs that came from a checkpoint
    members: int = 1  # how many members trained in the same loop
    stopped_epoch: int | None = None  # the epoch after which early stopping stopped it (None: it did not)


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
        ``cfg.early_stopping`` stops a member on it (module docstring); ``cfg.log_every`` prints a line per member
        on stderr every that many epochs (``_log_lines``).
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
    states = [load_checkpoint(m.checkpoint, checkpoint_identity(m)) if m.checkpoint is not None and resume else None
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
    patience = _patience(cfg, selection)
    rank, world = distributed()
    models = [m.model for m in members]
    stacked = stacks(models, world)
    generators = Generators([m.seed for m in members], device, stacked)
    stack = Stack(models, device, stacked)
    opt = Optimizer(stack.params, cfg)
    tracks = [Track() for _ in members]
    start = 0
    for s, (m, state) in enumerate(zip(members, states)):
        if state is not None:
            start = restore(m, s, state, stack, opt, generators, tracks[s])
    stack.distribute(world)
    writers = [_tensorboard(m.log_dir) if m.log_dir is not None and rank == 0 else None for m in members]
    for m, writer in zip(members, writers):
        for key, value in (m.scalars.items() if writer is not None else ()):
            writer.add_scalar(key, value, 0)
    stopped = [bool(t.history) and bool(t.history[-1].get("stopped_early")) for t in tracks]  # resumed stopped
    loss = Loss(regularised, perturb, dict(loss_form=mke.loss_form, gamma=mke.gamma) if regularised else {},
                cfg.amp and device.type == "cuda", device)
    targets = torch.stack([m.targets for m in members]) if stacked else members[0].targets
    read = Batches(inputs, device, cfg.workers, cfg.prefetch)  # one loader (its workers) for every epoch
    read_selection = (Batches(selection.inputs, device, cfg.workers, cfg.prefetch)
                      if selection is not None else None)
    end = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    score_name = None if selection is None else selection.name
    t0 = last_write = time.perf_counter()
    for epoch in range(start, end):
        active = [s for s in range(len(members)) if not stopped[s]]  # a stopped member's epochs are not its own
        if not active:
            break
        t_epoch = time.perf_counter()
        opt.lr = learning_rate(cfg, epoch)  # of the epoch alone: a resumed run trains at the rate of an unbroken one
        entries = train_one_epoch(stack, opt, loss, read, targets, generators, epoch, cfg.batch_size, augment,
                                  progress, rank, world)
        if selection is not None:
            _select(stack, read_selection, selection, members, tracks, entries, epoch, active)
        stopping = [s for s in active if patience and epoch - tracks[s].best_epoch >= patience]
        for s in stopping:
            _stop(stack, tracks[s], entries[s], epoch, s)
            stopped[s] = True
        _log(tracks, entries, writers, epoch, active, opt.lr, score_name)
        if rank == 0 and cfg.log_every and ((epoch + 1) % cfg.log_every == 0 or stopping):
            _log_lines(members, tracks, entries, active, epoch, cfg, time.perf_counter() - t_epoch, stopping,
                       score_name, lr=opt.lr)
        due = time.perf_counter() - last_write >= cfg.checkpoint_every_s or epoch == end - 1 or all(stopped)
        if rank == 0 and (due or stopping):
            for s in active if due else stopping:  # a member that stops is written then, and never again
                if members[s].checkpoint is not None:
                    write_checkpoint(members[s], s, epoch, stack, opt, generators, tracks[s])
            last_write = time.perf_counter() if due else last_write
    for writer in writers:
        if writer is not None:
            writer.close()
    wall = (time.perf_counter() - t0) / len(members)
    return [_result(m, s, stack, tracks[s], selection is not None, wall, start) for s, m in enumerate(members)]


def _patience(cfg: TrainConfig, selection: Selection | None) -> int:
    """The early-stopping patience of a fit: ``cfg.early_stopping`` with model selection, 0 (off) without, where
    that is the teacher under ``train.selection=agreement`` (module docstring); otherwise an ``MKEError``."""
    if not cfg.early_stopping or selection is not None:
        return cfg.early_stopping
    if cfg.selection == "agreement":
        return 0
    raise MKEError(f"train.early_stopping stops on the model-selection score, and this run has none "
                   f"(train.selection={cfg.selection} without validation data): add a validation set, or leave "
                   f"train.early_stopping at 0")


def _stop(stack: Stack, track: Track, entry: dict, epoch: int, s: int) -> None:
    """Member s stops after ``epoch`` (early stopping): its entry says so. A member none of whose scores was a
    number (never selected) keeps this epoch's weights, as a fit without selection keeps its last."""
    entry["stopped_early"] = True
    if track.best_state is None:
        track.best_state, track.best_epoch = stack.copy(s), epoch


def train_one_epoch(stack: Stack, opt: Optimizer, loss: Loss, read: Batches, targets: torch.Tensor,
                    generators: Generators, epoch: int, batch_size: int, augment=None, progress=None,
                    rank: int = 0, world: int = 1) -> list[dict]:
    """One pass over the inputs ``read`` gives (``loader.Batches``), one ``train_step`` per batch, for every member
    of ``stack``; one ``dict(epoch=epoch, loss=mean batch loss)`` per member.

    Member s visits the samples in the order of a permutation drawn from its own shuffling generator
    (``generators.shuffles[s]``; under ``torchrun`` this rank's share of it, as ``DistributedSampler``), in
    batches of ``batch_size``; a last batch of one sample is left out (batch norm cannot train on it).
    ``targets`` are (S, n, ...) for S stacked members, (n, ...) for one network. ``augment(inputs, targets,
    generator)`` transforms each batch first, with the member's own generator; ``progress(S)`` is called after
    each step.
    """
    stack.template.train()
    n = len(read.inputs[0])
    order = torch.stack([torch.randperm(n, generator=g) for g in generators.shuffles])  # (S, n), the same on every rank
    order = shard(order, rank, world)  # this rank's equal share, as DistributedSampler
    batch_rows = [order[:, i:i + batch_size] for i in range(0, order.shape[1], batch_size)]
    if len(batch_rows) > 1 and batch_rows[-1].shape[1] == 1:
        batch_rows.pop()  # a last batch of one sample: batch norm cannot train on it
    draws = generators.for_members  # what T, augmentation and the models' random layers use
    totals, batches = [0.0] * stack.size, 0
    for idx, x in zip(batch_rows, read(idx if stack.stacked else idx[0] for idx in batch_rows)):
        # idx (S, B): each member's own batch; x its inputs on the device, (S, B, ...) stacked
        y = (targets[torch.arange(stack.size)[:, None], idx] if stack.stacked else targets[idx[0]]).to(stack.device)
        if augment is not None:
            *x, y = each_member(lambda t, g: _flat(augment(t[:-1], t[-1], g)), (*x, y), draws)
            x = tuple(x)
        if y.dtype != torch.int64 and not y.is_floating_point():
            y = y.long()
        losses = train_step(stack.net, opt, loss, x, y, draws)
        totals = [t + v for t, v in zip(totals, losses.detach().cpu().tolist())]
        batches += 1
        if progress is not None:
            progress(stack.size)
    return [dict(epoch=epoch, loss=total / max(batches, 1)) for total in totals]


def train_step(net, opt: Optimizer, loss: Loss, x: tuple, y: torch.Tensor, draws) -> torch.Tensor:
    """One optimisation step of every member on one batch: the forward passes and ``loss``, the backward pass, and
    ``opt``'s update of its parameters; returns the (S,) losses. ``x`` the batch's inputs, ``y`` its targets and
    ``draws`` the generator(s) T and the random layers draw from, stacked (S, B, ...) with a list of S
    generators for S stacked members, or (B, ...) with one generator for one network."""
    losses = loss(net, x, y, draws)
    for p in opt.params.values():
        p.grad = None
    losses.sum().backward()  # member s's gradient is that of its own loss: d(sum)/d(loss_s) = 1
    opt.step()
    return losses


@dataclass
class Loss:
    """Every member's loss on one batch, on its own logits (``student_loss``): with the perturbation T
    (``perturb``) and the MKE loss form (``loss_kw``: ``loss_form``, ``gamma``) when ``regularised``, plain
    cross entropy on clean inputs otherwise; in bfloat16 autocast on ``device`` when ``amp``."""

    regularised: bool = False
    perturb: Callable | None = None  # perturb(inputs, generator) -> inputs
    loss_kw: dict = field(default_factory=dict)
    amp: bool = False
    device: torch.device = torch.device("cpu")

    def __call__(self, net, x: tuple, y: torch.Tensor, draws) -> torch.Tensor:
        """(S,) the loss of each member; ``draws`` a list of S generators (stacked members) or one (one network).
        One forward per call of ``forward`` serves every member; T is drawn member by member, dropout inside
        ``drawing``."""
        logits = {}

        def forward(perturbed: bool) -> torch.Tensor:
            if perturbed not in logits:
                inputs = each_member(self.perturb, x, draws) if perturbed else x
                logits[perturbed] = net(*inputs).float()
            return logits[perturbed]

        with drawing(draws), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            if not isinstance(draws, list):
                return student_loss(forward, y, regularised=self.regularised, class_dim=1, ignore_index=IGNORE,
                                    **self.loss_kw)[None]
            return torch.stack([student_loss(lambda p, s=s: forward(p)[s], y[s], regularised=self.regularised,
                                             class_dim=1, ignore_index=IGNORE, **self.loss_kw)
                                for s in range(len(draws))])


def _select(stack: Stack, read: Batches, selection: Selection, members: list[Member], tracks: list[Track],
            entries: list[dict], epoch: int, active=None) -> None:
    """Model selection after ``epoch``: each member's (of ``active``, default all) score goes into its entry, and a
    score better than its best so far keeps this epoch's weights."""
    predicted = stack.predict(read, len(selection.inputs[0]), scores=selection.scores)
    for s in range(len(members)) if active is None else active:
        m, track = members[s], tracks[s]
        value = float(selection.metric(predicted[s], m.select_on))
        entries[s]["selection_score"] = value
        if value > track.best_score:
            track.best_score, track.best_epoch = value, epoch
            track.best_state = stack.copy(s)


def _log(tracks: list[Track], entries: list[dict], writers: list, epoch: int, active=None, lr: float | None = None,
         score_name: str | None = None) -> None:
    """Each member's (of ``active``, default all) entry into its history and to its TensorBoard writer (None:
    none): its loss and ``selection_score``, the score again under its name (``selection/<score_name>``, e.g.
    ``selection/val_accuracy``) and the learning rate ``lr``."""
    for s in range(len(tracks)) if active is None else active:
        track, entry, writer = tracks[s], entries[s], writers[s]
        track.history.append(entry)
        if writer is None:
            continue
        for key, value in entry.items():
            if key not in ("epoch", "stopped_early"):
                writer.add_scalar(key, value, epoch)
        if score_name is not None and "selection_score" in entry:
            writer.add_scalar(f"selection/{score_name}", entry["selection_score"], epoch)
        if lr is not None:
            writer.add_scalar("lr", lr, epoch)


def _log_lines(members: list[Member], tracks: list[Track], entries: list[dict], active: list[int], epoch: int,
               cfg: TrainConfig, seconds: float, stopping: list[int], score_name: str | None, stream=None,
               lr: float | None = None) -> None:
    """One line per member of ``active`` on ``stream`` (default stderr): who (method and seed), the epoch (counted
    from 1) of ``cfg.epochs``, the training loss, the selection score with the best so far, the learning rate
    (``lr``, this epoch's; default ``cfg.lr``) and the seconds of this epoch (of the whole loop, for stacked
    members), and whether it stopped early. On a terminal the line first clears the one a progress bar is
    drawing, which draws itself again below."""
    stream = sys.stderr if stream is None else stream
    try:
        clear = "\r\x1b[K" if stream.isatty() else ""
    except (AttributeError, ValueError):
        clear = ""
    for s in active:
        m, track, entry = members[s], tracks[s], entries[s]
        who = (m.identity or {}).get("method", f"member {s}")
        line = f"{who} seed {m.seed}: epoch {epoch + 1}/{cfg.epochs}  loss {entry['loss']:.4f}"
        if "selection_score" in entry:
            line += (f"  {score_name} {entry['selection_score']:.4f} (best {track.best_score:.4f} at epoch "
                     f"{track.best_epoch + 1})")
        line += f"  lr {cfg.lr if lr is None else lr:g}  {seconds:.2f} s/epoch"
        if s in stopping:
            line += f"  stopped early: no improvement for {cfg.early_stopping} epochs"
        stream.write(clear + line + "\n")
    stream.flush()


def _result(member: Member, s: int, stack: Stack, track: Track, selected: bool, wall: float,
            start: int) -> FitResult:
    """Member s's network with the selected epoch's weights (without selection, or none selected: the last
    epoch's), in evaluation mode."""
    if selected and track.best_state is not None:
        member.model.load_state_dict(track.best_state)
    else:
        track.best_epoch = len(track.history) - 1
        if stack.stacked:
            member.model.load_state_dict(stack.weights(s))
    member.model.eval()
    stopped = track.history[-1]["epoch"] if track.history and track.history[-1].get("stopped_early") else None
    return FitResult(member.model, track.history, track.best_epoch, wall, resumed_from=start, members=stack.size,
                     stopped_epoch=stopped)


def _flat(pair: tuple) -> tuple:
    inputs, targets = pair
    return (*inputs, targets)


def _tensorboard(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MKEError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(log_dir=str(log_dir))


def steps_per_run(n: int, cfg: TrainConfig) -> int:
    """Optimisation steps one ``fit`` makes on ``n`` samples (progress-bar length)."""
    return cfg.epochs * -(-n // cfg.batch_size)
