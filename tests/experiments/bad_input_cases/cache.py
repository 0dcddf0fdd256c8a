"""Damaged and hand-edited prepared caches (issue 23, cases 9, 10 and 11): each ends in one sentence naming the
file or manifest key, never a traceback, never a run on data the manifest does not describe. The caches are
RAVDESS caches in the real format written without decoding media (``testing.ravdess.write_synthetic_cache``),
then spoiled as a user or a failing disk would."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from mke_experiments.data import cache as cache_store

RUN = ("--epochs", "1", "--seeds", "0", "--device", "cpu", "--methods", "teacher")


def _edit_manifest(out: Path, edit) -> None:
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def _in_place(path: Path, offset_from_end: int, data: bytes) -> None:
    """Overwrite bytes of ``path`` in place and restore its time stamps, as a careful hand does (same size, inode
    and mtime; the ctime changes, and bit rot would leave even that)."""
    stat = path.stat()
    with open(path, "r+b") as f:
        f.seek(stat.st_size - offset_from_end)
        f.write(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _nan(out: Path) -> None:
    _in_place(out / "arrays" / "logmel.npy", 2 * 51 * 3, np.full(3, np.nan, "<f2").tobytes())  # in a train row


def _shorter(out: Path) -> None:
    frames = np.load(out / "arrays" / "frames.npy")
    np.save(out / "arrays" / "frames.npy", frames[:56])
    _edit_manifest(out, lambda m: m["arrays"]["frames"].update(shape=[56, *m["arrays"]["frames"]["shape"][1:]]))


SPOIL = {
    "cache_nan": _nan,
    "cache_entry_not_object": lambda out: _edit_manifest(out, lambda m: m["arrays"].update(frames="frames.npy")),
    "cache_garbage_dtype": lambda out: _edit_manifest(out, lambda m: m["arrays"]["frames"].update(dtype="<q9")),
    "cache_params_null": lambda out: _edit_manifest(out, lambda m: m.update(params=None)),
    "cache_params_deleted": lambda out: _edit_manifest(out, lambda m: m.pop("params")),
    "cache_shorter": _shorter,
    "cache_version_string": lambda out: _edit_manifest(out, lambda m: m.update(version=str(m["version"]))),
    "cache_no_valid": lambda out: np.save(out / "arrays" / "valid.npy", np.zeros(64, bool)),
    "cache_params_frames": lambda out: _edit_manifest(out, lambda m: m["params"].update(frames=4)),
    "cache_copied_array": lambda out: shutil.copy2(out.parent / "cache_other" / "arrays" / "frames.npy",
                                                   out / "arrays" / "frames.npy"),
    "cache_flipped": lambda out: _in_place(out / "arrays" / "frames.npy", 1000, b"\xff\x00\xff"),
    "cache_no_checksums": lambda out: (out / cache_store.CHECKSUMS).unlink(),
    "cache_not_a_cache": lambda out: (shutil.rmtree(out / "arrays"),
                                      (out / "manifest.json").write_text('{"format": "my-own-cache"}')),
}


def make_files(tmp, build=None) -> dict:
    """One spoiled synthetic RAVDESS cache per ``SPOIL`` entry (``build(folder, seed)`` writes the
    cache; the synthetic one by default), plus ``cache_other``, a second cache of other content."""
    from mke_experiments.testing.ravdess import write_synthetic_cache

    build = build or (lambda folder, seed: write_synthetic_cache(folder, seed=seed))
    tmp = Path(tmp)
    files = {"cache_other": build(tmp / "cache_other", 1), "cache_no_such": tmp / "cache_no_such_folder"}
    for name, spoil in SPOIL.items():  # each built in place: a copy would have other inodes, which load verifies
        files[name] = build(tmp / name, 0)
        spoil(tmp / name)
    return files


CASES = [
    # 9: values and hand edits the readers did not check (a traceback before)
    ("cache-nan-in-array", "exp", ["run", "ravdess", "--data", "{cache_nan}", *RUN],
     "logmel.npy: rows 48–63 differ from the checksums"),  # rewritten in place: its ctime tells load to verify it
    ("cache-entry-not-object", "exp", ["run", "ravdess", "--data", "{cache_entry_not_object}", *RUN],
     "arrays entry 'frames' is str"),
    ("cache-garbage-dtype", "exp", ["run", "ravdess", "--data", "{cache_garbage_dtype}", *RUN],
     "has dtype '<q9', not a numpy dtype"),
    ("cache-params-null", "exp", ["run", "ravdess", "--data", "{cache_params_null}", *RUN], "has params None"),
    ("cache-params-deleted", "exp", ["run", "ravdess", "--data", "{cache_params_deleted}", *RUN], "has params None"),
    ("cache-shorter-array", "exp", ["run", "ravdess", "--data", "{cache_shorter}", *RUN],
     "arrays entry 'frames' has 56 rows but the manifest says rows=64"),
    # 11: unclear messages
    ("cache-version-string", "exp", ["run", "ravdess", "--data", "{cache_version_string}", *RUN],
     "has format version '3', not a whole number"),
    ("cache-no-valid-clip", "exp", ["run", "ravdess", "--data", "{cache_no_valid}", *RUN], "holds no valid clip"),
    # 10 and 2: a manifest that no longer describes its arrays, arrays of another cache, bit rot
    ("cache-params-frames-edited", "exp", ["run", "ravdess", "--data", "{cache_params_frames}", *RUN],
     "its params (or content_digest) were changed after prepare"),
    ("cache-array-of-another-cache", "exp", ["run", "ravdess", "--data", "{cache_copied_array}", *RUN],
     "frames.npy: rows 0–15"),
    ("cache-checksums-missing", "exp", ["run", "ravdess", "--data", "{cache_no_checksums}", *RUN],
     "checksums.json is missing"),
    ("verify-flipped-bytes", "exp", ["verify", "{cache_flipped}"], "frames.npy: rows 48–63 differ from the checksums"),
    ("verify-copied-array", "exp", ["verify", "{cache_copied_array}"], "frames.npy: rows 0–15"),
    ("verify-params-edited", "exp", ["verify", "{cache_params_frames}"], "params (or content_digest) were changed"),
    ("verify-missing-folder", "exp", ["verify", "{cache_no_such}"], "cache_no_such_folder does not exist"),
    ("verify-not-a-cache", "exp", ["verify", "{cache_not_a_cache}"], "format 'my-own-cache'"),
]
