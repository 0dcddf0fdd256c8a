"""The layers that let small vector networks train as S stacked members in one loop (``train.fit``).

Their parameters are stacked to ``(S, ...)`` (``train.stacking.Stack``) and the same module runs on inputs
``(S, B, ...)`` through ``torch.func.functional_call``: ``Linear`` multiplies member by member (``baddbmm``),
and the random layers (``Dropout``, the ``Student``'s modality dropout) draw each member's masks from that
member's own generator, which the loop hands them with ``drawing``. Member s of a stack therefore computes,
bit for bit, what it computes alone (tested). ``stackable`` says whether a network is built only of such
layers; the networks of ``mke_experiments.models`` that are join the list with ``runs_stacked``.
"""

from __future__ import annotations

import contextlib
import contextvars

import torch
from torch import nn

_DRAWING = contextvars.ContextVar("drawing", default=None)  # what ``drawing`` set while fit trains


@contextlib.contextmanager
def drawing(generators):
    """Within the block, the random layers of this module's networks draw from ``generators``: a list of
    S generators for S stacked members (tensors ``(S, B, ...)``; member s draws from ``generators[s]``),
    or one generator for one network. Outside any block (a network trained by other code) they draw
    from the global generator, as torch's layers do."""
    token = _DRAWING.set(generators)
    try:
        yield
    finally:
        _DRAWING.reset(token)


def generators():
    """The generator(s) of the enclosing ``drawing`` block; None outside any."""
    return _DRAWING.get()


def each_member(draw, tensors: tuple, generators) -> tuple:
    """``draw(tensors, generator) -> tuple of tensors`` once per member, with that member's generator and
    its slices of ``tensors``, the results stacked again (``generators`` a list, as in ``drawing``), so
    that the draws and the arithmetic of member s are those of member s alone; one call for one network."""
    if not isinstance(generators, list):
        return draw(tensors, generators)
    members = [draw(tuple(t[s] for t in tensors), g) for s, g in enumerate(generators)]
    return tuple(torch.stack(parts) for parts in zip(*members))


def _uniform_like(x: torch.Tensor) -> torch.Tensor:
    """U[0, 1) numbers of ``x``'s shape on its device, from the generators of ``drawing``: member s's
    slice from member s's generator, drawn as member s alone draws them."""
    generators = _DRAWING.get()
    if not isinstance(generators, list):
        return torch.rand(x.shape, generator=generators, device=x.device)
    u = torch.empty(x.shape, device=x.device)
    for s, g in enumerate(generators):
        torch.rand(x.shape[1:], generator=g, out=u[s])
    return u


class Linear(nn.Linear):
    """``nn.Linear`` that also runs stacked members: weight ``(S, out, in)``, bias ``(S, out)`` and input
    ``(S, B, in)`` give ``(S, B, out)`` by one ``baddbmm``, member by member the numbers of ``F.linear``."""

    def forward(self, x):
        if self.weight.dim() == 2:
            return super().forward(x)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class Dropout(nn.Module):
    """Inverted dropout, x · keep / (1 − p), whose masks come from the generators of ``drawing``: the one
    dropout of the real-data networks."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        return x * _uniform_like(x).ge_(self.p).div_(1.0 - self.p).to(x.dtype)  # keep / (1 − p), in place

    def extra_repr(self) -> str:
        return f"p={self.p}"


STACKABLE = [nn.Sequential, Linear, nn.ReLU, Dropout]  # and the networks ``runs_stacked`` adds


def runs_stacked(cls: type) -> type:
    """Class decorator: modules of exactly this class (not its subclasses) may be part of a stack; their
    own computation must be built of the layers above and ``drawing``'s generators."""
    STACKABLE.append(cls)
    return cls


def stackable(model: nn.Module) -> bool:
    """Whether ``model`` can train as a member of a stack: built only of the layers in ``STACKABLE``, which run
    on stacked parameters (no buffers such as batch norm's running statistics)."""
    return all(type(m) in STACKABLE for m in model.modules())
