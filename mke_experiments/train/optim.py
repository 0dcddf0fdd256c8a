"""The optimiser of the training loop (``train.fit``) and of ``mke-exp bench``'s training step, and the
learning rate of each epoch (``learning_rate``)."""

from __future__ import annotations

import math

import torch

from mke_experiments.config import TrainConfig


def learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (counted from 0) under ``cfg.schedule``: a function of the epoch alone,
    so that a run resumed from a checkpoint trains every epoch with the rate an uninterrupted run uses, and the
    checkpoint needs no scheduler state. The rate is constant within an epoch (``poly`` and ``cosine`` step
    once per epoch, not per batch as DeepLab's poly does)."""
    if cfg.schedule == "step":  # torch.optim.lr_scheduler.StepLR stepped once per epoch
        return cfg.lr * cfg.step_gamma ** (epoch // cfg.step_size)
    if cfg.schedule == "cosine":  # CosineAnnealingLR with T_max = epochs, eta_min = 0
        return cfg.lr * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2
    if cfg.schedule == "poly":  # DeepLab's poly, per epoch: the first epoch at lr, the last above 0
        return cfg.lr * (1 - epoch / cfg.epochs) ** cfg.poly_power
    return cfg.lr


class Optimizer:
    """Adam, AdamW (decoupled weight decay) or SGD with momentum ``cfg.momentum`` (0.9 unless set), over named
    tensors, through torch's own update functions (``torch.optim.adam.adam``, ``torch.optim.adamw.adamw``,
    ``torch.optim.sgd.sgd``: the arithmetic of ``torch.optim.Adam``, ``AdamW`` and ``SGD``), at the rate
    ``self.lr`` (the training loop sets it each epoch: ``learning_rate``). The updates are element-wise, so
    stacked members step exactly as each alone (no coupling across members such as global-norm clipping), and
    the state is kept by parameter name, so a member's share of it is one slice (its checkpoint). Constructing
    a ``torch.optim`` optimiser would import ``torch._dynamo`` (≈1.3 s at start-up)."""

    def __init__(self, params: dict, cfg: TrainConfig):
        self.params, self.cfg = params, cfg
        self.lr = learning_rate(cfg, 0)  # of the epoch being trained
        self.state = {}  # name -> Adam(W): step, exp_avg, exp_avg_sq; SGD with momentum: momentum_buffer

    @torch.no_grad()
    def step(self) -> None:
        from torch.optim.adam import adam
        from torch.optim.adamw import adamw
        from torch.optim.sgd import sgd

        names = [name for name, p in self.params.items() if p.grad is not None]
        params, grads = [self.params[k] for k in names], [self.params[k].grad for k in names]
        cfg = self.cfg
        if cfg.optimizer in ("adam", "adamw"):
            for name, p in zip(names, params):
                if name not in self.state:
                    self.state[name] = dict(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p),
                                            exp_avg_sq=torch.zeros_like(p))
            st = [self.state[k] for k in names]
            update = adam if cfg.optimizer == "adam" else adamw  # adamw: p·(1 − lr·wd), then Adam's step
            update(params, grads, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], [],
                   [s["step"] for s in st],
                   amsgrad=False, beta1=0.9, beta2=0.999, lr=self.lr, weight_decay=cfg.weight_decay, eps=1e-8,
                   maximize=False)
        else:
            buffers = [self.state.get(k, {}).get("momentum_buffer") for k in names]
            sgd(params, grads, buffers, weight_decay=cfg.weight_decay, momentum=cfg.momentum, lr=self.lr,
                dampening=0, nesterov=False, maximize=False)
            self.state.update({k: dict(momentum_buffer=b) for k, b in zip(names, buffers) if b is not None})
            # (momentum 0 keeps no buffer)

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
