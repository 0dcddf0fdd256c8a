"""The prepared-cache contract every real-data reader follows: one ``.npz`` of arrays and a
``manifest.json`` that records its format, parameters, source fingerprint, byte size and shapes.

``current`` says whether a cache on disk can be reused by ``prepare``; ``load`` reads one and
turns every way it can be broken into one sentence naming the file and the command that rebuilds it.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CacheSpec:
    dataset: str  # "RAVDESS", "NYU Depth V2": how messages name the data
    cache_name: str  # e.g. "ravdess_cache.npz"
    manifest_name: str  # "manifest.json"
    format: str  # the manifest's "format" value
    version: int
    arrays: Callable[[dict], tuple]  # manifest -> names of the arrays the npz must hold
    error: type  # the reader's ValueError subclass
    hint: str  # "run mke-exp prepare TASK --raw DIR --out DIR"


AUDIO_VIDEO_RULES = "use frames >= 1, size >= 8, sample_rate >= 1000, n_mels >= 1 and seconds > 0"


def check_audio_video_params(error: type, frames: int, size: int, sample_rate: int, n_mels: int,
                             seconds: float) -> None:
    """The clip parameters every audio-visual ``prepare`` takes; ``error`` names the one out of range."""
    checks = [("frames", frames, frames >= 1), ("size", size, size >= 8),
              ("sample_rate", sample_rate, sample_rate >= 1000), ("n_mels", n_mels, n_mels >= 1),
              ("seconds", seconds, seconds > 0)]
    for label, value, ok in checks:
        if not ok:
            raise error(f"prepare: {label}={value!r} is out of range; {AUDIO_VIDEO_RULES}.")


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
