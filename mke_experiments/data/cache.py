"""The prepared-cache contract every real-data reader follows: one ``.npz`` of arrays and a
``manifest.json`` that records its format, parameters, source fingerprint, byte size and shapes.

``prepare`` checks its ``--out`` folder with ``check_out_dir``, returns a cache it can reuse with
``reuse`` (``current`` says whether one can be), and writes a new one with ``write``; ``load`` reads
one and turns every way it can be broken into one sentence naming the file and the command that
rebuilds it.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mke_theory.records import atomic_write

log = logging.getLogger(__name__)

# The manifest entries ``write`` sets for every reader, in this order; the reader's own follow.
SHARED_KEYS = ("format", "version", "complete", "created", "seconds_taken", "cache", "cache_bytes", "params",
               "source_fingerprint", "shapes")


@dataclass(frozen=True)
class CacheSpec:
    dataset: str  # "RAVDESS", "NYU Depth V2": how messages name the data
    cache_name: str  # e.g. "ravdess_cache.npz"
    manifest_name: str  # "manifest.json"
    format: str  # the manifest's "format" value
    version: int
    arrays: Callable[[dict], tuple]  # manifest -> names of the arrays the npz must hold
    error: type  # the reader's MKEError subclass
    hint: str  # "run mke-exp prepare TASK --raw DIR --out DIR"


def library_versions(**libraries) -> dict:
    """Python, numpy and this package's versions plus ``libraries`` (name → version), for a manifest."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        mke = version("mke")
    except PackageNotFoundError:
        mke = "unknown"
    return {"python": platform.python_version(), "numpy": np.__version__, "mke": mke, **libraries}


def read_manifest(spec: CacheSpec, out_dir: Path) -> dict | None:
    try:
        return json.loads((Path(out_dir) / spec.manifest_name).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def current(spec: CacheSpec, out_dir: Path, params: dict, fingerprint) -> dict | None:
    """The manifest when the cache on disk was built from this source with these parameters and is complete."""
    manifest = read_manifest(spec, out_dir)
    cache = Path(out_dir) / spec.cache_name
    if (manifest is None or manifest.get("format") != spec.format or manifest.get("version") != spec.version
            or manifest.get("params") != params or manifest.get("source_fingerprint") != fingerprint
            or not manifest.get("complete") or not cache.is_file()
            or cache.stat().st_size != manifest.get("cache_bytes")):
        return None
    try:
        with zipfile.ZipFile(cache) as archive:
            if sorted(archive.namelist()) != sorted(f"{name}.npy" for name in spec.arrays(manifest)):
                return None
    except (OSError, zipfile.BadZipFile):
        return None
    return manifest


def check_out_dir(spec: CacheSpec, out_dir) -> Path:
    """``out_dir`` as a Path; ``spec.error`` when it is an existing file (it may not exist yet)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise spec.error(f"cache folder {out_dir} is a file; pass a folder to --out.")
    return out_dir


def reuse(spec: CacheSpec, out_dir: Path, params: dict, fingerprint,
          progress: Callable[[int], object] | None = None, total: int = 0) -> dict | None:
    """The manifest plus ``reused=True`` when ``current`` finds the cache up to date, else None.

    A reused cache is logged, and ``progress(total)`` is called: the work ``prepare`` had to do is done.
    """
    manifest = current(spec, out_dir, params, fingerprint)
    if manifest is None:
        return None
    log.info("%s cache %s is up to date (same source, same parameters); nothing to do", spec.dataset,
             Path(out_dir) / spec.cache_name)
    if progress is not None:
        progress(total)
    return {**manifest, "reused": True}


def write(spec: CacheSpec, out_dir: Path, arrays: dict[str, np.ndarray], params: dict, fingerprint,
          started: float, fields: dict) -> dict:
    """Write the cache and then its manifest, each atomically, so an interrupted run leaves the previous
    cache readable; ``out_dir`` is created.

    Parameters
    ----------
    arrays : name → array, saved with ``np.savez_compressed`` to ``out_dir / spec.cache_name``.
    params, fingerprint : what ``current`` compares on the next ``prepare``.
    started : ``time.time()`` when ``prepare`` began its work, for ``seconds_taken``.
    fields : the reader's own manifest entries (source, counts, ``versions``, …), after the shared ones.

    Returns
    -------
    dict, the manifest written: the ``SHARED_KEYS`` (``complete`` True, ``shapes`` name → list), then ``fields``.
    """
    clash = [key for key in SHARED_KEYS if key in fields]
    if clash:
        raise ValueError(f"cache.write: fields {clash} are shared manifest entries that write sets itself")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = out_dir / spec.cache_name
    atomic_write(cache, lambda f: np.savez_compressed(f, **arrays))
    manifest = {
        "format": spec.format, "version": spec.version, "complete": True,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds_taken": round(time.time() - started, 3),
        "cache": spec.cache_name, "cache_bytes": cache.stat().st_size, "params": params,
        "source_fingerprint": fingerprint, "shapes": {name: list(array.shape) for name, array in arrays.items()},
        **fields,
    }
    atomic_write(out_dir / spec.manifest_name,
                 lambda f: f.write((json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode()))
    return manifest


def load(spec: CacheSpec, out_dir) -> dict:
    """The cache's arrays plus ``manifest``; ``spec.error`` naming the file and the fix otherwise."""
    out_dir = Path(out_dir)
    cache, manifest_path = out_dir / spec.cache_name, out_dir / spec.manifest_name
    rebuild = spec.hint.replace("--out DIR", f"--out {out_dir}")
    name, error = spec.dataset, spec.error
    if not out_dir.is_dir():
        raise error(f"{name} cache folder {out_dir} does not exist; {rebuild}.")
    for path in (cache, manifest_path):
        if not path.is_file():
            raise error(f"{name} cache file {path} is missing; {rebuild}.")
    manifest = read_manifest(spec, out_dir)
    if manifest is None or manifest.get("format") != spec.format or not manifest.get("complete"):
        raise error(f"{name} manifest {manifest_path} is corrupt or not a {name} cache manifest; "
                    f"rebuild it: {rebuild}.")
    if manifest.get("version") != spec.version:
        raise error(f"{name} cache {cache} has format version {manifest.get('version')}, this library "
                    f"reads {spec.version}; rebuild it: {rebuild}.")
    if cache.stat().st_size != manifest.get("cache_bytes"):
        raise error(f"{name} cache {cache} does not match its manifest (an interrupted prepare?); "
                    f"rebuild it: {rebuild}.")
    try:
        with np.load(cache, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in spec.arrays(manifest)}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise error(f"{name} cache {cache} is corrupt ({type(e).__name__}: {e}); rebuild it: {rebuild}.") from None
    shapes = {key: list(array.shape) for key, array in arrays.items()}
    if shapes != manifest.get("shapes"):
        raise error(f"{name} cache {cache} does not match its manifest (shapes {shapes}); rebuild it: {rebuild}.")
    return {**arrays, "manifest": manifest}
