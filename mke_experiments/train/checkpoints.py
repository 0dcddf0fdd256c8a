"""Checkpoints of the training loop: one file per member with everything its training state holds (weights,
optimiser slice, every random state, history and best epoch so far), so that an interrupted run continues
exactly where it stopped. A file stores its member's identity (the run's, with ``CHECKPOINT_FORMAT``) and is
resumed only by a member of that identity (``load_checkpoint``).

A checkpoint holds tensors and plain values only (state dicts, the optimiser's tensors, the generators' states as
tensors, numbers, strings, lists and dicts) and is read with ``torch.load(..., weights_only=True)``
(``load_plain``, which model files use too): opening a file, whoever wrote it, never runs code. A file that holds
other Python objects (written by an older version of the library, or crafted) is not opened."""

from __future__ import annotations

import functools
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mke_experiments.train.optim import Optimizer
from mke_experiments.train.stacking import Generators, Stack
from mke_theory.core.errors import MKEError
from mke_theory.core.records import atomic_write

CHECKPOINT_FORMAT = 2  # 2: one file per member, optimiser state by parameter name


class ObjectsInFile(MKEError):
    """A file ``torch.load(..., weights_only=True)`` refuses: a well-formed pickle that holds Python objects other
    than tensors and plain values. ``names``: the classes and functions it names (read, never called)."""

    def __init__(self, path, names: list[str]):
        self.path, self.names = path, names
        ordinary = ("torch.", "collections.", "__builtin__.", "builtins.")  # torch's own, not what alarms
        shown = ", ".join(dict.fromkeys(n for n in names if not n.startswith(ordinary)))
        super().__init__(f"{path} holds Python objects{f' ({shown[:200]})' if shown else ''}, not only tensors "
                         f"and plain values")


def load_plain(path):
    """What ``torch.save`` wrote to ``path``, read with ``weights_only=True``: tensors and plain values only, so that
    nothing in the file can run code. A file that holds other objects is ``ObjectsInFile`` (never unpickled); a
    missing one ``FileNotFoundError``; a damaged one what torch raises."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        names = pickled_names(path)
        if names is None:  # not a well-formed pickle: damaged
            raise
        raise ObjectsInFile(path, names) from None


def pickled_names(path) -> list[str] | None:
    """The globals (``module.name``) the pickle of a torch file names, read by ``pickletools`` (which executes
    nothing); None when it is not a well-formed pickle."""
    import pickletools

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                data = archive.read(next(n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl"))
        else:
            data = Path(path).read_bytes()
        names, strings = [], []
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL":
                names.append(".".join(strings[-2:]))
            elif isinstance(arg, str):
                strings.append(arg)
        return names
    except (ValueError, KeyError, StopIteration, zipfile.BadZipFile, OSError, EOFError):
        return None


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
    concurrent run of the same identity finished and removed it), or one written for another identity or
    holding Python objects (an older format, or crafted: warned, never opened nor resumed). A file that cannot be
    read is an ``MKEError`` naming it."""
    try:
        state = load_plain(checkpoint)
    except FileNotFoundError:
        return None
    except ObjectsInFile as e:
        warnings.warn(f"{e} (a checkpoint of an older version of this library, or not written by it); it is not "
                      f"opened, as that could run code: training from scratch (it is overwritten)", stacklevel=3)
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
