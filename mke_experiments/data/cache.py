"""The prepared-cache contract every real-data reader follows (format version 3): one memory-mappable ``.npy``
per array, a ``manifest.json`` and the checksums of the arrays::

    OUT/manifest.json           format, version, complete, params, source_fingerprint, content_digest, rows, arrays
                                (name → shape, dtype, sha256 of the array's shard checksums, and the file's
                                bytes, mtime_ns, ctime_ns and inode when it was published), build, then the
                                reader's own entries (counts, skipped, …)
    OUT/arrays/<name>.npy       one row per work item of the scan, in the compact stored dtype
    OUT/arrays/valid.npy        bool (rows,): False for a clip that was missing or could not be read (its
                                rows stay zero; the manifest says why)
    OUT/arrays/digest.npy       |S32 (rows,): the item's content digest, a sha256 (first 128 bits, hex) of the
                                bytes of its source files (or of the raw arrays it was read from), computed by
                                the reader as it reads the item to decode it
    OUT/checksums.json          per array, one sha256 (128 bits, hex) per shard of consecutive rows: what
                                ``verify`` compares the arrays' bytes with (bit rot, a replaced file)

Identity by content: ``content_digest`` hashes the format, the parameters and every item's digest in row order;
``content_key`` (what a run's ``split_id`` sees of a cache array) is made of it and the array's checksum, never
of file names, sizes or times. ``prepare`` checks its ``--out`` folder with ``check_out_dir``, returns a cache
it can reuse with ``reuse`` (``current`` says whether one can be by the quick key, the source files' names and
sizes; ``reuse`` then re-hashes every item and compares it with the digest stored) and writes a new one with
``build``: the items are decoded in shards of consecutive items, by a pool of worker processes, into
``OUT/.partial/``; a killed ``build`` continues from the shards it committed (after re-hashing their items:
a shard whose source changed is decoded again), and ``OUT/arrays`` is replaced only once every shard is done,
so the previous cache stays readable until then. ``load`` opens the arrays (the large ones as ``LazyRows``,
whose rows are read on demand) and turns every way a cache can be broken into one sentence naming the file
and the command that rebuilds it; an array file replaced or touched since prepare is verified before it is
read. ``verify`` re-reads every array and names the array and rows whose bytes changed.
"""

from __future__ import annotations

import functools
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
from mke_theory.core import disk
from mke_theory.core.records import atomic_write

log = logging.getLogger(__name__)

# The manifest entries ``build`` sets for every reader, in this order; the reader's own follow.
SHARED_KEYS = ("format", "version", "complete", "created", "seconds_taken", "params", "source_fingerprint",
               "content_digest", "rows", "arrays", "build")
ARRAYS = "arrays"  # OUT/arrays/<name>.npy
PARTIAL = ".partial"  # OUT/.partial/{arrays/, progress.json, shards/} while a build runs
PROGRESS = "progress.json"  # OUT/.partial/progress.json: what is being built (params, source, items, layout)
SHARDS = "shards"  # OUT/.partial/shards/<k>.json: the notes and checksums of shard k, once its rows are flushed
CHECKSUMS = "checksums.json"  # OUT/checksums.json: per array, the checksum of each shard's rows
VALID = "valid"  # the bool array every cache holds
PREPARE_LOCK = ".prepare.lock"  # OUT/.prepare.lock: held by the prepare writing OUT (``_one_at_a_time``)
DIGEST = "digest"  # the |S32 array every cache holds: each item's content digest
DIGEST_DTYPE = "|S32"
HEX = 32  # digests and checksums are the first 128 bits of a sha256, in hex: collisions need ~2^64 items
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


# ---- content digests ------------------------------------------------------------------------------
def digests_on() -> bool:
    """Whether items and shards are hashed: always, except in ``benchmarks/bench_prepare.py``'s run without
    (``MKE_PREPARE_DIGESTS=0``), which times what the digests cost; a cache built so has empty item digests,
    so its next ``prepare`` rebuilds it."""
    return os.environ.get("MKE_PREPARE_DIGESTS", "1") != "0"


def hash_files(paths) -> str:
    """The content digest of an item read from the files ``paths``: a sha256 of each file's length and bytes,
    in order (the first 128 bits, in hex), read in 1 MiB chunks; a reader calls it right before decoding the
    files, which then come from the page cache. A file that cannot be opened enters as such (its reader skips
    the item): the digest changes when it becomes readable."""
    if not digests_on():
        return ""
    h = hashlib.sha256()
    view = memoryview(bytearray(1 << 20))
    for path in paths:
        try:
            with open(path, "rb") as f:
                h.update(f"file {os.fstat(f.fileno()).st_size};".encode())
                while n := f.readinto(view):
                    h.update(view[:n])
        except OSError as e:
            h.update(f"unreadable {type(e).__name__};".encode())
    return h.hexdigest()[:HEX]


def hash_arrays(*arrays) -> str:
    """The content digest of an item read as the numpy arrays ``arrays`` (NYU: the raw image, depth and labels
    of one image of the .mat file): their dtypes, shapes and bytes."""
    if not digests_on():
        return ""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()[:HEX]


def _checksum(rows: np.ndarray) -> str:
    """The checksum of a shard's rows of one array (their bytes as stored); "" when digests are off."""
    if not digests_on():
        return ""
    return hashlib.sha256(np.ascontiguousarray(rows).reshape(-1).view(np.uint8)).hexdigest()[:HEX]


def _summary_digest(checksums: Sequence[str]) -> str:
    """What the manifest records of an array: a sha256 of its shard checksums in order."""
    return hashlib.sha256("\n".join(checksums).encode()).hexdigest()


def _content_digest(spec_format: str, version, params, digests) -> str:
    """The manifest's ``content_digest``: format, version, parameters and every item's digest, in row order
    (``digests``: the (rows,) array, or consecutive blocks of it)."""
    h = hashlib.sha256(json.dumps([spec_format, version, params], sort_keys=True).encode())
    for block in ([digests] if isinstance(digests, np.ndarray) else digests):
        h.update(np.ascontiguousarray(block, dtype=DIGEST_DTYPE).tobytes())
    return h.hexdigest()


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
    names = set(spec.arrays(manifest)) | {VALID, DIGEST}
    if not isinstance(entries, dict) or set(entries) != names:
        return None
    return entries


def _entry_problem(entry, rows) -> str | None:
    """What is wrong with one ``arrays`` entry of a manifest (None: nothing): not an object, a shape that is not
    a list of whole numbers starting with ``rows``, a dtype numpy does not know, no checksum."""
    if not isinstance(entry, dict):
        return f"is {type(entry).__name__} {entry!r}, not an object with shape, dtype and sha256"
    shape, dtype = entry.get("shape"), entry.get("dtype")
    if (not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                            for d in shape)):
        return f"has shape {shape!r}, not a list of whole numbers >= 0"
    if shape[0] != rows:
        return f"has {shape[0]} rows but the manifest says rows={rows!r}"
    try:
        if not isinstance(dtype, str) or np.dtype(dtype).hasobject:
            raise TypeError
    except TypeError:
        return f"has dtype {dtype!r}, not a numpy dtype such as '<f2' or '|u1'"
    if not isinstance(entry.get("sha256"), str):
        return "has no sha256 checksum"
    return None


def _manifest_problem(spec: CacheSpec, manifest: dict) -> str | None:
    """What is wrong with a (complete, current-version) manifest's structure, as the end of a sentence that
    starts with its path (None: nothing): hand edits, deleted or null entries."""
    if not isinstance(manifest.get("params"), dict):
        return f"has params {manifest.get('params')!r}, not the object of prepare's parameters (edited by hand?)"
    rows = manifest.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        return f"has rows={rows!r}, not a whole number >= 0"
    if not isinstance(manifest.get("content_digest"), str):
        return "has no content_digest"
    entries = _entries(spec, manifest)
    if entries is None:
        return f"does not list the arrays {sorted({*spec.arrays(manifest), VALID, DIGEST})}"
    for name, entry in entries.items():
        problem = _entry_problem(entry, rows)
        if problem:
            return f"arrays entry {name!r} {problem}"
    return None


def current(spec: CacheSpec, out_dir: Path, params: dict, fingerprint) -> dict | None:
    """The manifest when the cache on disk was built from this source (the quick key: the files' names and sizes)
    with these parameters and is complete and intact (every array file present with the manifest's shape, dtype
    and size); ``reuse`` then compares the items' content digests."""
    manifest = read_manifest(spec, out_dir)
    if (manifest is None or manifest.get("format") != spec.format or manifest.get("version") != spec.version
            or manifest.get("params") != params or manifest.get("source_fingerprint") != fingerprint
            or not manifest.get("complete") or _manifest_problem(spec, manifest) is not None):
        return None
    if any(_array_problem(Path(out_dir) / ARRAYS / f"{name}.npy", e["shape"], e["dtype"])
           for name, e in manifest["arrays"].items()):
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


def phase(progress, name: str | None) -> None:
    """Tell ``progress`` that another phase of the work starts (``name``: "checking the source files"; None: the
    decoding), when it listens: an object with a ``phase(name)`` method (the CLI's bar closes and the next
    ``announce`` opens a new one); a plain callable is left alone and hears of the decoding only."""
    method = getattr(progress, "phase", None)
    if method is not None:
        method(name)


def hash_items(items: Sequence, hash_item: Callable, progress: Callable[[int], object] | None = None,
               workers: int | None = None) -> np.ndarray:
    """(len(items),) |S32: ``hash_item(item)`` of every item (the reader's content digest, read only, no decode),
    in ``workers`` threads (default: the usable cores; reading files and sha256 release the GIL); ``progress(n)``
    per 32 items done."""
    from concurrent.futures import ThreadPoolExecutor

    out = np.zeros(len(items), DIGEST_DTYPE)
    chunks = [range(i, min(i + SHARD_SIZE, len(items))) for i in range(0, len(items), SHARD_SIZE)]

    def one(chunk: range) -> int:
        for i in chunk:
            out[i] = hash_item(items[i])
        return len(chunk)

    with ThreadPoolExecutor(max(1, min(workers or all_cores(), len(chunks) or 1))) as pool:
        for n in pool.map(one, chunks):
            if progress is not None:
                progress(n)
    return out


def _changed_items(spec: CacheSpec, stored: np.ndarray, now: np.ndarray, items: Sequence,
                   describe: Callable) -> list[int]:
    """The items whose digest differs from the stored one, logged as a warning naming the first few."""
    stored = np.asarray(stored, DIGEST_DTYPE)
    changed = np.flatnonzero((stored != now) | (stored == b"")).tolist()  # "": built without digests
    if changed:
        first = ", ".join(describe(items[i]) for i in changed[:3])
        log.warning("%s: %d of %d source item(s) changed since they were prepared (same names and sizes, other "
                    "bytes): %s%s; preparing again", spec.dataset, len(changed), len(items), first,
                    ", …" if len(changed) > 3 else "")
    return changed


def reuse(spec: CacheSpec, out_dir: Path, params: dict, fingerprint, items: Sequence, hash_item: Callable,
          progress: Callable[[int], object] | None = None, workers: int | None = None,
          describe: Callable = str) -> dict | None:
    """The manifest plus ``reused=True`` when the cache is up to date, else None (``prepare`` builds it).

    Up to date: ``current`` (the quick key: the source files' names and sizes, the parameters, the arrays on
    disk), and then every item's content digest, ``hash_item(item)`` (read only, no decode; ``hash_items``), equal
    to the one stored: a file overwritten keeping its size and time stamps, or two files swapped, rebuilds. A
    changed item is logged as a warning naming how many changed and the first few (``describe(item)``).

    ``progress``: the check is a phase of its own (``phase``) for a progress that listens; a plain callable is
    called with the number of items once when the cache is reused (the work ``prepare`` had to do is done).
    """
    manifest = current(spec, out_dir, params, fingerprint)
    if manifest is None:
        return None
    try:  # a cache without checksums (broken, or built with MKE_PREPARE_DIGESTS=0) is built again
        _require_digests(spec, Path(out_dir), _checksums(spec, Path(out_dir), manifest))
    except spec.error:
        return None
    stored = np.load(Path(out_dir) / ARRAYS / f"{DIGEST}.npy", allow_pickle=False)
    if len(stored) != len(items):
        return None
    listens = getattr(progress, "phase", None) is not None
    if listens:
        phase(progress, "checking the source files")
        announce(progress, len(items))
    now = hash_items(items, hash_item, progress if listens else None, workers)
    if _changed_items(spec, stored, now, items, describe):
        phase(progress, None)
        return None
    log.info("%s cache %s is up to date (same source, same parameters); nothing to do", spec.dataset, out_dir)
    if progress is not None and not listens:
        announce(progress, len(items))
        progress(len(items))
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
    """Decode ``items`` (one shard) with ``decode``: (name → (len(items), …) arrays plus ``valid`` and ``digest``,
    {position: note} for the non-empty notes). Runs in a worker process (or in-process with one worker)."""
    out = {name: np.zeros((len(items), *c.shape), np.dtype(c.dtype)) for name, c in columns.items()}
    out[VALID] = np.zeros(len(items), bool)
    out[DIGEST] = np.zeros(len(items), DIGEST_DTYPE)
    notes = {}
    for i, item in enumerate(items):
        rows, note, digest = decode(item)
        out[DIGEST][i] = digest
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


def _read_shards(folder: Path) -> tuple[set, dict, dict]:
    """(committed shards, their notes by item, their checksums: shard → {array: checksum}) from
    ``folder/shards``; a damaged file's shard is decoded again."""
    committed, notes, checksums = set(), {}, {}
    for path in (folder / SHARDS).glob("*.json"):
        value = _read_json(path)
        if (path.stem.isdigit() and isinstance(value, dict) and isinstance(value.get("notes"), dict)
                and isinstance(value.get("checksums"), dict)):
            committed.add(int(path.stem))
            notes.update(value["notes"])
            checksums[int(path.stem)] = value["checksums"]
    return committed, notes, checksums


class _Partial:
    """``OUT/.partial``: the memory-mapped arrays being written, ``progress.json`` (what is being built, written
    once) and one small file per committed shard (``shards/<k>.json``: its notes and the checksum of each array's
    rows, written after its rows are flushed). Committing a shard costs the same at the first shard and at the
    last: nothing that grows with the clips is rewritten."""

    def __init__(self, spec: CacheSpec, out_dir: Path, header: dict, columns: dict):
        self.folder = out_dir / PARTIAL
        self.header = header
        self.space = (out_dir, f"the {spec.dataset} cache's arrays ({header['items']} rows)", "free some space or "
                      "choose another --out (a previous cache there and the finished shards are kept)")
        self.columns = {**columns, VALID: Column((), "|b1"), DIGEST: Column((), DIGEST_DTYPE)}
        self.restarted = None
        self.fresh = False  # the arrays were created by this build: every row not written yet is zero
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
            self.fresh = True
            _write_json(self.folder / PROGRESS, {"header": header})
        (self.folder / SHARDS).mkdir(exist_ok=True)
        self.arrays = arrays
        self.committed, self.notes, self.checksums = _read_shards(self.folder)

    def _path(self, name: str) -> Path:
        return self.folder / ARRAYS / f"{name}.npy"

    def _create(self) -> dict:
        """New zero-filled memory-mapped arrays, one row per item, their space checked first and then reserved
        (``_reserve``); on too little space they are removed again."""
        rows = self.header["items"]
        needed = sum(rows * int(np.prod(c.shape, dtype=np.int64)) * np.dtype(c.dtype).itemsize
                     for c in self.columns.values())
        disk.require_space(self.space[0], needed, *self.space[1:])
        arrays = {name: np.lib.format.open_memmap(self._path(name), mode="w+", dtype=np.dtype(c.dtype),
                                                  shape=(rows, *c.shape)) for name, c in self.columns.items()}
        try:
            self._reserve()
        except disk.DiskFullError:
            arrays.clear()  # unmapped, so that removing the files gives their blocks back
            shutil.rmtree(self.folder / ARRAYS, ignore_errors=True)
            raise
        return arrays

    def _reserve(self) -> None:
        """Allocate every block of the arrays now (``disk.reserve``): a row written later through a memory map
        then never meets a full disk, which would be a SIGBUS (exit 135, no message); too little space is one
        sentence naming ``--out``, the space needed and the space free, before any item is decoded."""
        disk.reserve([self._path(name) for name in self.columns], *self.space)

    def _reopen(self) -> dict | None:
        """The arrays of the interrupted build, mapped for writing; None when one is missing or damaged."""
        rows = self.header["items"]
        if any(_array_problem(self._path(name), (rows, *c.shape), c.dtype) for name, c in self.columns.items()):
            return None
        self._reserve()  # arrays of an older build (or a file system that could not reserve) may still have holes
        return {name: np.lib.format.open_memmap(self._path(name), mode="r+") for name in self.columns}

    def commit(self, shard: int, start: int, result: tuple[dict, dict]) -> None:
        """Write one decoded shard's rows, flush them, and only then record the shard as committed, with the
        checksum of each array's rows.

        The whole slice of the shard ends up as decoded: ``valid`` and ``digest`` are written whole, the other
        arrays' valid rows are written and their invalid rows stay zero, never written, in arrays this build
        created; in the arrays of an interrupted build, where a shard decoded again may find rows of an earlier
        partial write (a kill in the middle of a commit, or a shard whose source changed), an invalid row that is
        not all zero is zeroed: the checksums describe the bytes on disk."""
        out, notes = result
        stop = start + len(out[VALID])
        rows = np.flatnonzero(out[VALID])
        invalid = np.flatnonzero(~out[VALID])
        for name, array in self.arrays.items():
            if name in (VALID, DIGEST):
                array[start:stop] = out[name]
            else:
                array[start + rows] = out[name][rows]
                if not self.fresh and len(invalid):  # any byte not zero, whatever the dtype (strings too)
                    held = np.ascontiguousarray(array[start + invalid]).reshape(len(invalid), -1).view(np.uint8)
                    array[start + invalid[held.any(axis=1)]] = np.zeros((), array.dtype)
            array.flush()
        checksums = {name: _checksum(out[name]) for name in self.arrays}
        shard_notes = {str(start + i): note for i, note in notes.items()}
        _write_json(self.folder / SHARDS / f"{shard}.json", {"notes": shard_notes, "checksums": checksums},
                    indent=None)
        self.notes.update(shard_notes)
        self.checksums[shard] = checksums
        self.committed.add(shard)

    def forget(self, shards, shard_size: int) -> None:
        """Decode ``shards`` again: they are no longer committed (their files, notes and checksums go)."""
        for shard in shards:
            (self.folder / SHARDS / f"{shard}.json").unlink(missing_ok=True)
            self.committed.discard(shard)
            self.checksums.pop(shard, None)
            for i in range(shard * shard_size, (shard + 1) * shard_size):
                self.notes.pop(str(i), None)

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


def _one_at_a_time(build: Callable) -> Callable:
    """``build`` holding ``OUT/.prepare.lock`` (``disk.FolderLock``): a second prepare into the same folder stops at
    once with one sentence naming the process that holds it (pid, host, command, since when), before it touches
    ``OUT/.partial``. It does not wait: a prepare runs for hours on every core, and what the second would do
    afterwards, reuse the cache or replace it, is better decided then. The kernel releases the lock of a killed
    prepare, which the next one continues."""

    @functools.wraps(build)
    def locked(spec: CacheSpec, out_dir, *args, **kwargs) -> dict:
        with disk.FolderLock(Path(out_dir) / PREPARE_LOCK, f"prepare of the {spec.dataset} cache", error=spec.error):
            return build(spec, out_dir, *args, **kwargs)

    return locked


@_one_at_a_time
def build(spec: CacheSpec, out_dir, items: Sequence, decode: Callable, columns: dict[str, Column], params: dict,
          fingerprint, summarize: Callable[[np.ndarray, list], dict], *, hash_item: Callable,
          workers: int | None = None, shard_size: int = SHARD_SIZE, progress: Callable[[int], object] | None = None,
          stop_after_shards: int | None = None, describe: Callable = str) -> dict:
    """Decode every item into ``OUT/arrays`` (one row each) and write the manifest; resumable, in parallel.

    Parameters
    ----------
    items : the scan's work items, picklable, in the cache's row order.
    decode : ``decode(item) -> (rows, note, digest)``, a picklable module-level function (or a
        ``functools.partial`` of one): ``rows`` maps every column name to the item's row (cast to the column's
        dtype here), or is None for an item that is missing or unreadable, which the decode must catch; ``note``
        is a small JSON-able dict (``{}`` for nothing), with ``"skipped": reason`` for an item that could not be
        read; ``digest`` is the item's content digest (``hash_files`` of the files it reads, right before
        decoding them, or ``hash_arrays`` of the raw arrays), unreadable items included. A decoded float
        row with NaN or ±inf (after the cast: float16 overflows) is not kept: its note gets ``"skipped"``. Any
        exception decode raises is fatal (a broken source, e.g. a corrupt .mat); committed shards are kept.
    columns : name → ``Column(row shape, stored dtype)``; ``valid`` is added.
    params, fingerprint : what ``current`` compares on the next ``prepare``, and what a resumed build must match.
    hash_item : ``hash_item(item) -> digest``, the digest ``decode`` returns, without decoding: a resumed build
        re-hashes the items of the shards it committed and decodes again a shard whose item changed since.
    describe : ``describe(item) -> str``, how log lines name an item.
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
    _recheck(spec, partial, items, hash_item, shard_size, workers, describe, progress)
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
    checksums = {name: [partial.checksums[k][name] for k in range(n_shards)] for name in partial.columns}
    content = _content_digest(spec.format, spec.version, params, partial.arrays[DIGEST])
    partial.close()
    manifest = _manifest(header, partial.columns, started, fields, content, checksums,
                         build_record={"workers": n_workers, "shard_size": int(shard_size), "shards": n_shards,
                                       "resumed_shards": resumed, "restarted": partial.restarted})
    manifest = _publish(spec, out_dir, manifest, {"shard_size": int(shard_size), "rows": n, "arrays": checksums})
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


def _recheck(spec: CacheSpec, partial: _Partial, items: Sequence, hash_item: Callable, shard_size: int,
             workers: int | None, describe: Callable, progress=None) -> None:
    """Re-hash the items of the shards an interrupted build committed and decode again every shard holding an
    item whose digest differs from the one it stored (its source changed between the kill and now); a phase of
    its own for a ``progress`` that listens (``phase``)."""
    if not partial.committed:
        return
    positions = np.concatenate([np.arange(k * shard_size, min((k + 1) * shard_size, len(items)))
                                for k in sorted(partial.committed)])
    listens = getattr(progress, "phase", None) is not None
    if listens:
        phase(progress, "checking the finished shards' source files")
        announce(progress, len(positions))
    now = hash_items([items[i] for i in positions], hash_item, progress if listens else None, workers)
    if listens:
        phase(progress, None)
    stored = np.asarray(partial.arrays[DIGEST][positions])
    changed = _changed_items(spec, stored, now, [items[i] for i in positions], describe)
    stale = sorted({int(positions[i]) // shard_size for i in changed})
    if stale:
        log.warning("%s prepare: %d finished shard(s) of the interrupted prepare hold changed items; decoding them "
                    "again", spec.dataset, len(stale))
        partial.forget(stale, shard_size)


def _manifest(header: dict, columns: dict, started: float, fields: dict, content: str, checksums: dict,
              build_record: dict) -> dict:
    """The manifest of a finished build: the ``SHARED_KEYS`` (format, version, params, source and rows as in the
    progress ``header``; the content digest; one array entry per column, ``valid`` and ``digest`` included, with
    the summary of its shard checksums; the ``build`` record), then ``fields``. ``_publish`` adds each array
    file's bytes, mtime_ns, ctime_ns and inode."""
    n = header["items"]
    return {
        "format": header["format"], "version": header["version"], "complete": True,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds_taken": round(time.time() - started, 3),
        "params": header["params"], "source_fingerprint": header["source_fingerprint"], "content_digest": content,
        "rows": n,
        "arrays": {name: {"shape": [n, *c.shape], "dtype": np.dtype(c.dtype).str,
                          "sha256": _summary_digest(checksums[name])} for name, c in columns.items()},
        "build": build_record,
        **fields,
    }


def _file_record(path: Path) -> dict:
    """What ``load`` compares to see that an array file was replaced or touched since it was recorded: size,
    mtime and inode, and ctime, which no user can set back (a file rewritten in place with its mtime restored)."""
    stat = path.stat()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino}


def _publish(spec: CacheSpec, out_dir: Path, manifest: dict, checksums: dict) -> dict:
    """Move ``.partial/arrays`` to ``arrays``, with ``checksums.json`` and the manifest (with each array file's
    record), remove ``.partial`` (and a version-1 file); the manifest written.

    Both files are written inside ``.partial`` first and then renamed: what can fail for want of space happens
    before anything is moved, so a full disk leaves the interrupted build whole (the same command resumes it and
    publishes) and the previous cache readable. A directory's rename keeps its files' inodes and times."""
    old = read_manifest(spec, out_dir)
    partial, arrays = out_dir / PARTIAL, out_dir / ARRAYS
    manifest = {**manifest, "arrays": {name: {**entry, "file": _file_record(partial / ARRAYS / f"{name}.npy")}
                                       for name, entry in manifest["arrays"].items()}}
    _write_json(partial / CHECKSUMS, checksums, indent=None)
    _write_json(partial / spec.manifest_name, manifest)
    (out_dir / spec.manifest_name).unlink(missing_ok=True)  # the old manifest must not describe the new arrays
    if arrays.exists():
        shutil.rmtree(partial / "replaced", ignore_errors=True)
        arrays.rename(partial / "replaced")
    (partial / ARRAYS).rename(arrays)
    (partial / CHECKSUMS).replace(out_dir / CHECKSUMS)
    (partial / spec.manifest_name).replace(out_dir / spec.manifest_name)
    shutil.rmtree(partial, ignore_errors=True)
    legacy = old.get("cache") if old is not None and old.get("version") == 1 else None
    if isinstance(legacy, str) and legacy.endswith(".npz") and "/" not in legacy:
        (out_dir / legacy).unlink(missing_ok=True)
        log.info("removed the version-1 cache %s", out_dir / legacy)
    return manifest


def seal(spec: CacheSpec, out_dir, params: dict, fingerprint, fields: dict, shard_size: int = SHARD_SIZE) -> dict:
    """The manifest and checksums of arrays written into ``OUT/arrays`` by other means than ``build`` (a
    benchmark's synthetic cache, every array of ``spec.arrays`` plus ``valid``): each item's digest is that of its
    row number, the arrays are read once for their checksums; the manifest written (``fields`` its own entries)."""
    out_dir = Path(out_dir)
    arrays = out_dir / ARRAYS
    names = [*spec.arrays({"params": params}), VALID]
    n = len(NpyFile(arrays / f"{VALID}.npy"))
    np.save(arrays / f"{DIGEST}.npy", np.array([hash_arrays(np.int64(i)) for i in range(n)], DIGEST_DTYPE))
    checksums = {name: _shard_checksums(NpyFile(arrays / f"{name}.npy"), shard_size) for name in [*names, DIGEST]}
    columns = {name: Column(NpyFile(arrays / f"{name}.npy").shape[1:], NpyFile(arrays / f"{name}.npy").dtype.str)
               for name in [*names, DIGEST]}
    header = {"format": spec.format, "version": spec.version, "params": params, "source_fingerprint": fingerprint,
              "items": n}
    content = _content_digest(spec.format, spec.version, params, np.load(arrays / f"{DIGEST}.npy"))
    manifest = _manifest(header, columns, time.time(), fields, content, checksums,
                         build_record={"workers": 0, "shard_size": int(shard_size), "synthetic": True})
    manifest["arrays"] = {name: {**entry, "file": _file_record(arrays / f"{name}.npy")}
                          for name, entry in manifest["arrays"].items()}
    _write_json(out_dir / CHECKSUMS, {"shard_size": int(shard_size), "rows": n, "arrays": checksums}, indent=None)
    _write_json(out_dir / spec.manifest_name, manifest)
    return manifest


# ---- load -----------------------------------------------------------------------------------------
def content_key(manifest: dict, name: str) -> str:
    """What identifies the content of the cache's array ``name``: format, version, the content digest (parameters
    and every item's digest) and the array's checksum (its bytes, shard by shard); never the source's file names,
    sizes or times. A run's ``split_id`` sees a cache array through it (``LazyRows.content_id``): a run on another
    cache, or on changed rows, has another id."""
    entry = manifest["arrays"][name]
    return f"{manifest['format']}/v{manifest['version']}/{manifest['content_digest'][:32]}/{name}/{entry['sha256']}"


def _rebuild(spec: CacheSpec, out_dir: Path) -> str:
    return spec.hint.replace("--out DIR", f"--out {out_dir}")


def _checked_manifest(spec: CacheSpec, out_dir: Path) -> dict:
    """The manifest of the cache in ``out_dir`` after every check that reads no array row: the folder, the
    manifest (present, readable, this format and version, complete, well formed) and each array file's header
    and size; ``spec.error`` naming the file and the fix otherwise."""
    manifest_path = out_dir / spec.manifest_name
    rebuild = _rebuild(spec, out_dir)
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
    version = manifest.get("version")
    if version == 1 and type(version) is int:
        old = out_dir / str(manifest.get("cache") or spec.manifest_name)
        raise error(f"{name} cache {old} is in the old single-file format (version 1); this library reads "
                    f"version {spec.version}: rebuild it: {rebuild}.")
    if type(version) is not int:  # "3" or 3.0 or true, edited by hand
        raise error(f"{name} cache {manifest_path} has format version {version!r}, not a whole number (this "
                    f"library reads the integer {spec.version}; edited by hand?); rebuild it: {rebuild}.")
    if version != spec.version:
        why = " (it has no content digests)" if version < spec.version else ""
        raise error(f"{name} cache {manifest_path} has format version {version}, this library reads "
                    f"{spec.version}{why}; rebuild it: {rebuild}.")
    if not manifest.get("complete"):
        raise error(f"{name} manifest {manifest_path} says the cache is incomplete (an interrupted prepare); "
                    f"rebuild it: {rebuild}.")
    problem = _manifest_problem(spec, manifest)
    if problem:
        raise error(f"{name} manifest {manifest_path} {problem}; rebuild it: {rebuild}.")
    for key, entry in manifest["arrays"].items():
        path = out_dir / ARRAYS / f"{key}.npy"
        problem = _array_problem(path, entry["shape"], entry["dtype"])
        if problem:
            raise error(f"{name} cache array {path} {problem}; rebuild it: {rebuild}.")
    return manifest


def _checksums(spec: CacheSpec, out_dir: Path, manifest: dict) -> dict:
    """``checksums.json`` after checking that it is the one of this manifest (each array's list of shard checksums
    hashes to the manifest's ``sha256``): {"shard_size", "rows", "arrays": name → [checksum per shard]}."""
    path = out_dir / CHECKSUMS
    value = _read_json(path)
    rows = manifest["rows"]
    size = value.get("shard_size") if isinstance(value, dict) else None
    arrays = value.get("arrays") if isinstance(value, dict) else None
    fine = (isinstance(size, int) and size >= 1 and isinstance(arrays, dict) and value.get("rows") == rows
            and set(arrays) == set(manifest["arrays"]))
    wrong = [] if not fine else [key for key, entry in manifest["arrays"].items()
                                 if not isinstance(arrays[key], list) or len(arrays[key]) != -(-rows // size)
                                 or _summary_digest([str(c) for c in arrays[key]]) != entry["sha256"]]
    if not fine or wrong:
        what = "is missing or unreadable" if value is None else (
            f"does not belong to {out_dir / spec.manifest_name} (array {wrong[0]!r} differs)" if wrong else
            "is not a checksums file of this cache")
        raise spec.error(f"{spec.dataset} cache checksums {path} {what}; rebuild it: {_rebuild(spec, out_dir)}.")
    return value


def _rows_text(shards: list[int], size: int, rows: int) -> str:
    """"rows 0–31, 64–95" of the shards ``shards`` (at most 4 ranges named)."""
    ranges = [f"{k * size}–{min((k + 1) * size, rows) - 1}" for k in shards[:4]]
    return "rows " + ", ".join(ranges) + (f" and {len(shards) - 4} more shard(s)" if len(shards) > 4 else "")


def _blocks(array, step: int):
    """Consecutive blocks of ``step`` rows of ``array`` (an ``NpyFile``: read block by block, flat memory)."""
    for lo in range(0, len(array), step):
        yield array.span(lo, min(lo + step, len(array)))


def _shard_checksums(array, size: int, chunk_bytes: int = 1 << 26) -> list[str]:
    """The checksum of each shard of ``size`` rows of ``array`` (an ``NpyFile``), read ``chunk_bytes`` at a time:
    several shards per read, or a shard in several reads when it is larger."""
    row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * np.dtype(array.dtype).itemsize)
    per_read = max(1, chunk_bytes // row_bytes)
    if per_read >= size:
        return [_checksum(block[i:i + size]) for block in _blocks(array, size * (per_read // size))
                for i in range(0, len(block), size)]
    out = []
    for start in range(0, len(array), size):
        h = hashlib.sha256()
        for lo in range(start, min(start + size, len(array)), per_read):
            h.update(array.span(lo, min(lo + per_read, start + size, len(array))).reshape(-1).view(np.uint8))
        out.append(h.hexdigest()[:HEX] if digests_on() else "")
    return out


def _compare(spec: CacheSpec, out_dir: Path, key: str, stored: list, found: list, size: int, rows: int,
             when: str) -> None:
    """``spec.error`` naming the array and the rows of every shard whose checksum differs."""
    bad = [k for k, (a, b) in enumerate(zip(stored, found)) if a != b]
    if bad:
        path = out_dir / ARRAYS / f"{key}.npy"
        raise spec.error(f"{spec.dataset} cache array {path}: {_rows_text(bad, size, rows)} differ from the "
                         f"checksums recorded at prepare ({when}); rebuild it: {_rebuild(spec, out_dir)}.")


def _refresh_records(spec: CacheSpec, out_dir: Path, manifest: dict, keys) -> dict:
    """The manifest with the file records of the arrays ``keys`` (just verified) as they are now, written back
    when the folder is writable (else the next ``load`` verifies them again)."""
    arrays = {key: {**entry, "file": _file_record(out_dir / ARRAYS / f"{key}.npy")} if key in keys else entry
              for key, entry in manifest["arrays"].items()}
    manifest = {**manifest, "arrays": arrays}
    try:
        _write_json(out_dir / spec.manifest_name, manifest)
    except OSError as e:
        log.warning("%s cache %s: verified, but the manifest cannot record it (%s); the next load verifies again",
                    spec.dataset, out_dir, e)
    return manifest


def verify(spec: CacheSpec, out_dir) -> dict:
    """Re-read every array of the cache in ``out_dir`` and compare each shard's checksum with the one recorded at
    prepare (bit rot, a file replaced or edited after prepare); then check the content digest against the
    parameters and item digests.

    Returns
    -------
    dict ``{"arrays", "rows", "bytes", "seconds"}`` when everything matches (an array file touched or copied
    since, with the same bytes, gets its record in the manifest refreshed).

    Raises
    ------
    spec.error
        one sentence naming the array and the rows whose bytes differ, or the broken file.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    manifest = _checked_manifest(spec, out_dir)
    sums = _checksums(spec, out_dir, manifest)
    _require_digests(spec, out_dir, sums)
    size, rows = sums["shard_size"], manifest["rows"]
    total = 0
    for key in manifest["arrays"]:
        path = out_dir / ARRAYS / f"{key}.npy"
        _compare(spec, out_dir, key, sums["arrays"][key], _shard_checksums(NpyFile(path), size), size, rows,
                 "bit rot, or a file replaced or edited since")
        total += path.stat().st_size
    _check_content(spec, out_dir, manifest, _blocks(NpyFile(out_dir / ARRAYS / f"{DIGEST}.npy"), 1 << 15))
    moved = [key for key, entry in manifest["arrays"].items()
             if entry.get("file") != _file_record(out_dir / ARRAYS / f"{key}.npy")]
    if moved:
        _refresh_records(spec, out_dir, manifest, moved)
    return {"arrays": len(manifest["arrays"]), "rows": rows, "bytes": total,
            "seconds": time.perf_counter() - started}


def _check_content(spec: CacheSpec, out_dir: Path, manifest: dict, digests: np.ndarray) -> None:
    """``spec.error`` when the manifest's parameters (or its content digest) no longer give the content digest
    of the item digests: the manifest was edited after prepare, e.g. ``params.frames``, and would describe
    arrays of another shape or content."""
    if _content_digest(manifest["format"], manifest["version"], manifest["params"], digests) != \
            manifest["content_digest"]:
        raise spec.error(f"{spec.dataset} manifest {out_dir / spec.manifest_name}: its params (or content_digest) "
                         "were changed after prepare, they no longer describe the arrays; rebuild it: "
                         f"{_rebuild(spec, out_dir)}.")


def _require_digests(spec: CacheSpec, out_dir: Path, sums: dict) -> None:
    """``spec.error`` for a cache built without digests and checksums (``MKE_PREPARE_DIGESTS=0``, the prepare
    benchmark's setting): it has no content identity, so no run may read it (its split id could not tell its rows
    from other data), and its empty checksums must not read as bit rot."""
    if any(not value for shards in sums["arrays"].values() for value in shards):
        raise spec.error(f"{spec.dataset} cache {out_dir} was prepared without content digests "
                         "(MKE_PREPARE_DIGESTS=0, a benchmark setting), so runs could not tell its rows from other "
                         f"data; rebuild it without that variable: {_rebuild(spec, out_dir)}.")


def _no_valid_row(spec: CacheSpec, out_dir: Path, manifest: dict) -> str:
    skipped = manifest.get("skipped") if isinstance(manifest.get("skipped"), list) else []
    reasons = [f"{s.get('file') or s.get('name') or s.get('item')}: {s.get('reason')}" if isinstance(s, dict)
               else str(s) for s in skipped[:3]]
    first = f" (first reasons: {'; '.join(reasons)})" if reasons else ""
    return (f"{spec.dataset} cache {out_dir} holds no valid clip: all {manifest['rows']} rows are marked unreadable"
            f"{first}; check the source files, then rebuild it: {_rebuild(spec, out_dir)}.")


def load(spec: CacheSpec, out_dir) -> dict:
    """The cache's arrays plus ``manifest``; ``spec.error`` naming the file and the fix otherwise.

    What is checked: the manifest and every array file's header and size (``_checked_manifest``); each array
    file's bytes, mtime_ns, ctime_ns and inode against those recorded at prepare: an array file replaced (e.g. by
    another cache's), edited or touched since is verified shard by shard before it is read (``verify``'s check,
    for that array); the checksums of the arrays read whole anyway (``valid``, ``digest`` and ``spec.small``); the
    content digest against the parameters and item digests (a hand-edited ``params``); at least one valid row
    (first). Bit rot inside a large array that left its file's record alone is ``verify``'s to find.

    Returns
    -------
    dict: each of ``spec.small`` as an np.ndarray of the valid rows; each other array as
    ``LazyRows(NpyFile(path), index=valid rows, key=content_key(...))`` (no byte read: rows are read on demand
    with ``preadv``, see ``mke_experiments.data.rows.NpyFile``); and
    ``manifest``. Only the headers, ``valid``, ``digest`` and the small arrays are read (and an array whose file
    changed since prepare, once, to verify it).
    """
    out_dir = Path(out_dir)
    manifest = _checked_manifest(spec, out_dir)
    sums = _checksums(spec, out_dir, manifest)
    _require_digests(spec, out_dir, sums)
    size, n = sums["shard_size"], manifest["rows"]
    paths = {key: out_dir / ARRAYS / f"{key}.npy" for key in manifest["arrays"]}
    rows = np.flatnonzero(np.load(paths[VALID], allow_pickle=False))
    if not len(rows):  # build never publishes such a cache (its reader refuses): say so before any checksum
        raise spec.error(_no_valid_row(spec, out_dir, manifest))
    moved = [key for key, entry in manifest["arrays"].items() if entry.get("file") != _file_record(paths[key])]
    for key in moved:  # replaced, edited or touched since prepare (or the folder was copied): verify before reading
        log.warning("%s cache array %s changed on disk since prepare (size, time or inode); verifying it",
                    spec.dataset, paths[key])
        _compare(spec, out_dir, key, sums["arrays"][key], _shard_checksums(NpyFile(paths[key]), size), size, n,
                 "the file was replaced or edited since")
    for key in (VALID, DIGEST, *spec.small):  # small, read whole anyway: their checksums cost little
        if key in paths:
            _compare(spec, out_dir, key, sums["arrays"][key], _shard_checksums(NpyFile(paths[key]), size, 1 << 18),
                     size, n, "bit rot, or the file was edited since")
    _check_content(spec, out_dir, manifest, _blocks(NpyFile(paths[DIGEST]), 1 << 13))
    if moved:  # every check passed: a copied or touched cache is verified once, not at every load
        manifest = _refresh_records(spec, out_dir, manifest, moved)
    out = {}
    for key in manifest["arrays"]:
        if key in (VALID, DIGEST):
            continue
        if key in spec.small:
            out[key] = np.asarray(np.load(paths[key], mmap_mode="r", allow_pickle=False)[rows])
        else:
            out[key] = LazyRows(NpyFile(paths[key]), index=rows, key=content_key(manifest, key))
    return {**out, "manifest": manifest}
