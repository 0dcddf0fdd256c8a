"""What the members that one loop trains share and what is each member's own: their networks (``Stack``: S
stackable networks as one set of stacked parameters, or one network as itself) and their random streams
(``Generators``). Member s's weights, optimiser slice and generators are its own, so that it trains exactly as
it trains alone (``train.loop``'s module docstring)."""

from __future__ import annotations

import torch
from torch import nn

from mke_experiments.models import stackable
from mke_experiments.train.loader import Batches, index_batches
from mke_theory.core.errors import MKEError


def stacks(models: list[nn.Module], world: int) -> bool:
    """Whether ``models`` train stacked: all stackable (``models.stackable``), in one process. Several members
    that cannot is an error."""
    stacked = world == 1 and all(stackable(m) for m in models)
    if len(models) > 1 and not stacked:
        raise MKEError("only small vector networks (models.stackable) train several members at once, in one process")
    return stacked


def stack_module_state(models: list[nn.Module]) -> dict:
    """name -> (S, ...) parameters of S modules of one architecture (``torch.func.stack_module_state``)."""
    return torch.func.stack_module_state(models)[0]


def member_weights(params: dict, s: int) -> dict:
    """The state dict of member s of stacked ``params``, on the CPU."""
    return {name: p[s].detach().cpu().clone() for name, p in params.items()}


def cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_member(params: dict, s: int, state: dict) -> None:
    """Copy a member's state dict into slot s of stacked ``params``; names and shapes must match."""
    if set(state) != set(params):
        raise KeyError(f"parameters {sorted(set(state) ^ set(params))[:3]} differ")
    with torch.no_grad():
        for name, p in params.items():
            if tuple(state[name].shape) != tuple(p.shape[1:]):
                raise ValueError(f"{name} has shape {tuple(state[name].shape)}, not {tuple(p.shape[1:])}")
            p[s].copy_(state[name])


class Stack:
    """The networks of one loop, on ``device``: S stacked members, whose ``params`` are ``(S, ...)`` leaves the
    first member's module (``template``) runs through ``torch.func.functional_call``; or one network, whose
    ``params`` are its own (``net`` is wrapped in ``DistributedDataParallel`` by ``distribute``)."""

    def __init__(self, models: list[nn.Module], device, stacked: bool):
        for m in models:
            m.to(device)
        self.template, self.stacked, self.size, self.device = models[0], stacked, len(models), device
        if stacked:  # (S, ...) leaves; the template runs them through torch.func.functional_call
            self.params = stack_module_state(models)
            self.net = self._functional
        else:
            self.params = dict(self.template.named_parameters())
            self.net = self.template

    def _functional(self, *x):
        return torch.func.functional_call(self.template, self.params, x)

    def distribute(self, world: int) -> None:
        """One network over ``world`` processes; call after the resumed weights are in (DDP starts from rank 0's)."""
        if not self.stacked and world > 1:
            self.net = nn.parallel.DistributedDataParallel(self.template)

    def slot(self, s: int) -> int | None:
        """Member s's slot in stacked tensors (its optimiser state); None for one network."""
        return s if self.stacked else None

    def weights(self, s: int) -> dict:
        """Member s's state dict as its checkpoint stores it."""
        return member_weights(self.params, s) if self.stacked else self.template.state_dict()

    def copy(self, s: int) -> dict:
        """A copy on the CPU of member s's weights (the best epoch's, kept by model selection)."""
        return member_weights(self.params, s) if self.stacked else cpu_state(self.template)

    def load(self, s: int, state: dict) -> None:
        """Member s's weights from a state dict (names and shapes must match)."""
        if self.stacked:
            load_member(self.params, s, state)
        else:
            self.template.load_state_dict(state)

    @torch.no_grad()
    def predict(self, read: Batches, n: int, batch_size: int = 64, scores: bool = False):
        """Predicted classes on the ``n`` inputs ``read`` gives, in evaluation mode: (1, n, ...) of one network,
        or (S, n, ...) of S stacked members, which all see the same inputs; with ``scores`` the float32 class
        scores (logits) instead, the class axis after n."""
        self.template.eval()
        out = []
        for x in read(index_batches(n, batch_size)):
            if self.stacked:
                logits, axis = self.net(*(t.expand(self.size, *t.shape) for t in x)), 2
            else:
                logits, axis = self.template(*x)[None], 2
            out.append(logits.float().cpu() if scores else logits.argmax(axis).to(torch.int16).cpu())
        return torch.cat(out, dim=1)


class Generators:
    """The members' random streams. Member s shuffles with ``shuffles[s]``, a CPU generator seeded with its seed,
    and draws T, the augmentation, dropout and modality dropout from ``draws[s]``, one on ``device`` seeded with
    it (on the CPU the same one: one stream per member). ``for_members`` is what those draws are handed
    (``models.drawing``): the list of S generators of a stack, the one generator of one network; a network
    trained alone also gets torch's global generator seeded, for torch layers that draw from it (e.g.
    ``nn.Dropout2d``). ``state(s)`` is what member s's checkpoint keeps of them, ``restore(s, state)`` sets it."""

    def __init__(self, seeds: list[int], device, stacked: bool):
        self.device, self.stacked = device, stacked
        self.shuffles = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.draws = self.shuffles if device.type == "cpu" else [torch.Generator(device).manual_seed(seed)
                                                                  for seed in seeds]
        self.for_members = self.draws if stacked else self.draws[0]
        if not stacked:
            torch.manual_seed(seeds[0])  # torch layers that draw from the global generator

    def state(self, s: int) -> dict:
        state = dict(generator=self.shuffles[s].get_state())
        if self.draws is not self.shuffles:
            state["device_generator"] = self.draws[s].get_state()
        if not self.stacked:
            state["torch_rng"] = torch.get_rng_state()
            if self.device.type == "cuda":
                state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def restore(self, s: int, state: dict) -> None:
        self.shuffles[s].set_state(state["generator"])
        if self.draws is not self.shuffles:
            self.draws[s].set_state(state["device_generator"])
        if not self.stacked:
            torch.set_rng_state(state["torch_rng"])
            if self.device.type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
