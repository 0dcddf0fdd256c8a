"""``mke_theory.core.disk``: free space, a full disk in one sentence (``atomic_write`` included), folder locks."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from mke_theory.core import disk, records
from mke_theory.core.disk import DiskFullError, FolderBusyError, FolderLock
from mke_theory.core.records import atomic_write

ROOT = Path(__file__).resolve().parents[2]
Usage = namedtuple("Usage", "total used free")
MiB = 1 << 20


def little_space(monkeypatch, free: int, total: int = 100 * MiB) -> None:
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: Usage(total, total - free, free))


def test_sizes_read_as_a_person_would():
    assert [disk.human(n) for n in (0, 1023, 1024, 1536 * MiB, 3 << 40, 5000 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 GiB", "3.0 TiB", "5000.0 TiB"]


# ---- free space -------------------------------------------------------------------------------------------
def test_require_space_names_the_folder_the_space_needed_and_free(tmp_path, monkeypatch):
    little_space(monkeypatch, free=3 * MiB)
    disk.require_space(tmp_path, 3 * MiB, "the arrays", "free some")  # exactly enough
    with pytest.raises(DiskFullError) as e:
        disk.require_space(tmp_path / "not" / "yet", 5 * MiB, "the arrays", "free some")
    assert str(e.value) == (f"{tmp_path / 'not' / 'yet'}: not enough space for the arrays: 5.0 MiB needed, "
                            "3.0 MiB free on its disk; free some.")
    assert isinstance(e.value, disk.MKEError) and e.value.errno == errno.ENOSPC


def test_a_file_system_that_does_not_say_its_free_space_is_not_refused(tmp_path, monkeypatch):
    little_space(monkeypatch, free=0, total=0)  # what some FUSE and network file systems report
    assert disk.free_bytes(tmp_path) is None
    disk.require_space(tmp_path, 10 ** 15, "the arrays", "free some")


def test_reserve_allocates_the_holes_of_a_sparse_file(tmp_path):
    path = tmp_path / "a.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype="<f4", shape=(1 << 18,))  # 1 MiB, sparse
    if disk._unallocated(path) == 0:
        pytest.skip("this file system allocates sparse files")
    if not disk.reserve([path], tmp_path, "the arrays", "free some"):
        pytest.skip("this file system cannot reserve space")
    assert disk._unallocated(path) == 0
    assert not np.load(path).any()  # still zeros


def test_reserve_checks_the_space_first_then_turns_enospc_into_the_sentence(tmp_path, monkeypatch):
    path = tmp_path / "a.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype="<f4", shape=(1 << 18,))
    monkeypatch.setattr(disk, "_unallocated", lambda p: 1 * MiB)
    little_space(monkeypatch, free=MiB // 2)
    with pytest.raises(DiskFullError, match=r"not enough space for the arrays: 1\.0 MiB needed, 512\.0 KiB free"):
        disk.reserve([path], tmp_path, "the arrays", "free some")
    little_space(monkeypatch, free=2 * MiB)  # the check passes, the disk fills while reserving

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk.os, "posix_fallocate", full, raising=False)
    with pytest.raises(DiskFullError, match=rf"^{tmp_path}: not enough space for the arrays"):
        disk.reserve([path], tmp_path, "the arrays", "free some")


def test_a_file_system_that_cannot_reserve_leaves_the_free_space_check(tmp_path, monkeypatch):
    path = tmp_path / "a.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype="<f4", shape=(1024,))

    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(disk.os, "posix_fallocate", unsupported, raising=False)
    assert disk.reserve([path], tmp_path, "the arrays", "free some") is False


# ---- recognising a full disk ------------------------------------------------------------------------------
def test_a_full_disk_is_recognised_however_it_was_wrapped(tmp_path, monkeypatch):
    full = OSError(errno.ENOSPC, "No space left on device")
    assert disk.is_disk_full(full) and disk.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    try:  # torch.save: its writer's RuntimeError, raised while handling the OSError of the write
        try:
            raise full
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos")  # noqa: B904 (as torch)
    except RuntimeError as wrapped:
        assert disk.is_disk_full(wrapped)
    assert not disk.is_disk_full(RuntimeError("unexpected pos")) and not disk.is_disk_full(OSError(errno.EIO, "I/O"))
    short = OSError("1000000 requested and 125424 written")  # numpy's tofile: no errno
    little_space(monkeypatch, free=MiB // 2)
    assert disk.is_disk_full(short, tmp_path, written=0)
    little_space(monkeypatch, free=50 * MiB)  # plenty of space: something else went wrong
    assert not disk.is_disk_full(short, tmp_path, written=0) and not disk.is_disk_full(short)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_real_enospc_from_dev_full_is_recognised():
    with pytest.raises(OSError) as e:
        with open("/dev/full", "wb") as f:
            f.write(b"x" * 100_000)
    assert disk.is_disk_full(e.value)


# ---- atomic_write on a full disk --------------------------------------------------------------------------
class FillsUp:
    """A writer that writes ``room`` bytes and then fails as a full disk does (or ``error``)."""

    def __init__(self, room: int, error: BaseException | None = None):
        self.room, self.error = room, error

    def __call__(self, f) -> None:
        f.write(b"x" * self.room)
        f.flush()
        raise self.error or OSError(errno.ENOSPC, "No space left on device")


def test_atomic_write_on_a_full_disk_is_one_sentence_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"old" * 1000)
    little_space(monkeypatch, free=1000)
    with pytest.raises(DiskFullError) as e:
        atomic_write(path, FillsUp(500))
    assert str(e.value) == (f"{tmp_path}: no space left on its disk while writing model.pt (about 2.9 KiB needed, "
                            "the size of its previous version, 1000 B free); free some space or choose another "
                            "folder and run the command again (the files already written are kept; model.pt keeps "
                            "its previous version).")
    assert path.read_bytes() == b"old" * 1000 and os.listdir(tmp_path) == ["model.pt"]  # no temporary left


def test_atomic_write_of_a_new_file_says_more_than_what_was_written(tmp_path, monkeypatch):
    little_space(monkeypatch, free=1000)
    with pytest.raises(DiskFullError, match=r"writing new\.json \(more than 4\.0 KiB needed, 1000 B free\)"):
        atomic_write(tmp_path / "new.json", FillsUp(4096))
    with pytest.raises(DiskFullError, match=r"the disk quota is exceeded while writing new\.json"):
        atomic_write(tmp_path / "new.json", FillsUp(10, OSError(errno.EDQUOT, "Disk quota exceeded")))
    assert os.listdir(tmp_path) == []


def test_atomic_write_sees_enospc_behind_a_library_error_and_leaves_other_errors_alone(tmp_path):
    def torch_like(f):  # torch.save: the OSError of the write, then its writer's RuntimeError
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")  # noqa: B904

    with pytest.raises(DiskFullError, match="no space left on its disk while writing ck.pt"):
        atomic_write(tmp_path / "ck.pt", torch_like)
    with pytest.raises(ValueError, match="not a disk problem") as e:
        atomic_write(tmp_path / "ck.pt", FillsUp(10, ValueError("not a disk problem")))
    assert not isinstance(e.value, DiskFullError)
    with pytest.raises(OSError) as e:
        atomic_write(tmp_path / "ck.pt", FillsUp(10, OSError(errno.EIO, "Input/output error")))
    assert e.value.errno == errno.EIO
    assert os.listdir(tmp_path) == []


def test_atomic_write_with_no_room_for_the_temporary_file(tmp_path, monkeypatch):
    def no_inode(**kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".x.tmp"))

    monkeypatch.setattr(records.tempfile, "mkstemp", no_inode)
    with pytest.raises(DiskFullError, match=r"while writing x\.json \(no room even to start it"):
        atomic_write(tmp_path / "x.json", lambda f: f.write(b"{}"))


def test_a_numpy_short_write_on_a_full_disk_is_the_sentence(tmp_path, monkeypatch):
    """np.save into a file reports a full disk as "N requested and M written", without an errno."""
    real_fdopen = os.fdopen

    class Short:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(f"{len(data)} requested and 0 written")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(records.os, "fdopen", lambda fd, mode: Short(real_fdopen(fd, mode)))
    little_space(monkeypatch, free=1000)
    with pytest.raises(DiskFullError, match="while writing a.npy"):
        atomic_write(tmp_path / "a.npy", lambda f: f.write(b"x" * 5000))


# ---- folder locks -----------------------------------------------------------------------------------------

needs_fcntl = pytest.mark.skipif(disk.fcntl is None, reason="no fcntl: no locks on this platform")


@needs_fcntl
def test_a_held_lock_stops_a_second_process_naming_the_first(tmp_path, holder):
    lock = tmp_path / ".x.lock"
    first = holder(lock, "--flag")
    with pytest.raises(FolderBusyError) as e:
        with FolderLock(lock, "prepare of the toy cache"):
            pytest.fail("taken twice")  # pragma: no cover
    message = str(e.value)
    assert message.startswith(f"{tmp_path}: another prepare of the toy cache is writing this folder "
                              f"(pid {first.pid} on host {disk.socket.gethostname()}, \"-c ")
    assert "--flag\", since " in message and message.endswith(
        "lock file .x.lock); wait for it to end, or stop it, and run this command again.")
    first.stdin.write("\n")
    first.stdin.flush()
    first.wait()
    assert not lock.exists()  # released and removed
    with FolderLock(lock, "prepare of the toy cache"):
        assert disk.holder(lock)["pid"] == os.getpid()
    assert not lock.exists()


@needs_fcntl
def test_a_killed_holder_leaves_no_stale_lock(tmp_path, holder):
    lock = tmp_path / ".x.lock"
    first = holder(lock)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert lock.exists() and disk.holder(lock)["pid"] == first.pid  # its file stays, its lock does not
    with FolderLock(lock, "run"):
        assert disk.holder(lock)["pid"] == os.getpid()


@needs_fcntl
def test_a_waiting_lock_says_whom_it_waits_for_and_continues_when_it_ends(tmp_path, holder):
    lock = tmp_path / ".x.lock"
    first = holder(lock)
    told = []

    def on_wait(sentence):  # the first ends once the second has said it waits: no timing involved
        told.append(sentence)
        first.stdin.write("\n")
        first.stdin.flush()

    with FolderLock(lock, "run of arrays seed 0", wait=True, on_wait=on_wait):
        assert first.wait(timeout=60) == 0
        assert disk.holder(lock)["pid"] == os.getpid()
    (sentence,) = told
    assert sentence.startswith(f"{tmp_path}: waiting for another run of arrays seed 0 (pid {first.pid} on host ")
    assert sentence.endswith("this one continues when it ends (Ctrl-C stops waiting).")


@needs_fcntl
def test_a_lock_is_taken_again_by_its_own_process_and_released_with_the_outer_one(tmp_path, holder):
    lock = tmp_path / ".x.lock"
    with FolderLock(lock, "prepare"):
        with FolderLock(lock, "prepare"):  # a nested command of the same process
            pass
        assert lock.exists()
        other = subprocess.run([sys.executable, "-c", "from mke_theory.core.disk import FolderLock\n"
                                f"FolderLock({str(lock)!r}, 'x').acquire()"], capture_output=True, text=True,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert other.returncode == 1 and "FolderBusyError" in other.stderr  # still held for other processes
    assert not lock.exists()


def test_a_lock_in_a_folder_it_cannot_write_is_skipped(tmp_path, monkeypatch):
    """A finished run in a read-only folder still resumes (reads only): no lock, no error."""
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".x.lock"))

    monkeypatch.setattr(disk.os, "open", read_only)
    with FolderLock(tmp_path / ".x.lock", "run") as lock:
        assert lock.fd is None


def test_without_fcntl_no_lock_is_taken(tmp_path, monkeypatch):
    monkeypatch.setattr(disk, "fcntl", None)
    with FolderLock(tmp_path / ".x.lock", "run") as lock:
        assert lock.fd is None and not (tmp_path / ".x.lock").exists()


def test_a_full_disk_outside_atomic_write_is_one_sentence_not_a_bug_report(capsys):
    """A write that is not through ``atomic_write`` (a figure, a TensorBoard file) and finds the disk full, with no
    file named (numpy, matplotlib and torch wrap it), ends in one sentence and exit 1, not exit 70."""
    import errno

    from mke_theory.core.errors import user_errors

    @user_errors
    def figure():
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise RuntimeError("savefig failed") from e

    @user_errors
    def bug():
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(SystemExit) as exit_:
        figure()
    assert exit_.value.code == 1 and "no space left on the disk" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        bug()
    assert exit_.value.code == 70  # another OSError without a file is still a bug report
