"""``LazyRows``: rows of a stored array (a memory-mapped cache array) that are read only when asked for.

A split of a real data set holds its images, spectrograms and depth maps this way: selecting D_l, D_u or the
test set selects row numbers, never bytes, and a batch reads only its own rows. What is read comes back in
the stored, compact dtype (``read``: uint8 frames, float16 spectrograms) and becomes float32 by one formula,
``convert``: (x − shift) · (1 / scale), in float32. The training loader applies it to every batch after the
transfer to the device; ``np.asarray`` applies the same formula on the CPU, so that a lazy split and the
same split in memory give the same numbers.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np


class LazyRows:
    """Rows ``index`` of ``base`` (any array indexable by a sorted integer array: ``np.memmap``, ``np.ndarray``),
    or of several stored arrays one after the other (``concat``: e.g. D_l from one cache, D_u from another).

    Parameters
    ----------
    base : (N, ...) stored array, or a tuple of them with one trailing shape and dtype.
    index : (n,) row numbers into ``base`` (into the arrays of a tuple one after the other); None: every row.
    shift, scale : the conversion to float32, (x − shift) / scale.
    key : what identifies ``base``'s content (a cache array's ``cache.content_key``: its content digest and
        checksum); ``content_id`` hashes it with the rows and the conversion instead of the bytes.
    """

    lazy_rows = True  # how ``mke_theory.core.checks`` recognises one without importing this module

    def __init__(self, base, index=None, shift: float = 0.0, scale: float = 1.0, key=None):
        self.bases = tuple(base) if isinstance(base, tuple) else (base,)
        if len({(b.shape[1:], np.dtype(b.dtype)) for b in self.bases}) != 1:
            raise ValueError("LazyRows over several arrays needs one trailing shape and one dtype")
        self.starts = np.cumsum([0] + [len(b) for b in self.bases])
        total = int(self.starts[-1])
        self.index = np.arange(total, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
        if self.index.ndim != 1:
            raise ValueError(f"LazyRows index must be 1-d, got shape {self.index.shape}")
        if len(self.index) and (self.index.min() < 0 or self.index.max() >= total):
            raise IndexError(f"LazyRows index out of range for {total} rows")
        self.shift, self.scale = np.asarray(shift, dtype=np.float32), np.asarray(scale, dtype=np.float64)
        if not (np.isfinite(self.shift).all() and np.isfinite(self.scale).all() and (self.scale != 0).all()):
            raise ValueError(f"LazyRows needs a finite shift and a finite non-zero scale, got {shift}, {scale}")
        row = self.bases[0].shape[1:]
        if np.broadcast_shapes(self.shift.shape, self.scale.shape, row) != row:
            raise ValueError(f"shift {self.shift.shape} and scale {self.scale.shape} must broadcast to a row {row}")
        self.factor = np.asarray(1.0 / self.scale, dtype=np.float32)
        self.key = key  # one per array of ``bases`` (a tuple when there are several)

    @property
    def base(self):
        """The stored array (the first one of several)."""
        return self.bases[0]

    # ---- the array a split sees --------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return (len(self.index), *self.base.shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)  # what ``convert`` returns

    @property
    def stored_dtype(self) -> np.dtype:
        return np.dtype(self.base.dtype)

    @property
    def nbytes_stored(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.stored_dtype.itemsize

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item):
        """An integer: that row, converted (an array). Anything else that selects rows (a slice, integer or
        boolean array, a torch tensor): the selected rows, still lazy."""
        if isinstance(item, (int, np.integer)):
            return self.convert(self.read([int(item)]))[0]
        if hasattr(item, "numpy"):  # a torch tensor of row numbers or a mask
            item = item.cpu().numpy()
        return self._with(self.index[item])

    def _with(self, index) -> LazyRows:
        return LazyRows(self._stored, index, self.shift, self.scale, self.key)

    @property
    def _stored(self):
        return self.bases if len(self.bases) > 1 else self.bases[0]

    def scaled(self, shift: float = 0.0, scale: float = 1.0) -> LazyRows:
        """The same rows converted by (x − shift) / scale."""
        return LazyRows(self._stored, self.index, shift, scale, self.key)

    def read(self, rows=None) -> np.ndarray:
        """The stored values of ``rows`` (positions in this view; None: all), in the stored dtype. Rows are
        read in ascending order of the underlying file (sequential access) and returned in the order asked."""
        where = self.index if rows is None else self.index[np.asarray(rows, dtype=np.int64).reshape(-1)]
        order = np.argsort(where, kind="stable")
        out = np.empty((len(where), *self.base.shape[1:]), dtype=self.stored_dtype)
        ranked = where[order]
        for b, base in enumerate(self.bases):  # each stored array's rows in one ascending read
            lo, hi = np.searchsorted(ranked, self.starts[b:b + 2])
            if hi > lo:
                out[order[lo:hi]] = base[ranked[lo:hi] - self.starts[b]]
        return out

    def convert(self, x):
        """(x − shift) · (1 / scale) in float32, for a numpy array or a torch tensor (on any device): the one
        formula, with float32 constants (per element or broadcast, e.g. per channel). Subtraction and
        multiplication are exactly rounded in numpy and torch alike, so both give the same numbers."""
        if isinstance(x, np.ndarray):
            out = x.astype(np.float32)  # a copy, then in place: no temporaries of the batch's size
            out -= self.shift
            out *= self.factor
            return out
        import torch

        shift, factor = (torch.as_tensor(c, device=x.device) for c in (self.shift, self.factor))
        out = x.to(torch.float32, copy=True)
        return out.sub_(shift).mul_(factor)

    def __array__(self, dtype=None, copy=None):
        out = self.convert(self.read())
        return out if dtype is None else out.astype(dtype, copy=False)

    def moments(self, chunk_bytes: int = 1 << 26) -> tuple[float, float]:
        """(mean, std) of the stored values of every row, in float64, read chunk by chunk (flat memory)."""
        step = max(1, chunk_bytes // max(1, self.nbytes_stored // max(1, len(self))))
        total = total_sq = 0.0
        count = 0
        for i in range(0, len(self), step):
            chunk = self.read(np.arange(i, min(i + step, len(self)))).astype(np.float64)
            total += float(chunk.sum())
            total_sq += float(np.square(chunk).sum())
            count += chunk.size
        if count == 0:
            return 0.0, 1.0
        mean = total / count
        if not np.isfinite([mean, total_sq]).all():  # a stored NaN or ±inf: prepare never writes one
            from mke_theory.core.errors import MKEError

            files = sorted({str(getattr(b, "path", "an array in memory")) for b in self.bases})
            folder = os.path.dirname(os.path.dirname(files[0])) or "CACHE"  # OUT/arrays/<name>.npy
            raise MKEError(f"{', '.join(files)} holds NaN or ±inf values among the rows read (prepare never stores "
                           f"one: the file was damaged or edited after prepare); check it with mke-exp verify "
                           f"{folder} and rebuild the cache with mke-exp prepare.")
        return mean, float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))

    def all_finite(self, chunk_bytes: int = 1 << 26) -> bool:
        """Whether every stored value is finite, read chunk by chunk (integers always are)."""
        if not np.issubdtype(self.stored_dtype, np.floating):
            return True
        step = max(1, chunk_bytes // max(1, self.nbytes_stored // max(1, len(self))))
        return all(np.isfinite(self.read(np.arange(i, min(i + step, len(self))))).all()
                   for i in range(0, len(self), step))

    @property
    def content_id(self) -> str:
        """A hash of ``key``, the stored shape and dtype, the rows and the conversion: equal ids, equal numbers
        (a cache array's key is made of its content digests, which ``cache.load`` checks against the file when it
        was replaced or touched since prepare, and ``mke-exp verify`` against every byte)."""
        if self.key is None:
            raise ValueError("LazyRows without a key has no content id")
        shapes = [b.shape for b in self.bases]
        h = hashlib.sha256(f"{self.key};{shapes};{self.stored_dtype.str};{self.shift.shape};".encode())
        for part in (self.shift, self.factor, self.index):
            h.update(np.ascontiguousarray(part).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (f"LazyRows(rows={len(self)}, of={[tuple(b.shape) for b in self.bases]}, stored={self.stored_dtype}, "
                f"shift={self.shift.tolist()}, scale={self.scale.tolist()})")


class NpyFile:
    """The rows of a ``.npy`` file, read with ``os.preadv`` straight into a new array (one call per run of
    consecutive rows), as a ``LazyRows`` base.

    Why not a memory map: a map reads ahead around every page fault, so random rows of a large file that is
    not in the page cache cost far more than their bytes (measured here on 177 KB rows: 150–370 rows/s at
    20k–200k rows through a map, 12–17k rows/s with preadv, flat in the file's size), and every page read
    stays counted in the process's resident memory. Picklable (it reopens by path) and safe in forked loader
    processes (``preadv`` does not move a file offset). Where the platform has no ``preadv``, a map it is.
    """

    def __init__(self, path):
        header = np.load(path, mmap_mode="r")  # the header only: shape, dtype, data offset
        self.path, self.shape, self.dtype = str(path), tuple(header.shape), header.dtype
        self.offset = header.offset
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._map = header if not hasattr(os, "preadv") or header.dtype.hasobject else None
        self._fd, self._pid = None, None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": None}

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # one descriptor per process
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def span(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo`` to ``hi`` (exclusive) as a new array, in one read (no index array: a verify of a 200k-row
        array of one byte per row costs what it reads)."""
        if self._map is not None:
            return np.array(self._map[lo:hi])
        out = np.empty((max(0, hi - lo), *self.shape[1:]), self.dtype)
        want = len(out) * self.row_bytes
        if want:
            got = os.preadv(self._file(), [out.reshape(-1).view(np.uint8)], self.offset + lo * self.row_bytes)
            if got != want:
                raise OSError(f"{self.path}: {got} of {want} bytes read at row {lo}: the file is shorter than its "
                              "header says (truncated or being rewritten)")
        return out

    def __getitem__(self, rows) -> np.ndarray:
        """The rows ``rows`` (an integer array; ascending reads are the fastest) as a new array."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self._map is not None:
            return np.asarray(self._map[rows])
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        if len(rows) == 0 or self.row_bytes == 0:
            return out
        flat = out.reshape(len(rows), -1).view(np.uint8)
        starts = np.flatnonzero(np.diff(rows, prepend=rows[0] - 2) != 1)  # first position of each run
        for a, b in zip(starts, [*starts[1:], len(rows)]):
            want = (b - a) * self.row_bytes
            got = os.preadv(self._file(), [flat[a:b]], self.offset + int(rows[a]) * self.row_bytes)
            if got != want:
                raise OSError(f"{self.path}: {got} of {want} bytes read at row {rows[a]}: the file is shorter "
                              "than its header says (truncated or being rewritten)")
        return out


def is_lazy(x) -> bool:
    return getattr(x, "lazy_rows", False)


def concat(a: LazyRows, b: LazyRows) -> LazyRows:
    """Rows of ``a`` then those of ``b``, still lazy; both need one conversion, one trailing shape and dtype."""
    if not (np.array_equal(a.shift, b.shift) and np.array_equal(a.factor, b.factor)):
        raise ValueError("rows with different conversions cannot be joined lazily")
    if len(a.bases) == len(b.bases) and all(x is y for x, y in zip(a.bases, b.bases)):
        return a._with(np.concatenate([a.index, b.index]))
    keys = lambda r: r.key if isinstance(r.key, tuple) else (r.key,) * len(r.bases)  # noqa: E731
    return LazyRows((*a.bases, *b.bases), np.concatenate([a.index, b.index + a.starts[-1]]), a.shift, a.scale,
                    (*keys(a), *keys(b)))
