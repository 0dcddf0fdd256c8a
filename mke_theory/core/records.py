"""Run records: one JSON file per (task, method, variant, seed, config), written atomically.

Every command that trains something writes these; every table and figure reads them. A record
holds at least ``task``, ``method``, ``seed``, ``metrics`` (fractions, e.g. ``test_accuracy``),
``config`` (resolved), ``wall_time_s`` and ``version``, plus the schema version, the config hash,
the split id, the git revision, the hardware and the world size.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from mke_theory.core import disk
from mke_theory.core.errors import MKEError
from mke_theory.core.methods import METHODS

SCHEMA_VERSION = 1
REQUIRED = ("schema_version", "task", "method", "seed", "metrics", "config", "wall_time_s", "version")


class RecordError(MKEError):
    """A record file that is missing, malformed or in the way."""


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def config_hash(config: dict) -> str:
    """First 10 hex digits of the SHA-256 of the config as canonical JSON."""
    text = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The checkout's commit if the package runs from a git work tree, else None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def make_record(task: str, method: str, seed: int, metrics: dict, config: dict, wall_time_s: float,
                variant: str = "", history: list | None = None, hardware: str | None = None,
                world_size: int = 1, split_id: str | None = None, ensemble_size: int = 1) -> dict:
    """Assemble a complete record (validated) from what a run measured."""
    from mke_theory import __version__

    record = dict(
        schema_version=SCHEMA_VERSION, task=task, method=method, variant=variant, seed=int(seed),
        metrics=_jsonable(metrics), config=_jsonable(config), config_hash=config_hash(config),
        split_id=split_id if split_id is not None else config.get("split_id"),
        wall_time_s=float(wall_time_s), history=_jsonable(history or []),
        hardware=hardware or f"{platform.machine()} {platform.processor() or ''} cpu x{os.cpu_count()}".strip(),
        world_size=int(world_size), ensemble_size=int(ensemble_size), version=__version__,
        git_revision=git_revision(),
    )
    validate_record(record)
    return record


def validate_record(record: dict, source: str = "record") -> dict:
    """Raise ``RecordError`` naming ``source`` if the record misses a field or has a wrong type."""
    if not isinstance(record, dict):
        raise RecordError(f"{source}: a run record must be a JSON object")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise RecordError(f"{source}: missing field(s) {', '.join(missing)}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise RecordError(f"{source}: schema_version {record['schema_version']!r}, this library reads {SCHEMA_VERSION}")
    if not isinstance(record["task"], str) or not record["task"].strip():
        raise RecordError(f"{source}: task must be a non-empty name, got {record['task']!r}")
    if record["method"] not in METHODS:
        raise RecordError(f"{source}: unknown method {record['method']!r}; known: {', '.join(METHODS)}")
    if not isinstance(record.get("variant", ""), str):
        raise RecordError(f"{source}: variant must be a string, got {record['variant']!r}")
    if not isinstance(record["seed"], int) or isinstance(record["seed"], bool) or record["seed"] < 0:
        raise RecordError(f"{source}: seed must be an integer >= 0, got {record['seed']!r}")
    metrics = record["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        raise RecordError(f"{source}: metrics must map names to numbers, got {metrics!r}")
    for name, value in metrics.items():  # a bool is an int to Python, never a score
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{source}: metric {name} must be a number, got {value!r}")
    if not isinstance(record["config"], dict):
        raise RecordError(f"{source}: config must be an object")
    stored = record.get("config_hash")
    if stored is not None and stored != config_hash(record["config"]):  # the config was edited, or the hash
        raise RecordError(f"{source}: config_hash {stored!r} does not match the record's config (its hash is "
                          f"{config_hash(record['config'])!r}); the record was edited by hand: re-run it or "
                          "move it out of the folder")
    return record


def run_stem(task: str, method: str, seed: int, config_hash: str, variant: str = "") -> str:
    """``<task>__<method>[__<variant>]__seed<seed>__<config hash>``: the name of every file of one run
    (its record ``.json``, checkpoint ``.pt`` and example predictions ``.npz``)."""
    parts = [task, method] + ([variant] if variant else []) + [f"seed{seed}", config_hash]
    return "__".join(p.replace(os.sep, "-").replace(" ", "") for p in parts)


def record_path(record: dict, out_dir: str | os.PathLike) -> Path:
    """``DIR/<run_stem>.json``."""
    stem = run_stem(record["task"], record["method"], record["seed"],
                    record.get("config_hash") or config_hash(record["config"]), record.get("variant") or "")
    return Path(out_dir) / f"{stem}.json"


def write_record(record: dict, out_dir: str | os.PathLike, force: bool = False) -> Path:
    """Write atomically (temporary file, fsync, rename): a reader never sees half a record.

    A finished record with the same identity is never replaced unless ``force`` is true.
    """
    validate_record(record)
    path = record_path(record, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not force:
        raise RecordError(f"{path} exists already; pass force=True (CLI: --force) to overwrite it")
    atomic_write(path, lambda f: f.write((json.dumps(record, indent=1, sort_keys=True) + "\n").encode()))
    return path


STALE_TMP_S = 3600.0  # a temporary file untouched this long belongs to a killed writer, never a live one


def _umask() -> int:
    """The process's umask, read without changing it where the system tells (Linux), else set and reset."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(path: str | os.PathLike, older_than_s: float = STALE_TMP_S) -> list[Path]:
    """Delete the hidden ``.NAME.XXXX.tmp`` files a killed ``atomic_write`` of ``path`` left behind.

    Only files not modified for ``older_than_s`` seconds go: a live writer (another process writing
    the same file now) keeps touching its own temporary file and is never disturbed. Returns them.
    """
    path = Path(path)
    removed, now = [], time.time()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        except OSError:  # vanished or not ours to remove: leave it
            continue
    return removed


def atomic_write(path: str | os.PathLike, write) -> None:
    """``write(binary_file)`` into a temporary file beside ``path``, fsync, then rename over ``path``.

    A reader sees the old file or the new one, never half of one; a failed write leaves no trace, and
    the temporaries of a killed earlier write of ``path`` are removed (``remove_stale_temporaries``).
    The file gets the mode a plain ``open`` would give it (0666 less the umask), not mkstemp's 0600.
    A disk that fills (or a quota reached) while writing, however ``write`` wraps the ``OSError`` (torch.save
    raises it with a RuntimeError of its writer as context), is ``disk.DiskFullError``: one sentence naming the
    folder and the space needed (``disk.write_failed``); ``path`` keeps its previous version.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # no inode or directory block left for the temporary file
        if disk.is_disk_full(e):
            raise disk.write_failed(path, 0, e) from None
        raise
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        written = os.stat(tmp).st_size if os.path.exists(tmp) else 0
        Path(tmp).unlink(missing_ok=True)
        if disk.is_disk_full(e, path.parent, written):  # after the unlink: the space it held is free again
            raise disk.write_failed(path, written, e) from None
        raise


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond float's range
        return False


def read_record(path: str | os.PathLike) -> dict:
    """Read and validate one record; errors name the file."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{path}: not a readable JSON run record ({e})") from None
    validate_record(record, source=str(path))
    undefined = [(k, v) for k, v in record["metrics"].items() if not _finite(v)]  # NaN, ±inf (json reads NaN and
    if undefined:  # Infinity) or an integer beyond float: no table or test can use them
        name, value = undefined[0]
        shown = "NaN" if value != value else value if isinstance(value, float) else "too large"
        raise RecordError(f"{path}: metric {name} is {shown}; re-run that method (mke-exp run ... --force) or move "
                          "the record out of the folder")
    return record


def record_identity(record: dict) -> tuple:
    """(task, method, variant, seed, config hash): two records with equal identity are duplicates."""
    return (record["task"], record["method"], record.get("variant", ""), record["seed"],
            record.get("config_hash") or config_hash(record["config"]))


def read_records(folder: str | os.PathLike, on_duplicate: str = "error") -> list[dict]:
    """All records of a folder (recursively), sorted by file name; errors name the bad file.

    Two files holding the same run (same task, method, variant, seed and config hash, e.g. after
    copying folders together) raise ``RecordError`` naming both, unless ``on_duplicate="first"``
    keeps the first by file name.
    """
    if on_duplicate not in ("error", "first"):
        raise MKEError(f"on_duplicate must be one of 'error', 'first'; got {on_duplicate!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise RecordError(f"{folder}: no such folder of run records")
    records, seen = [], {}
    for path in sorted(folder.rglob("*.json")):
        record = read_record(path)
        key = record_identity(record)
        if key in seen:
            if on_duplicate == "error":
                raise RecordError(f"{path} duplicates {seen[key]} (same task, method, variant, seed and config); "
                                  "remove one of them")
            continue
        seen[key] = path
        records.append(record)
    return records
