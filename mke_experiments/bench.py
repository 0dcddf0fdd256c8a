"""Throughput of the MM student's training step on tensors of a task's real shapes.

Variants measured side by side in one process (the machines are noisy, so only ratios taken in
one run mean anything): fp32 eager, bfloat16 autocast, channels_last (image inputs), and
torch.compile (``compile=True``; its compile time is excluded and reported). With a prepared
cache, data loading (cache → batches of tensors) is measured too.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import torch

from mke_experiments.tasks import get_task
from mke_experiments.train import resolve_device
from mke_theory.errors import MKEError
from mke_theory.objective import student_loss
from mke_theory.split import IGNORE


def _mapped_classes():
    from mke_experiments.tasks.avsound import class_list

    return class_list("mapped")


SHAPES = {  # task -> (α sample shape, β sample shape, classes, target shape) for a config
    "mfeat": lambda c: ((47,), (76,), 10, ()),
    "ravdess": lambda c: ((c.prepare.frames, 3, c.prepare.size, c.prepare.size), (1, c.prepare.n_mels, 301), 8, ()),
    "vggsound": lambda c: ((1, c.prepare.n_mels, int(c.prepare.seconds * 100) + 1),
                           (c.prepare.frames, 3, c.prepare.size, c.prepare.size), 309, ()),
    "audioset-vggsound": lambda c: ((1, c.prepare.n_mels, int(c.prepare.seconds * 100) + 1),
                                    (c.prepare.frames, 3, c.prepare.size, c.prepare.size), len(_mapped_classes()), ()),
    "nyudv2": lambda c: ((3, *c.data.hw("crop")), (1 if c.data.depth == "metres" else 3, *c.data.hw("crop")), 40,
                         c.data.hw("crop")),
}


def _step_time(model, alpha, beta, y, steps: int, amp: bool, device, cfg, perturb) -> float:
    """Seconds per training step of the MM student: the pipeline's own loss, T, γ and optimiser."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    draws = torch.Generator(device).manual_seed(0)
    forward = lambda perturbed: model(*(perturb((alpha, beta), draws) if perturbed else (alpha, beta))).float()  # noqa: E731

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = student_loss(forward, y, loss_form=cfg.mke.loss_form, gamma=cfg.mke.gamma, class_dim=1,
                                ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up (and compilation)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def bench(task: str, cfg, batch_size: int = 32, steps: int = 10, device: str = "auto", compile: bool = False,
          load=None) -> list[dict]:
    """Rows: variant, samples/s, ratio to fp32 eager; plus data loading when ``load()`` (→ split) is given."""
    dev = resolve_device(device)
    split = None
    if load is not None:
        t0 = time.perf_counter()
        split = load()
        load_s = time.perf_counter() - t0
    if task in SHAPES:
        alpha_shape, beta_shape, k, target_shape = SHAPES[task](cfg)
    elif split is not None:
        alpha_shape, beta_shape, k = split.alpha_shape, split.beta_shape, split.n_classes
        target_shape = split.test_labels.shape[1:]
    else:
        raise MKEError(f"no default shapes for task {task}; give --data so the shapes come from the data")
    torch.manual_seed(0)
    alpha = torch.randn(batch_size, *alpha_shape, device=dev)
    beta = torch.randn(batch_size, *beta_shape, device=dev)
    y = torch.randint(0, k, (batch_size, *target_shape), device=dev)
    shapes = SimpleNamespace(alpha_shape=alpha_shape, beta_shape=beta_shape, n_classes=k)
    spec = get_task(task)
    build, perturb = spec.build_student, spec.perturb(cfg)
    images = len(alpha_shape) >= 3
    variants = [("fp32 eager", False, False, False), ("bf16 autocast", True, False, False)]
    if images:
        variants.append(("bf16 + channels_last", True, True, False))
    if compile:
        variants.append(("bf16 + torch.compile", True, False, True))
    rows = []
    for name, amp, channels_last, compiled in variants:
        torch.manual_seed(0)
        model = build(shapes, cfg.model, True).to(dev).train()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        if compiled:
            model = torch.compile(model)
        seconds = _step_time(model, alpha, beta, y, steps, amp, dev, cfg, perturb)
        rows.append(dict(variant=name, samples_per_s=batch_size / seconds, setup_s=time.perf_counter() - t0))
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["ratio"] = r["samples_per_s"] / base
    if split is not None:  # reading the cache, then slicing it into device batches
        t0 = time.perf_counter()
        a, b = torch.as_tensor(split.unlabeled_alpha), torch.as_tensor(split.unlabeled_beta)
        for i in range(0, len(a), batch_size):
            a[i:i + batch_size].to(dev), b[i:i + batch_size].to(dev)
        seconds = load_s + time.perf_counter() - t0
        rows.append(dict(variant="data loading (cache → device batches)", samples_per_s=len(a) / seconds,
                         setup_s=load_s, ratio=float("nan")))
    return rows
