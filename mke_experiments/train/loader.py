"""Batches of inputs on the device: how training, model selection and inference read their data.

``Batches(inputs, device)`` turns batches of row numbers into tuples of tensors on ``device``, one per
modality, in the order asked. In-memory tensors (mfeat, arrays, TwoMoon) are sliced directly: the fast
path, no loader. Inputs held as rows of a prepared cache (``mke_experiments.data.rows.LazyRows``) are read by a
``torch.utils.data.DataLoader`` with worker processes, pinned memory (CUDA), persistent workers and
prefetch, whose batch sampler yields exactly the row batches it is given, so what a network sees does not
depend on how its data is read (tested: a lazy split and the same split in memory train the same
records). For a GPU the stored, compact dtype (uint8 frames, float16 spectrograms) crosses to the device
and becomes float32 there (``LazyRows.convert``); for the CPU the loader's processes convert.

Who gets which rows is the caller's: ``shard`` gives a rank its share of an epoch's order exactly as
``torch.utils.data.DistributedSampler(drop_last=True)`` does, across the processes of one machine or of
several (``torchrun --nnodes N``): ranks are global.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mke_experiments.data.rows import is_lazy


def shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank ``rank``'s share of ``order`` (..., n) among ``world`` ranks: the first n − n mod world entries,
    every world-th from position ``rank`` — ``DistributedSampler(drop_last=True)``'s rule, equal shares."""
    n = order.shape[-1]
    return order[..., : n - n % world][..., rank::world]


def index_batches(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches of ``range(n)`` for inference and selection."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


class _Rows(Dataset):
    """The inputs' rows of one batch: ``__getitems__`` reads a whole batch at once (one ordered read per stored
    array, not one per sample), in the stored dtype, or converted already (``convert``: for a CPU device,
    where the loader's processes do the conversion and nothing crosses a bus)."""

    def __init__(self, inputs: tuple, convert: bool):
        self.inputs, self.convert = inputs, convert

    def __len__(self) -> int:
        return len(self.inputs[0])

    def _read(self, x, rows: np.ndarray) -> torch.Tensor:
        raw = x.read(rows.reshape(-1))
        return torch.from_numpy(x.convert(raw) if self.convert else raw).reshape(*rows.shape, *x.shape[1:])

    def __getitems__(self, rows) -> tuple:
        rows = np.asarray(rows, dtype=np.int64)
        return tuple(self._read(x, rows) if is_lazy(x) else x[torch.from_numpy(rows)] for x in self.inputs)


class _Given(Sampler):
    """A batch sampler that yields the batches it was last given (``Batches.__call__`` sets them)."""

    def __init__(self):
        self.batches: list = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _same(batch):
    return batch


class Batches:
    """``batches(rows)`` → tuples of device tensors, one per input, for each batch of row numbers in ``rows``
    (slices, or integer tensors (B,) or (S, B): S members' own batches). ``waited_s`` adds up the time spent
    waiting for a batch (for ``mke-exp bench``); the loader's processes live as long as this object.
    ``workers`` loader processes read ahead ``prefetch`` batches each, once a pass is long enough (``_start``)."""

    def __init__(self, inputs: tuple, device, workers: int = 0, prefetch: int = 2):
        self.inputs, self.device = tuple(inputs), torch.device(device)
        self.workers, self.prefetch = workers, prefetch
        self.waited_s = 0.0
        self.lazy = any(is_lazy(x) for x in self.inputs)
        self.loader = None  # made by the first pass, which knows how many batches a pass has

    def _start(self, n_batches: int) -> None:
        """The DataLoader, with ``workers`` processes when a pass has more batches than they prefetch (below
        that, starting processes costs more than it saves and the training process reads)."""
        workers = self.workers if n_batches > self.workers * self.prefetch else 0
        self.sampler = _Given()
        self.on_cpu = self.device.type == "cpu"  # convert where the rows are read: nothing to transfer
        self.loader = DataLoader(
            _Rows(self.inputs, convert=self.on_cpu), batch_sampler=self.sampler, collate_fn=_same, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=self.prefetch if workers > 0 else None,
            generator=torch.Generator())  # its own: a loader must not draw from the global generator

    def __call__(self, rows: Iterable) -> Iterator[tuple]:
        if not self.lazy:
            for r in rows:
                t0 = time.perf_counter()
                batch = tuple(x[r].to(self.device, non_blocking=True) for x in self.inputs)
                self.waited_s += time.perf_counter() - t0
                yield batch
            return
        batches = [np.arange(r.start, r.stop) if isinstance(r, slice) else np.asarray(r) for r in rows]
        if self.loader is None:
            self._start(len(batches))
        self.sampler.batches = batches
        stream = iter(self.loader)
        while True:
            t0 = time.perf_counter()
            try:
                raw = next(stream)
            except StopIteration:
                return
            batch = tuple(x.convert(t.to(self.device, non_blocking=True)) if is_lazy(x) and not self.on_cpu
                          else t.to(self.device, non_blocking=True) for x, t in zip(self.inputs, raw))
            self.waited_s += time.perf_counter() - t0
            yield batch


def as_inputs(a):
    """A split's array as the training loop reads it: a tensor (float32 for floats), or rows of a prepared
    cache kept as they are (``LazyRows``: read batch by batch by the loader, never all at once)."""
    if is_lazy(a):
        return a
    a = np.asarray(a)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32 if a.dtype.kind == "f" else a.dtype))
