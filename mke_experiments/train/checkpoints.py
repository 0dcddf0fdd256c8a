"""Checkpoints of the training loop: one file per member with everything its training state holds (weights,
optimiser slice, every random state, history and best epoch so far), so that an interrupted run continues
exactly where it stopped. A file stores its member's identity (the run's, with ``CHECKPOINT_FORMAT``) and is
resumed only by a member of that identity (``load_checkpoint``)."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mke_experiments.train.optim import Optimizer
from mke_experiments.train.stacking import Generators, Stack
from mke_theory.core.errors import MKEError
from mke_theory.core.records import atomic_write

CHECKPOINT_FORMAT = 2  # 2: one file per member, optimiser state by parameter name


@dataclass
class Track:
    """A member's per-epoch history and the best epoch so far (model selection), as its checkpoint keeps them."""

    history: list = field(default_factory=list)  # one dict per epoch: loss, selection score
    best_score: float = -np.inf
    best_state: dict | None = None  # the best epoch's weights, on the CPU
    best_epoch: int = -1


def checkpoint_identity(member) -> dict | None:
    """The identity a member's checkpoint stores: the run's, and the checkpoint format, so that a file of
    an older format restarts cleanly (``load_checkpoint``) instead of failing to load."""
    return None if member.identity is None else dict(member.identity, checkpoint_format=CHECKPOINT_FORMAT)


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


def restore(member, s: int, state: dict, stack: Stack, opt: Optimizer, generators: Generators,
            track: Track) -> int:
    """Put member s's checkpoint ``state`` back into the loop's state; the epoch to continue from. A state
    that does not fit the run is an ``MKEError`` naming the file."""
    try:
        stack.load(s, state["model"])
        opt.load_member(stack.slot(s), state["optimizer"])
        track.history, track.best_score, track.best_state, track.best_epoch = (
            state["history"], state["best_score"], state["best_state"], state["best_epoch"])
        generators.restore(s, state)
        return state["epoch"] + 1
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise MKEError(f"{member.checkpoint}: the checkpoint does not fit this run ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else e!r}); delete it or pass --force") from None


def write_checkpoint(member, s: int, epoch: int, stack: Stack, opt: Optimizer, generators: Generators,
                     track: Track) -> None:
    """Member s's file after ``epoch``, written atomically (what ``restore`` reads)."""
    state = dict(identity=checkpoint_identity(member), epoch=epoch, history=track.history,
                 best_score=track.best_score, best_state=track.best_state, best_epoch=track.best_epoch,
                 model=stack.weights(s), optimizer=opt.member_state(stack.slot(s)), **generators.state(s))
    atomic_write(member.checkpoint, functools.partial(torch.save, state))
