"""The prepared-cache contract every real-data reader follows (format version 2): one memory-mappable ``.npy``
per array and a ``manifest.json``::

    OUT/manifest.json           format, version, complete, params, source_fingerprint, rows, arrays (name →
                                shape and dtype), build, then the reader's own entries (counts, skipped, …)
    OUT/arrays/<name>.npy       one row per work item of the scan, in the compact stored dtype
    OUT/arrays/valid.npy        bool (rows,): False for a clip that was missing or could not be read (its
                                rows stay zero; the manifest says why)

``prepare`` checks its ``--out`` folder with ``check_out_dir``, returns a cache it can reuse with ``reuse``
(``current`` says whether one can be), and writes a new one with ``build``: the items are decoded in shards of
consecutive items, by a pool of worker processes, into ``OUT/.partial/``; a killed ``build`` continues from
the shards it committed, and ``OUT/arrays`` is replaced only once every shard is done, so the previous cache
stays readable until then. ``load`` opens the arrays (the large ones as ``LazyRows``, whose rows are read on
demand) and turns every way a cache can be broken into one sentence naming the file and the command that
rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mke_experiments.data.rows import LazyRows, NpyFile
from mke_theory.console import all_cores
from mke_theory.core.records import atomic_write

log = logging.getLogger(__name__)

# The manifest entries ``build`` sets for every reader, in this order; the reader's own follow.
SHARED_KEYS = ("format", "version", "complete", "created", "seconds_taken", "params", "source_fingerprint", "rows",
               "arrays", "build")
ARRAYS = "arrays"  # OUT/arrays/<name>.npy
PARTIAL = ".partial"  # OUT/.partial/{arrays/, progress.json, shards/} while a build runs
PROGRESS = "progress.json"  # OUT/.partial/progress.json: what is being built (params, source, items, layout)
SHARDS = "shards"  # OUT/.partial/shards/<k>.json: the notes of shard k, written once its rows are flushed
VALID = "valid"  # the bool array every cache holds
SHARD_SIZE = 32  # items per shard: the unit of work of a worker and of resuming
IN_FLIGHT_PER_WORKER = 2  # shards submitted but not yet written, per worker: memory stays flat


@dataclass(frozen=True)
class CacheSpec:
    dataset: str  # "RAVDESS", "NYU Depth V2": how messages name the data
    format: str  # the manifest's "format" value
    version: int
    arrays: Callable[[dict], tuple]  # manifest -> names of the arrays the cache must hold (besides ``valid``)
    small: frozenset  # names of the arrays ``load`` reads into memory (labels, keys, …); the others stay lazy
    error: type  # the reader's MKEError subclass
    hint: str  # "run mke-exp prepare TASK --raw DIR --out DIR"
    manifest_name: str = "manifest.json"


class Column(NamedTuple):
    """One array of a cache: the shape of one row and the stored dtype."""

    shape: tuple
    dtype: str


class Interrupted(Exception):
    """Raised by ``build(..., stop_after_shards=k)`` after ``k`` committed shards, as a kill would stop it (tests)."""


def library_versions(**libraries) -> dict:
    """Python, numpy and this package's versions plus ``libraries`` (name → version), for a manifest."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        mke = version("mke")
    except PackageNotFoundError:
        mke = "unknown"
    return {"python": platform.python_version(), "numpy": np.__version__, "mke": mke, **libraries}


def _write_json(path: Path, value, indent: int | None = 1) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(value, indent=indent, ensure_ascii=False) + "\n").encode()))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def read_manifest(spec: CacheSpec, out_dir: Path) -> dict | None:
    manifest = _read_json(Path(out_dir) / spec.manifest_name)
    return manifest if isinstance(manifest, dict) else None


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _array_problem(path: Path, shape, dtype) -> str | None:
    """What is wrong with the ``.npy`` file ``path`` against ``shape`` and ``dtype`` (None: nothing); reads the
    header only."""
    if not path.is_file():
        return "is missing"
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            stored_shape, fortran, stored_dtype = read(f)
            offset = f.tell()
    except (OSError, ValueError, EOFError) as e:
        return f"is not a readable .npy file ({e})"
    if list(stored_shape) != list(shape) or stored_dtype != np.dtype(dtype) or fortran:
        return (f"holds {stored_dtype.str} {list(stored_shape)} but the manifest says {np.dtype(dtype).str} "
                f"{list(shape)}")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * stored_dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        return f"is truncated ({size} bytes, expected {expected}: an interrupted copy?)"
    return None


def _entries(spec: CacheSpec, manifest: dict) -> dict | None:
    """The manifest's ``arrays`` entries when they name exactly the arrays the spec asks for, else None."""
    entries = manifest.get("arrays")
    names = set(spec.arrays(manifest)) | {VALID}
    if not isinstance(entries, dict) or set(entries) != names:
        return None
    return entries


def current(spec: CacheSpec, out_dir: Path, params: dict, fingerprint) -> dict | None:
    """The manifest when the cache on disk was built from this source with these parameters and is complete
    and intact (every array file present with the manifest's shape, dtype and size)."""
    manifest = read_manifest(spec, out_dir)
    if (manifest is None or manifest.get("format") != spec.format or manifest.get("version") != spec.version
            or manifest.get("params") != params or manifest.get("source_fingerprint") != fingerprint
            or not manifest.get("complete")):
        return None
    entries = _entries(spec, manifest)
    if entries is None or any(_array_problem(Path(out_dir) / ARRAYS / f"{name}.npy", e["shape"], e["dtype"])
                              for name, e in entries.items()):
        return None
    return manifest


def check_out_dir(spec: CacheSpec, out_dir) -> Path:
    """``out_dir`` as a Path; ``spec.error`` when it is an existing file (it may not exist yet)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise spec.error(f"cache folder {out_dir} is a file; pass a folder to --out.")
    return out_dir


def announce(progress, total: int) -> None:
    """Tell ``progress`` how many clips there are before the first ``progress(n)``, when it listens: an object
    with a ``start(total)`` method (the CLI's bar, for clips/s and an ETA); a plain callable is left alone."""
    start = getattr(progress, "start", None)
    if start is not None:
        start(total)


def reuse(spec: CacheSpec, out_dir: Path, params: dict, fingerprint,
          progress: Callable[[int], object] | None = None, total: int = 0) -> dict | None:
    """The manifest plus ``reused=True`` when ``current`` finds the cache up to date, else None.

    A reused cache is logged, and ``progress(total)`` is called: the work ``prepare`` had to do is done.
    """
    manifest = current(spec, out_dir, params, fingerprint)
    if manifest is None:
        return None
    log.info("%s cache %s is up to date (same source, same parameters); nothing to do", spec.dataset, out_dir)
    if progress is not None:
        announce(progress, total)
        progress(total)
    return {**manifest, "reused": True}


# ---- build ----------------------------------------------------------------------------------------
def _limit_threads(threads: int) -> None:
    """Pool initializer: a worker gets its share of the cores, ``threads`` (the usable cores over the workers),
    so the thread pools of the libraries it runs (OpenBLAS/MKL/OpenMP already loaded: ``threadpoolctl``; OpenCV
    and numba, loaded later: their environment variables) do not each start one thread per core and
    oversubscribe the cores the workers fill."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                     "OPENCV_FOR_THREADS_NUM"):
        os.environ[variable] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


def _store_row(out: dict, i: int, rows: dict, columns: dict) -> str | None:
    """Put one decoded clip into row ``i`` of the shard arrays ``out``, cast to the stored dtypes; the reason it
    cannot be kept (non-finite values) or None. A row of the wrong shape is a reader bug: ValueError."""
    if set(rows) != set(columns):
        raise ValueError(f"decode returned the arrays {sorted(rows)}, the cache has {sorted(columns)}")
    cast = {}
    for name, column in columns.items():
        value = np.asarray(rows[name])
        dtype = np.dtype(column.dtype)
        if value.shape != tuple(column.shape):
            raise ValueError(f"decode returned {name} of shape {value.shape}, the cache stores {column.shape}")
        if dtype.kind == "U" and value.dtype.kind == "U" and value.dtype.itemsize > dtype.itemsize:
            raise ValueError(f"decode returned {name} {value!r}, longer than the cache's {dtype.str}")
        with np.errstate(over="ignore", invalid="ignore"):
            cast[name] = value.astype(dtype)
        if dtype.kind == "f" and not np.isfinite(cast[name]).all():
            return f"its {name} holds non-finite values (NaN or ±inf, or beyond {dtype.name})"
    for name, value in cast.items():
        out[name][i] = value
    return None


def _decode_shard(decode: Callable, items: Sequence, columns: dict) -> tuple[dict, dict]:
    """Decode ``items`` (one shard) with ``decode``: (name → (len(items), …) arrays plus ``valid``,
    {position: note} for the non-empty notes). Runs in a worker process (or in-process with one worker)."""
    out = {name: np.zeros((len(items), *c.shape), np.dtype(c.dtype)) for name, c in columns.items()}
    out[VALID] = np.zeros(len(items), bool)
    notes = {}
    for i, item in enumerate(items):
        rows, note = decode(item)
        note = dict(note or {})
        if rows is not None:
            reason = _store_row(out, i, rows, columns)
            if reason is None:
                out[VALID][i] = True
            else:
                note["skipped"] = reason
        if note:
            notes[i] = note
    return out, notes


def _columns_json(columns: dict) -> dict:
    return {name: [list(c.shape), np.dtype(c.dtype).str] for name, c in columns.items()}


def _workers(spec: CacheSpec, workers, n_shards: int, n_items: int, shard_size: int) -> int:
    """How many worker processes to start: ``workers`` (default: the usable cores), at most one per shard."""
    asked = workers is not None
    if workers is None:
        workers = all_cores()
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise spec.error(f"prepare: workers={workers!r} must be a whole number >= 1 (1 decodes in this process).")
    if workers > n_shards and asked:
        log.warning("%s prepare: %d workers asked for %d clips in %d shard(s) of up to %d; using %d worker(s), "
                    "one per shard.", spec.dataset, workers, n_items, n_shards, shard_size, n_shards)
    return int(min(workers, n_shards))


def committed_shards(out_dir) -> list[int]:
    """The shards of the interrupted build in ``out_dir`` whose rows are written and flushed (sorted)."""
    return sorted(_read_shards(Path(out_dir) / PARTIAL)[0])


def _read_shards(folder: Path) -> tuple[set, dict]:
    """(committed shards, their notes by item) from ``folder/shards``; a damaged file's shard is decoded again."""
    committed, notes = set(), {}
    for path in (folder / SHARDS).glob("*.json"):
        value = _read_json(path)
        if path.stem.isdigit() and isinstance(value, dict):
            committed.add(int(path.stem))
            notes.update(value)
    return committed, notes


class _Partial:
    """``OUT/.partial``: the memory-mapped arrays being written, ``progress.json`` (what is being built, written
    once) and one small file per committed shard (``shards/<k>.json``: its notes, written after its rows are
    flushed). Committing a shard costs the same at the first shard and at the last: nothing that grows with
    the clips is rewritten."""

    def __init__(self, spec: CacheSpec, out_dir: Path, header: dict, columns: dict):
        self.folder = out_dir / PARTIAL
        self.header, self.columns = header, {**columns, VALID: Column((), "|b1")}
        self.restarted = None
        state = _read_json(self.folder / PROGRESS)
        arrays = None
        if isinstance(state, dict) and state.get("header") == header:
            arrays = self._reopen()
            if arrays is None:
                self.restarted = (f"{spec.dataset} prepare in {out_dir} started clean: the arrays of the "
                                  f"interrupted prepare in {self.folder} are missing or damaged.")
        elif isinstance(state, dict):
            old = state.get("header") if isinstance(state.get("header"), dict) else {}
            what = ("other parameters" if old.get("params") != header["params"] else
                    "another source" if old.get("source_fingerprint") != header["source_fingerprint"] else
                    "another cache format, item count or shard size")
            self.restarted = (f"{spec.dataset} prepare in {out_dir} started clean: the interrupted prepare in "
                              f"{self.folder} was for {what}, its {len(_read_shards(self.folder)[0])} finished "
                              "shard(s) are discarded.")
        elif (self.folder / PROGRESS).exists():
            self.restarted = (f"{spec.dataset} prepare in {out_dir} started clean: {self.folder / PROGRESS} of the "
                              "interrupted prepare is unreadable.")
        if self.restarted:
            log.warning("%s", self.restarted)
        if arrays is None:
            shutil.rmtree(self.folder, ignore_errors=True)
            (self.folder / ARRAYS).mkdir(parents=True)
            arrays = self._create()
            _write_json(self.folder / PROGRESS, {"header": header})
        (self.folder / SHARDS).mkdir(exist_ok=True)
        self.arrays = arrays
        self.committed, self.notes = _read_shards(self.folder)

    def _path(self, name: str) -> Path:
        return self.folder / ARRAYS / f"{name}.npy"

    def _create(self) -> dict:
        """New zero-filled (sparse) memory-mapped arrays, one row per item."""
        rows = self.header["items"]
        return {name: np.lib.format.open_memmap(self._path(name), mode="w+", dtype=np.dtype(c.dtype),
                                                shape=(rows, *c.shape)) for name, c in self.columns.items()}

    def _reopen(self) -> dict | None:
        """The arrays of the interrupted build, mapped for writing; None when one is missing or damaged."""
        rows = self.header["items"]
        if any(_array_problem(self._path(name), (rows, *c.shape), c.dtype) for name, c in self.columns.items()):
            return None
        return {name: np.lib.format.open_memmap(self._path(name), mode="r+") for name in self.columns}

    def commit(self, shard: int, start: int, result: tuple[dict, dict]) -> None:
        """Write one decoded shard's rows, flush them, and only then record the shard as committed."""
        out, notes = result
        rows = np.flatnonzero(out[VALID])  # the other rows stay zero: never written, sparse on disk
        for name, array in self.arrays.items():
            array[start + rows] = out[name][rows]
            array.flush()
        shard_notes = {str(start + i): note for i, note in notes.items()}
        _write_json(self.folder / SHARDS / f"{shard}.json", shard_notes, indent=None)
        self.notes.update(shard_notes)
        self.committed.add(shard)

    def close(self) -> None:
        for array in self.arrays.values():
            array.flush()
        self.arrays = {}


def _decode_in_pool(n_workers: int, jobs, decode: Callable, columns: dict, finished: Callable) -> None:
    """``_decode_shard`` of every (shard, items) of ``jobs`` in ``n_workers`` spawned processes, at most
    ``IN_FLIGHT_PER_WORKER`` shards per worker submitted at a time; ``finished(shard, result)`` in this process,
    in the order the shards finish. An exception stops the pool (the shards running are waited for)."""
    pool = ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_limit_threads,
                               initargs=(max(1, all_cores() // n_workers),))
    running = {}

    def submit() -> None:
        job = next(jobs, None)
        if job is not None:
            running[pool.submit(_decode_shard, decode, job[1], columns)] = job[0]

    try:
        for _ in range(IN_FLIGHT_PER_WORKER * n_workers):
            submit()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                finished(running.pop(future), future.result())
                submit()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def build(spec: CacheSpec, out_dir, items: Sequence, decode: Callable, columns: dict[str, Column], params: dict,
          fingerprint, summarize: Callable[[np.ndarray, list], dict], *, workers: int | None = None,
          shard_size: int = SHARD_SIZE, progress: Callable[[int], object] | None = None,
          stop_after_shards: int | None = None) -> dict:
    """Decode every item into ``OUT/arrays`` (one row each) and write the manifest; resumable, in parallel.

    Parameters
    ----------
    items : the scan's work items, picklable, in the cache's row order.
    decode : ``decode(item) -> (rows, note)``, a picklable module-level function (or a ``functools.partial`` of
        one): ``rows`` maps every column name to the item's row (cast to the column's dtype here), or is None
        for an item that is missing or unreadable, which the decode must catch; ``note`` is a small JSON-able
        dict (``{}`` for nothing), with ``"skipped": reason`` for an item that could not be read. A decoded float
        row with NaN or ±inf (after the cast: float16 overflows) is not kept: its note gets ``"skipped"``. Any
        exception decode raises is fatal (a broken source, e.g. a corrupt .mat); committed shards are kept.
    columns : name → ``Column(row shape, stored dtype)``; ``valid`` is added.
    params, fingerprint : what ``current`` compares on the next ``prepare``, and what a resumed build must match.
    summarize : ``summarize(valid, notes) -> fields``: the reader's own manifest entries (counts, skipped, …)
        from the (rows,) bool ``valid`` and one note per item; it may raise ``spec.error`` (e.g. nothing was
        readable), which keeps the previous cache and the committed shards.
    workers : processes decoding shards (default: the usable cores, ``mke_theory.console.all_cores``; 1: in this
        process, no pool, the libraries' own threads left alone); at most one per shard. The pool uses the
        ``spawn`` context: workers start as fresh interpreters, so threads of the parent (OpenMP, torch,
        OpenCV) cannot deadlock them after a fork, on every platform (a script calling ``build`` with
        workers > 1 needs the usual ``if __name__ == "__main__":`` guard). Each worker computes on its share
        of the cores (``_limit_threads``: one thread when there are as many workers as cores) and sets up its
        expensive state (a face detector, an open file) once, lazily, in the reader.
    shard_size : consecutive items per shard; at most 2 shards per worker are in flight.
    progress : ``progress(n)`` with the number of items finished, per shard (first ``announce``d the total).
    stop_after_shards : for tests, raise ``Interrupted`` after this many shards were committed in this call.

    Returns
    -------
    dict, the manifest written (``SHARED_KEYS``, then ``fields``), plus ``reused`` False. ``build`` records the
    workers, shards, resumed shards and, when an interrupted build for other parameters or another source was
    discarded, the sentence saying so (``restarted``; also logged as a warning).
    """
    started = time.time()
    out_dir = Path(out_dir)
    if int(shard_size) < 1:
        raise ValueError(f"cache.build: shard_size={shard_size!r} must be >= 1")
    n = len(items)
    n_shards = -(-n // shard_size)
    n_workers = _workers(spec, workers, n_shards, n, shard_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = {"format": spec.format, "version": spec.version, "params": params, "source_fingerprint": fingerprint,
              "items": n, "shard_size": int(shard_size), "columns": _columns_json(columns)}
    partial = _Partial(spec, out_dir, header, columns)
    resumed = len(partial.committed)
    if progress is not None:
        announce(progress, n)
        if resumed:
            progress(sum(len(items[k * shard_size:(k + 1) * shard_size]) for k in partial.committed))
    todo = [k for k in range(n_shards) if k not in partial.committed]
    log.info("%s prepare: %d clips in %d shards (%d already done), %d worker(s)", spec.dataset, n, n_shards,
             resumed, n_workers)

    done_now = 0

    def finished(shard: int, result) -> None:
        nonlocal done_now
        partial.commit(shard, shard * shard_size, result)
        if progress is not None:
            progress(len(result[0][VALID]))
        done_now += 1
        if stop_after_shards is not None and done_now >= stop_after_shards:
            raise Interrupted(f"stopped after {done_now} shard(s)")

    jobs = ((shard, list(items[shard * shard_size:(shard + 1) * shard_size])) for shard in todo)
    _decode_jobs(spec, partial, n_workers, jobs, decode, columns, finished)
    fields = _summary(summarize, partial, n)
    partial.close()
    manifest = _manifest(header, partial.columns, started, fields,
                         build_record={"workers": n_workers, "shard_size": int(shard_size), "shards": n_shards,
                                       "resumed_shards": resumed, "restarted": partial.restarted})
    _publish(spec, out_dir, manifest)
    return {**manifest, "reused": False}


def _decode_jobs(spec: CacheSpec, partial: _Partial, n_workers: int, jobs, decode: Callable, columns: dict,
                 finished: Callable) -> None:
    """``_decode_shard`` of every (shard, items) of ``jobs``, in this process with one worker, else in a pool of
    ``n_workers``; ``finished(shard, result)`` as each is done. A worker that died is ``spec.error``, saying that
    the shards committed in ``partial`` are kept."""
    if n_workers <= 1:
        for shard, shard_items in jobs:
            finished(shard, _decode_shard(decode, shard_items, columns))
        return
    try:
        _decode_in_pool(n_workers, jobs, decode, columns, finished)
    except BrokenProcessPool as e:
        raise spec.error(f"{spec.dataset} prepare: a worker process died ({e}; out of memory?); the "
                         f"{len(partial.committed)} finished shard(s) in {partial.folder} are kept: rerun the "
                         "same command to continue.") from None


def _summary(summarize: Callable[[np.ndarray, list], dict], partial: _Partial, n: int) -> dict:
    """The reader's manifest entries: ``summarize(valid, notes)`` of the ``n`` items built in ``partial``; a
    ValueError when it returns one of the ``SHARED_KEYS``, which ``build`` sets itself."""
    valid = np.array(partial.arrays[VALID])
    notes = [partial.notes.get(str(i), {}) for i in range(n)]
    fields = summarize(valid, notes)
    clash = [key for key in SHARED_KEYS if key in fields]
    if clash:
        raise ValueError(f"cache.build: fields {clash} are shared manifest entries that build sets itself")
    return fields


def _manifest(header: dict, columns: dict, started: float, fields: dict, build_record: dict) -> dict:
    """The manifest of a finished build: the ``SHARED_KEYS`` (format, version, params, source and rows as in the
    progress ``header``; one array entry per column, ``valid`` included; the ``build`` record), then ``fields``."""
    n = header["items"]
    return {
        "format": header["format"], "version": header["version"], "complete": True,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds_taken": round(time.time() - started, 3),
        "params": header["params"], "source_fingerprint": header["source_fingerprint"], "rows": n,
        "arrays": {name: {"shape": [n, *c.shape], "dtype": np.dtype(c.dtype).str}
                   for name, c in columns.items()},
        "build": build_record,
        **fields,
    }


def _publish(spec: CacheSpec, out_dir: Path, manifest: dict) -> None:
    """Move ``.partial/arrays`` to ``arrays``, write the manifest, remove ``.partial`` (and a version-1 file)."""
    old = read_manifest(spec, out_dir)
    (out_dir / spec.manifest_name).unlink(missing_ok=True)  # the old manifest must not describe the new arrays
    partial, arrays = out_dir / PARTIAL, out_dir / ARRAYS
    if arrays.exists():
        shutil.rmtree(partial / "replaced", ignore_errors=True)
        arrays.rename(partial / "replaced")
    (partial / ARRAYS).rename(arrays)
    _write_json(out_dir / spec.manifest_name, manifest)
    shutil.rmtree(partial, ignore_errors=True)
    legacy = old.get("cache") if old is not None and old.get("version") == 1 else None
    if isinstance(legacy, str) and legacy.endswith(".npz") and "/" not in legacy:
        (out_dir / legacy).unlink(missing_ok=True)
        log.info("removed the version-1 cache %s", out_dir / legacy)


# ---- load -----------------------------------------------------------------------------------------
def content_key(manifest: dict, name: str) -> str:
    """What identifies the content of the cache's array ``name``: format, version, source, parameters."""
    fingerprint = manifest.get("source_fingerprint")
    source = fingerprint if isinstance(fingerprint, str) else _digest(fingerprint)
    return f"{manifest['format']}/v{manifest['version']}/{source}/{_digest(manifest.get('params'))}/{name}"


def load(spec: CacheSpec, out_dir) -> dict:
    """The cache's arrays plus ``manifest``; ``spec.error`` naming the file and the fix otherwise.

    Returns
    -------
    dict: each of ``spec.small`` as an np.ndarray of the valid rows; each other array as
    ``LazyRows(NpyFile(path), index=valid rows, key=content_key(...))`` (no byte read: rows are read on demand
    with ``preadv``, see ``mke_experiments.data.rows.NpyFile``); and
    ``manifest``. Only the headers, ``valid`` and the small arrays are read.
    """
    out_dir = Path(out_dir)
    manifest_path = out_dir / spec.manifest_name
    rebuild = spec.hint.replace("--out DIR", f"--out {out_dir}")
    name, error = spec.dataset, spec.error
    if not out_dir.is_dir():
        raise error(f"{name} cache folder {out_dir} does not exist; {rebuild}.")
    manifest = read_manifest(spec, out_dir)
    if not manifest_path.is_file():
        legacy = sorted(out_dir.glob("*_cache.npz"))
        if legacy:
            raise error(f"{name} cache {legacy[0]} is in the old single-file format (version 1); this library "
                        f"reads version {spec.version}: rebuild it: {rebuild}.")
        raise error(f"{name} cache manifest {manifest_path} is missing; {rebuild}.")
    if manifest is None or manifest.get("format") != spec.format:
        raise error(f"{name} manifest {manifest_path} is corrupt or not a {name} cache manifest; "
                    f"rebuild it: {rebuild}.")
    if manifest.get("version") == 1:
        old = out_dir / str(manifest.get("cache") or spec.manifest_name)
        raise error(f"{name} cache {old} is in the old single-file format (version 1); this library reads "
                    f"version {spec.version}: rebuild it: {rebuild}.")
    if manifest.get("version") != spec.version:
        raise error(f"{name} cache {manifest_path} has format version {manifest.get('version')}, this library "
                    f"reads {spec.version}; rebuild it: {rebuild}.")
    if not manifest.get("complete"):
        raise error(f"{name} manifest {manifest_path} says the cache is incomplete (an interrupted prepare); "
                    f"rebuild it: {rebuild}.")
    entries = _entries(spec, manifest)
    if entries is None:
        raise error(f"{name} manifest {manifest_path} does not list the arrays "
                    f"{sorted({*spec.arrays(manifest), VALID})}; rebuild it: {rebuild}.")
    paths = {key: out_dir / ARRAYS / f"{key}.npy" for key in entries}
    for key, entry in entries.items():
        problem = _array_problem(paths[key], entry.get("shape"), entry.get("dtype"))
        if problem:
            raise error(f"{name} cache array {paths[key]} {problem}; rebuild it: {rebuild}.")
    rows = np.flatnonzero(np.load(paths[VALID], allow_pickle=False))
    out = {}
    for key in entries:
        if key == VALID:
            continue
        if key in spec.small:
            out[key] = np.asarray(np.load(paths[key], mmap_mode="r", allow_pickle=False)[rows])
        else:
            out[key] = LazyRows(NpyFile(paths[key]), index=rows, key=content_key(manifest, key))
    return {**out, "manifest": manifest}
