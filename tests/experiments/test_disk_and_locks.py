"""Full disks and folder locks (issue 23, point 2): ``prepare`` checks and reserves the space of its arrays before
it decodes anything, every file ``run`` writes ends on a full disk in one sentence naming the folder, nothing
finished is lost, and a second ``prepare`` or ``run`` into the same folder stops (prepare) or waits (run),
naming the process that holds it.

Fast tests simulate the disk (``shutil.disk_usage``, ``os.posix_fallocate`` and the files ``atomic_write`` opens,
patched); the ``slow`` ones (CI skips them) fill a real tmpfs where one can be mounted and kill real processes.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mke_experiments.cli import cli
from mke_experiments.config import resolve_config
from mke_experiments.data import cache
from mke_experiments.protocol import run_seed
from mke_experiments.protocol.files import RunFiles
from mke_experiments.protocol.seeds import run_config
from mke_experiments.tasks import get_task
from mke_experiments.tasks.arrays import split_from_arrays, standardize
from mke_experiments.testing.bundles import write_bundle
from mke_experiments.testing.cache import SPEC, ToyError, build_toy
from mke_theory.core import disk, records
from mke_theory.core.disk import DiskFullError
from mke_theory.core.records import config_hash, read_records
from mke_theory.core.split import SPLIT_PARTS
from mke_theory.generators import gaussian_mixture

ROOT = Path(__file__).resolve().parents[2]
MKE_EXP = [sys.executable, "-m", "mke_experiments.cli"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
Usage = namedtuple("Usage", "total used free")
needs_fcntl = pytest.mark.skipif(disk.fcntl is None, reason="no fcntl: no locks on this platform")


def little_space(monkeypatch, free: int) -> None:
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: Usage(10 ** 12, 10 ** 12 - free, free))


class SmallDisk:
    """What ``atomic_write`` writes goes to a disk with room for ``room`` more bytes: the write that does not fit
    writes what fits and fails with ENOSPC, as a real full disk does (a file object's ``write``, patched)."""

    def __init__(self, monkeypatch, room: int):
        self.room = room
        real_fdopen = os.fdopen
        monkeypatch.setattr(records.os, "fdopen", lambda fd, mode: _Metered(real_fdopen(fd, mode), self))


class _Metered:
    def __init__(self, f, small: SmallDisk):
        self.f, self.small = f, small

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        if n > self.small.room:
            self.f.write(memoryview(data).cast("B")[: self.small.room])
            self.small.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.small.room -= n
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def arrays_of(out) -> dict:
    return {path.stem: np.load(path) for path in sorted((out / cache.ARRAYS).glob("*.npy"))}


def assert_same_arrays(a, b) -> None:
    first, second = arrays_of(a), arrays_of(b)
    assert sorted(first) == sorted(second)
    for name in first:
        assert np.array_equal(first[name], second[name]), name


@pytest.fixture(scope="module")
def toy_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "out"
    build_toy(out, shard_size=8, workers=1)
    return out


# ---- prepare: the space of the arrays, checked and reserved before anything is decoded ------------------------
def test_prepare_with_too_little_space_says_so_before_decoding_and_keeps_the_previous_cache(toy_reference, tmp_path,
                                                                                             monkeypatch):
    """Before: nothing was checked; the arrays were sparse files and a full disk a SIGBUS while writing a row."""
    out = tmp_path / "out"
    shutil.copytree(toy_reference, out)
    little_space(monkeypatch, free=100)
    with pytest.raises(DiskFullError) as e:  # fail_at=0: decoding anything first would be a ToyError
        build_toy(out, shard_size=8, workers=1, params={"scale": 2}, fail_at=0)
    message = str(e.value)
    assert message.startswith(f"{out}: not enough space for the Toy cache's arrays (40 rows): ")
    assert message.endswith(" needed, 100 B free on its disk; free some space or choose another --out (a previous "
                            "cache there and the finished shards are kept).")
    assert not list((out / cache.PARTIAL).rglob("*.npy"))  # no space is held by arrays that were not written
    assert cache.load(SPEC, out)["manifest"]["params"] == {"scale": 1}  # the previous cache, still readable
    monkeypatch.undo()
    assert build_toy(out, shard_size=8, workers=1, params={"scale": 2})["params"] == {"scale": 2}


def test_a_prepare_reserves_its_arrays_when_it_creates_them(tmp_path):
    """A reserved file has no holes left for a write through the memory map to fill (SIGBUS on a full disk)."""
    out = tmp_path / "out"
    with pytest.raises(cache.Interrupted):  # 5000 rows: arrays of many blocks, most of them not written yet
        build_toy(out, n=5000, shard_size=500, workers=1, stop_after_shards=1)
    paths = sorted((out / cache.PARTIAL / cache.ARRAYS).glob("*.npy"))
    assert len(paths) >= 3
    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate on this platform")
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    os.truncate(probe, 1 << 20)
    if disk._unallocated(probe) == 0 or not disk.reserve([probe], tmp_path, "a probe", "x"):
        pytest.skip("this file system has no holes to fill or cannot reserve")
    assert [p.name for p in paths if disk._unallocated(p) > 0] == []


def test_a_disk_that_fills_while_the_arrays_are_reserved_is_the_sentence(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk.os, "posix_fallocate", full, raising=False)
    with pytest.raises(DiskFullError, match=rf"^{tmp_path / 'out'}: not enough space for the Toy cache's arrays"):
        build_toy(tmp_path / "out", shard_size=8, workers=1)
    assert not list((tmp_path / "out" / cache.PARTIAL).rglob("*.npy"))


def test_a_resumed_prepare_on_a_full_disk_keeps_its_shards_and_continues_later(toy_reference, tmp_path, monkeypatch):
    """Reserving again on resume (arrays of an older, sparse build) may meet a full disk: the shards stay."""
    out = tmp_path / "out"
    with pytest.raises(cache.Interrupted):
        build_toy(out, shard_size=8, workers=1, stop_after_shards=2)
    monkeypatch.setattr(disk, "_unallocated", lambda path: 4096)  # holes, as the old sparse arrays had
    little_space(monkeypatch, free=100)
    with pytest.raises(DiskFullError, match="not enough space for the Toy cache's arrays"):
        build_toy(out, shard_size=8, workers=1)
    assert cache.committed_shards(out) == [0, 1]
    monkeypatch.undo()
    manifest = build_toy(out, shard_size=8, workers=1)
    assert manifest["build"]["resumed_shards"] == 2
    assert_same_arrays(out, toy_reference)


def test_a_shard_that_cannot_be_recorded_on_a_full_disk_is_the_sentence_and_the_build_resumes(toy_reference, tmp_path,
                                                                                              monkeypatch):
    """The small files of a build (progress, shard notes, manifest) go through atomic_write: ENOSPC there is the
    sentence naming the folder, and the shards committed before it are kept."""
    out = tmp_path / "out"
    with pytest.raises(cache.Interrupted):  # progress.json and two shards' notes written
        build_toy(out, shard_size=8, workers=1, stop_after_shards=2)
    SmallDisk(monkeypatch, room=0)
    with pytest.raises(DiskFullError, match=rf"^{out / cache.PARTIAL / cache.SHARDS}: no space left on its disk "
                                            r"while writing 2\.json \("):
        build_toy(out, shard_size=8, workers=1)
    assert cache.committed_shards(out) == [0, 1]
    monkeypatch.undo()
    assert build_toy(out, shard_size=8, workers=1)["build"]["resumed_shards"] == 2
    assert_same_arrays(out, toy_reference)


def test_a_manifest_that_cannot_be_written_on_a_full_disk_moves_nothing_and_the_build_resumes(toy_reference,
                                                                                               tmp_path, monkeypatch):
    """Publishing writes checksums.json and the manifest before it moves any array: a full disk there keeps the
    previous cache readable and the finished build whole, and the same command then publishes without decoding."""
    out = tmp_path / "out"
    build_toy(out, n=16, shard_size=8, workers=1)  # a previous cache, other items
    real_write = cache._write_json

    def full(path, value, indent=1):
        if path.name == SPEC.manifest_name:
            raise DiskFullError(f"{path.parent}: no space left on its disk while writing {path.name}")
        return real_write(path, value, indent)

    monkeypatch.setattr(cache, "_write_json", full)
    with pytest.raises(DiskFullError, match="manifest.json"):
        build_toy(out, shard_size=8, workers=1)
    assert len(cache.load(SPEC, out)["names"]) == len(cache.load(SPEC, tmp_path / "out")["names"])  # readable
    assert cache.read_manifest(SPEC, out)["rows"] == 16  # still the previous cache, untouched
    monkeypatch.undo()
    manifest = build_toy(out, shard_size=8, workers=1)
    assert manifest["build"]["resumed_shards"] == manifest["build"]["shards"]  # nothing decoded again
    assert_same_arrays(out, toy_reference)


# ---- run: every file under --out ends on a full disk in one sentence --------------------------------------------
def bundle(tmp_path) -> Path:
    return write_bundle(tmp_path / "a.npz")


def run_args(data, out, *more):
    return ["run", "arrays", "--data", str(data), "--out", str(out), "--seeds", "0", "--epochs", "3",
            "--methods", "teacher,mm_student", "--device", "cpu", *more]


def test_a_checkpoint_save_on_a_full_disk_is_one_sentence_and_exit_1(tmp_path, monkeypatch):
    """torch.save's write fails with ENOSPC. Before: exit 70, an OSError naming no file, and a traceback."""
    data, out = bundle(tmp_path), tmp_path / "S"
    real_save = torch.save
    small = SimpleNamespace(room=0)

    def save_on_a_full_disk(obj, f, *args, **kwargs):  # the file object a checkpoint is written to fills up
        return real_save(obj, _Metered(f, small), *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    result = CliRunner().invoke(cli, run_args(data, out))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"Error: {out / 'checkpoints'}: no space left on its disk while writing arrays__teacher__seed0__" in \
        result.output
    assert not list(out.rglob(".*.tmp"))  # nothing half-written left


def test_a_run_that_fills_the_disk_keeps_what_it_finished_and_resumes_to_the_uninterrupted_records(tmp_path,
                                                                                                    monkeypatch):
    """Every file a run writes (checkpoints, records, models, teacher output, check bundles) goes through
    atomic_write; the disk fills somewhere in the middle of the run: one sentence, exit 1; once there is space
    again the same command resumes and its records equal those of a run that never met a full disk."""
    data = bundle(tmp_path)
    reference = CliRunner().invoke(cli, run_args(data, tmp_path / "reference"))
    assert reference.exit_code == 0, reference.output
    written = sum(p.stat().st_size for p in (tmp_path / "reference").rglob("*") if p.is_file())
    SmallDisk(monkeypatch, room=written // 2)  # about half of what the run writes fits
    full = CliRunner().invoke(cli, run_args(data, tmp_path / "S"))
    assert full.exit_code == 1 and "Traceback" not in full.output, full.output
    assert "no space left on its disk while writing" in full.output and str(tmp_path / "S") in full.output
    monkeypatch.undo()
    resumed = CliRunner().invoke(cli, run_args(data, tmp_path / "S"))
    assert resumed.exit_code == 0, resumed.output
    key = lambda r: (r["method"], r["seed"])  # noqa: E731
    want = {key(r): (r["metrics"], r["history"]) for r in read_records(tmp_path / "reference")}
    assert {key(r): (r["metrics"], r["history"]) for r in read_records(tmp_path / "S")} == want


# ---- locks ------------------------------------------------------------------------------------------------------

@needs_fcntl
def test_a_second_prepare_into_the_same_folder_stops_naming_the_first_and_touches_nothing(toy_reference, tmp_path,
                                                                                          holder):
    """Before: the second prepare discarded or wrote into the first's .partial; its error named a temporary file."""
    out = tmp_path / "out"
    with pytest.raises(cache.Interrupted):
        build_toy(out, shard_size=8, workers=1, stop_after_shards=2)
    first = holder(out / cache.PREPARE_LOCK)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ToyError) as e:  # other parameters: it would have discarded the first's shards
        build_toy(out, shard_size=8, workers=1, params={"scale": 5})
    assert str(e.value).startswith(f"{out}: another prepare of the Toy cache is writing this folder (pid {first.pid} "
                                   "on host ")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    os.kill(first.pid, signal.SIGKILL)  # a killed prepare leaves no stale lock: the next one continues
    first.wait()
    assert build_toy(out, shard_size=8, workers=1)["build"]["resumed_shards"] == 2
    assert_same_arrays(out, toy_reference)
    assert not (out / cache.PREPARE_LOCK).exists()


def arrays_split():
    split = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
    return standardize(split_from_arrays({k: getattr(split, k) for k in SPLIT_PARTS if getattr(split, k) is not None},
                                         source="test"))


def run_lock(cfg, split, out, seed) -> Path:
    return RunFiles(out, "arrays", seed, config_hash(run_config(cfg, split)), split.split_id).lock().path


class Stderr:
    """sys.stderr that calls ``on(line)`` for each write (the second run's waiting sentence)."""

    def __init__(self, on):
        self.on, self.lines = on, []

    def write(self, text):
        if text.strip():
            self.lines.append(text)
            self.on(text)
        return len(text)

    def flush(self):
        pass


@needs_fcntl
def test_a_second_run_of_the_same_identity_waits_for_the_first_then_resumes(tmp_path, holder, monkeypatch):
    """Before: two runs of one identity trained side by side, racing on the same checkpoint and records."""
    cfg, split, out = resolve_config(get_task("arrays"), ("train.epochs=2",)), arrays_split(), tmp_path / "S"
    first = holder(run_lock(cfg, split, out, 0))

    def release_first(text):  # the first ends once the second said it waits: no timing involved
        if "waiting for" in text and first.poll() is None:
            first.stdin.write("\n")
            first.stdin.flush()

    err = Stderr(release_first)
    monkeypatch.setattr(sys, "stderr", err)
    (record,) = run_seed(cfg, split, 0, ("teacher",), out=out).records
    monkeypatch.undo()
    (sentence,) = [line for line in err.lines if "waiting for" in line]
    assert sentence.startswith(f"{out}: waiting for another run of arrays seed 0, config {record['config_hash']} "
                               f"(pid {first.pid} on host ")
    assert first.wait(timeout=60) == 0
    assert [r["method"] for r in read_records(out)] == ["teacher"]
    assert not list(out.glob(".*.lock"))


@needs_fcntl
def test_runs_of_other_seeds_into_the_same_folder_do_not_wait(tmp_path, holder, monkeypatch):
    """A job array over seeds writing into one folder runs side by side, as before."""
    cfg, split, out = resolve_config(get_task("arrays"), ("train.epochs=2",)), arrays_split(), tmp_path / "S"
    holder(run_lock(cfg, split, out, 0))

    def never(text):
        assert "waiting for" not in text, text

    monkeypatch.setattr(sys, "stderr", Stderr(never))
    assert [r["seed"] for r in run_seed(cfg, split, 1, ("teacher",), out=out).records] == [1]


# ---- slow: a real small file system, real processes killed ------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MiB tmpfs mounted at ``tmp_path/disk`` (root and a kernel that lets us mount), else skip."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_prepare_into_a_real_full_disk_is_one_sentence_not_a_sigbus(tiny_disk, tmp_path):
    """Before: the process died of SIGBUS (exit 135 from a shell, -7 here) with no message."""
    code = ("from mke_experiments.testing.cache import build_toy\n"
            f"build_toy({str(tiny_disk / 'out')!r}, n=100000, shard_size=5000, workers=1)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert f"DiskFullError: {tiny_disk / 'out'}: not enough space for the Toy cache's arrays (100000 rows)" in \
        result.stderr


@pytest.mark.slow
def test_run_into_a_real_full_disk_is_one_sentence_and_resumes_once_there_is_space(tiny_disk, tmp_path):
    data = bundle(tmp_path)
    reference = subprocess.run(MKE_EXP + run_args(data, tmp_path / "reference"), capture_output=True, text=True,
                               env=ENV, timeout=300)
    assert reference.returncode == 0, reference.stderr
    filler = tiny_disk / "filler"  # leave a little room: the run fills it mid-way
    written = sum(p.stat().st_size for p in (tmp_path / "reference").rglob("*") if p.is_file())
    free = shutil.disk_usage(tiny_disk).free
    filler.write_bytes(b"\0" * max(0, free - written // 2))
    out = tiny_disk / "S"
    full = subprocess.run(MKE_EXP + run_args(data, out), capture_output=True, text=True, env=ENV, timeout=300)
    assert full.returncode == 1, (full.returncode, full.stderr[-3000:])
    assert "Traceback" not in full.stderr and "no space left on its disk while writing" in full.stderr
    filler.unlink()
    resumed = subprocess.run(MKE_EXP + run_args(data, out), capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    key = lambda r: (r["method"], r["seed"])  # noqa: E731
    want = {key(r): (r["metrics"], r["history"]) for r in read_records(tmp_path / "reference")}
    assert {key(r): (r["metrics"], r["history"]) for r in read_records(out)} == want


@pytest.mark.slow
@needs_fcntl
def test_two_prepares_from_the_command_line(tmp_path, holder):
    """mke-exp prepare into a folder whose lock another process holds: exit 1, the sentence naming it."""
    raw = tmp_path / "raw" / "Actor_01"
    raw.mkdir(parents=True)
    for emotion in ("01", "02"):  # never decoded: the lock is taken before
        (raw / f"01-01-{emotion}-01-01-01-01.mp4").write_bytes(b"garbage")
        (raw / f"03-01-{emotion}-01-01-01-01.wav").write_bytes(b"garbage")
    out = tmp_path / "out"
    out.mkdir()
    first = holder(out / cache.PREPARE_LOCK)
    second = subprocess.run(MKE_EXP + ["prepare", "ravdess", "--raw", str(raw.parent), "--out", str(out)],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert second.returncode == 1, second.stderr
    assert (f"Error: {out}: another prepare of the RAVDESS cache is writing this folder (pid {first.pid} on host "
            in second.stderr)
    assert "Traceback" not in second.stderr


@pytest.mark.slow
@needs_fcntl
def test_a_run_killed_mid_way_leaves_no_stale_lock_and_resumes_to_the_uninterrupted_records(tmp_path):
    data = bundle(tmp_path)
    args = ["run", "arrays", "--data", str(data), "--seeds", "0,1", "--epochs", "40", "--methods",
            "teacher,mm_student", "--device", "cpu"]
    reference = subprocess.run(MKE_EXP + args + ["--out", str(tmp_path / "reference")], capture_output=True,
                               text=True, env=ENV, timeout=300)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "S"
    child = subprocess.Popen(MKE_EXP + args + ["--out", str(out)], env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None and not list(out.glob("checkpoints/*.pt")):
            time.sleep(0.01)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert list(out.glob(".*.lock")), "killed before it took its lock"
    resumed = subprocess.run(MKE_EXP + args + ["--out", str(out)], capture_output=True, text=True, env=ENV,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "waiting for" not in resumed.stderr  # the killed run's lock went with it
    key = lambda r: (r["method"], r["seed"])  # noqa: E731
    want = {key(r): (r["metrics"], r["history"]) for r in read_records(tmp_path / "reference")}
    assert {key(r): (r["metrics"], r["history"]) for r in read_records(out)} == want
    assert not list(out.glob(".*.lock")) and not list(out.rglob(".*.tmp"))
