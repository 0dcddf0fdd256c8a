"""Throughput of the MM student's training step on tensors of a task's real shapes.

Variants measured side by side in one process (the machines are noisy, so only ratios taken in
one run mean anything): fp32 eager, bfloat16 autocast, channels_last (image inputs), and
torch.compile (``compile=True``; its compile time is excluded and reported), each with its seconds per step,
its peak GPU memory (``torch.cuda.max_memory_allocated``) and the process's peak resident memory (Linux: reset per
variant through ``/proc/self/clear_refs``; the loader's worker processes are not counted), and the student's
parameter count. With the task's data (a prepared cache, or the data a task ships), the data loader the training
loop uses (``loader.Batches``: worker processes, pinned memory) is measured alone and feeding the
training step, with the fraction of the step time spent waiting for data.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import torch

from mke_experiments.tasks import get_task
from mke_experiments.train import resolve_device
from mke_experiments.train.loader import Batches, as_inputs
from mke_experiments.train.loop import Loss, train_step
from mke_experiments.train.optim import Optimizer
from mke_theory.core.errors import MKEError

COMPILE_BACKEND = os.environ.get("MKE_COMPILE_BACKEND", "inductor")  # torch.compile's backend; the dry run of
# benchmarks/gpu_check.sh sets "eager" (dynamo traces the step, no code is generated: seconds, not minutes, on a CPU)


def _train_step(model, cfg, perturb, amp: bool, device):
    """One training step of the MM student on a batch: the training loop's own step (``train.train_step``: the
    pipeline's loss form, T and γ, its optimiser), the random layers drawing from a generator on ``device``
    (as ``train.fit`` does)."""
    opt = Optimizer(dict(model.named_parameters()), cfg.train)
    loss = Loss(regularised=True, perturb=perturb, loss_kw=dict(loss_form=cfg.mke.loss_form, gamma=cfg.mke.gamma),
                amp=amp, device=device)
    draws = torch.Generator(device).manual_seed(0)

    def step(alpha, beta, y):
        train_step(model, opt, loss, (alpha, beta), y, draws)

    return step


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device):
    """Peak GPU memory (bytes) since the last reset, or None on the CPU."""
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def _reset_peak(device) -> None:
    """Start the peak GPU memory (CUDA) and the peak resident memory of this process (Linux) afresh."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:  # "5" resets VmHWM, the peak resident set size (Linux ≥ 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _status_bytes(field: str) -> int | None:
    """A memory figure of this process from ``/proc/self/status`` (Linux), in bytes; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _peak_rss() -> int | None:
    """The peak resident memory of this process in bytes since the last ``_reset_peak`` (Linux), else since it
    started (``getrusage``), else None. The reset cannot go below the memory held then (the allocator keeps what
    earlier variants freed): ``rss_start_bytes`` of a row says how much that was."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
        import sys

        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    except (ImportError, OSError):
        return None


def _out_of_memory(error: Exception) -> str:
    """The row's note for a variant that ran out of memory."""
    return f"out of memory ({str(error).splitlines()[0][:200]})"


def _timed(step, batch, steps: int, device) -> float:
    """Seconds per step on one fixed batch, after up to 3 warm-up steps, never more than ``steps`` (and
    compilation, in the first)."""
    for _ in range(min(3, steps)):
        step(*batch)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(*batch)
    _sync(device)
    return (time.perf_counter() - t0) / steps


def _fed(read: Batches, split, batch_size: int, steps: int, device, step=None, y=None) -> dict:
    """Batches of D_u as training reads them (a random order, the task's loader), alone or each followed by a
    training ``step``: samples/s and the fraction of the time spent waiting for data. Two batches warm the
    loader up (its worker processes start) first; on CUDA every step is synchronised, so waiting is idle GPU."""
    n = split.n_unlabeled
    gen = torch.Generator().manual_seed(0)
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-(steps + 2) * batch_size // n))])
    rows = [order[i:i + batch_size] for i in range(0, (steps + 2) * batch_size, batch_size)]
    for x in read(rows[:2]):
        if step is not None:
            step(*x, y[: len(x[0])])
    _sync(device)
    read.waited_s, samples = 0.0, 0
    t0 = time.perf_counter()
    for x in read(rows[2:]):
        if step is not None:
            step(*x, y[: len(x[0])])
            _sync(device)
        samples += len(x[0])
    _sync(device)
    seconds = time.perf_counter() - t0
    return dict(samples_per_s=samples / seconds, waiting_fraction=read.waited_s / seconds)


def bench(task: str, cfg, batch_size: int = 32, steps: int = 10, device: str = "auto", compile: bool = False,
          load=None) -> list[dict]:
    """Rows of ``variant``, ``samples_per_s``, ``step_s`` (seconds per training step of ``batch_size``), ``ratio``
    (to fp32 eager), ``peak_gpu_bytes`` (None on the CPU), ``peak_rss_bytes``, ``parameters`` (the student's) and
    ``setup_s``, and ``error`` for a variant that ran out of memory (its figures NaN; the others still run); with
    ``load()`` (→ the task's split) also the data loader alone and the loader feeding the
    bf16 training step, with ``waiting_fraction``."""
    dev = resolve_device(device)
    split = None
    if load is not None:
        t0 = time.perf_counter()
        split = load()
        load_s = time.perf_counter() - t0
    if split is not None:  # the data's own shapes, else the preset's
        alpha_shape, beta_shape, k = split.alpha_shape, split.beta_shape, split.n_classes
        target_shape = split.test_labels.shape[1:]
    elif get_task(task).shapes is not None:
        alpha_shape, beta_shape, k, target_shape = get_task(task).shapes(cfg)
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

    def student(channels_last: bool, compiled: bool):
        torch.manual_seed(0)
        model = build(shapes, cfg.model, True).to(dev).train()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return torch.compile(model, backend=COMPILE_BACKEND) if compiled else model

    parameters = sum(p.numel() for p in build(shapes, cfg.model, True).parameters())
    rows = []
    for name, amp, channels_last, compiled in variants:
        _reset_peak(dev)
        rss_start = _status_bytes("VmRSS")
        t0 = time.perf_counter()
        try:
            step = _train_step(student(channels_last, compiled), cfg, perturb, amp, dev)
            seconds = _timed(step, (alpha, beta, y), steps, dev)
        except torch.OutOfMemoryError as e:  # e.g. fp32 where only bf16 fits: the other variants still run
            seconds, error = float("nan"), _out_of_memory(e)
        else:
            error = None
        step = None
        if error and dev.type == "cuda":  # out of the except block: its traceback no longer holds the tensors
            torch.cuda.empty_cache()
        rows.append(dict(variant=name, samples_per_s=batch_size / seconds, step_s=seconds,
                         setup_s=time.perf_counter() - t0, peak_gpu_bytes=_peak(dev), peak_rss_bytes=_peak_rss(),
                         rss_start_bytes=rss_start, parameters=parameters,
                         **(dict(compile_backend=COMPILE_BACKEND) if compiled else {}),
                         **(dict(error=error) if error else {})))
    base = rows[0]["samples_per_s"]  # NaN (and so every ratio) when fp32 did not fit
    for r in rows:
        r["ratio"] = r["samples_per_s"] / base
    if split is not None:
        read = Batches((as_inputs(split.unlabeled_alpha), as_inputs(split.unlabeled_beta)), dev, cfg.train.workers,
                       cfg.train.prefetch)
        _reset_peak(dev)
        alone = _fed(read, split, batch_size, steps, dev)["samples_per_s"]
        how = f"{read.loader.num_workers} workers" if read.loader is not None else "in memory, sliced"
        rows.append(dict(variant=f"data loader alone ({how})", samples_per_s=alone, step_s=batch_size / alone,
                         setup_s=load_s, ratio=float("nan"), peak_gpu_bytes=_peak(dev), peak_rss_bytes=_peak_rss()))
        _reset_peak(dev)
        step = _train_step(student(False, False), cfg, perturb, dev.type == "cuda", dev)
        together = _fed(read, split, batch_size, steps, dev, step, y)
        rows.append(dict(variant="loader + bf16 step" if dev.type == "cuda" else "loader + fp32 step (CPU)",
                         step_s=batch_size / together["samples_per_s"], setup_s=0.0,
                         ratio=together["samples_per_s"] / base, peak_gpu_bytes=_peak(dev), peak_rss_bytes=_peak_rss(),
                         parameters=parameters, **together))
    return rows
