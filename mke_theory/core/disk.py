"""Disks: free space, a full disk told in one sentence, and folder locks. Standard library only, torch-free.

A full disk must never be a SIGBUS (a memory-mapped write that finds no block) or a traceback naming no file:

- ``require_space`` compares what a command is about to write with the free space of the folder's disk and
  raises ``DiskFullError`` (one sentence: the folder, the space needed and the space free) before anything is
  written;
- ``reserve`` allocates a file's blocks up front (``os.posix_fallocate``), so that writing it later through a
  memory map cannot fail; a disk that fills meanwhile is the same sentence, now, instead of a SIGBUS later;
- ``write_failed`` is the sentence for a write that ran out of space (``records.atomic_write`` raises it; the
  file it was replacing stays as it was), ``is_disk_full`` recognises such an error however a library wrapped it.

``FolderLock`` keeps two commands from writing one folder at the same time: an exclusive ``fcntl.flock`` on a
lock file in that folder, which the kernel releases when the process ends, however it ends (``kill -9``
included), so a killed command never leaves a stale lock behind. The holder writes who it is into the file
(pid, host, command, since when); a second command either waits for it, saying so, or stops with one sentence
naming it. On a platform without ``fcntl`` (Windows) no lock is taken: a second command there is not stopped.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mke_theory.core.errors import MKEError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; FolderLock takes none (see the module docstring)
    fcntl = None

log = logging.getLogger(__name__)

FULL = (errno.ENOSPC, errno.EDQUOT)  # out of blocks (or inodes), over the user's quota
UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS)  # posix_fallocate cannot reserve here
UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM, *FULL)  # no lock file can be made: take no lock


class DiskFullError(MKEError):
    """Not enough space on a disk for what a command writes: the folder, the space needed and the space free."""

    errno = errno.ENOSPC  # for code that checks ``error.errno`` as it would on the OSError this replaces


class FolderBusyError(MKEError):
    """Another process holds the lock of a folder this command would write."""


def human(n: float) -> str:
    """A size in bytes for a person: ``512 B``, ``3.2 KiB``, ``1.5 GiB``."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest existing parent: where a folder about to be created will live."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def free_bytes(folder) -> int | None:
    """Bytes free for this user on the disk of ``folder`` (or of its nearest existing parent); None when the
    file system does not say (an error, or a total of 0 as some network and FUSE file systems report): no check
    can then be made, and none is."""
    try:
        usage = shutil.disk_usage(_existing(Path(folder)))
    except OSError:
        return None
    return int(usage.free) if usage.total > 0 else None


def require_space(folder, needed: int, what: str, fix: str) -> None:
    """``DiskFullError`` when the disk of ``folder`` has less than ``needed`` bytes free for ``what``.

    The sentence: ``FOLDER: not enough space for WHAT: N needed, M free on its disk; FIX.`` Nothing is raised
    when the free space is unknown (``free_bytes``)."""
    free = free_bytes(folder)
    if free is not None and needed > free:
        raise DiskFullError(f"{folder}: not enough space for {what}: {human(needed)} needed, {human(free)} free on "
                            f"its disk; {fix}.")


def _unallocated(path: Path) -> int:
    """The bytes of ``path`` that have no block on disk yet (a sparse file's holes), from its size and blocks."""
    st = os.stat(path)
    blocks = getattr(st, "st_blocks", None)
    return st.st_size if blocks is None else max(0, st.st_size - 512 * blocks)


def reserve(paths: Iterable, folder, what: str, fix: str) -> bool:
    """Allocate every block of the existing files ``paths`` now, so that writing them later (through a memory
    map) cannot run out of space; False where the file system cannot reserve (``posix_fallocate`` unsupported,
    or not on this platform: the check of the free space is then all there is).

    First the unallocated bytes of all files together are compared with the free space (``require_space``);
    a disk that fills while the blocks are reserved is the same ``DiskFullError``, naming ``folder``. On a file
    system that cannot allocate without writing (glibc then writes one byte per block) this costs a pass of
    small writes; on copy-on-write file systems (btrfs, ZFS) a reservation guarantees less.
    """
    paths = [Path(p) for p in paths]
    needed = sum(_unallocated(p) for p in paths)
    require_space(folder, needed, what, fix)
    if not hasattr(os, "posix_fallocate"):
        return False
    for path in paths:
        size = path.stat().st_size
        if size == 0:
            continue
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            if e.errno in UNSUPPORTED:
                return False
            if e.errno in FULL:
                free = free_bytes(folder)
                raise DiskFullError(f"{folder}: not enough space for {what}: {human(needed)} needed, "
                                    f"{human(free) if free is not None else 'less'} free on its disk; {fix}.") from None
            raise
        finally:
            os.close(fd)
    return True


SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")  # numpy's tofile: fwrite wrote less, errno lost


def is_disk_full(error: BaseException | None, folder=None, written: int = 0) -> bool:
    """Whether ``error``, or an error it was raised from or while handling, is an ``OSError`` of a full disk
    or an exceeded quota (torch's writer, numpy's and zipfile's wrap or follow the OSError of the write).

    numpy's ``tofile`` (behind ``np.save`` into a file) reports a short write without an errno: with ``folder``
    given, such an error counts as a full disk when the disk of ``folder`` has less free space than the write
    asked for plus the ``written`` bytes of the file it was writing (freed since), or does not say."""
    for e in _chain(error):
        if isinstance(e, DiskFullError) or (isinstance(e, OSError) and e.errno in FULL):
            return True
        short = SHORT_WRITE.search(str(e)) if isinstance(e, OSError) and e.errno is None else None
        if short and folder is not None:
            free = free_bytes(folder)
            return free is None or free < int(short.group(1)) + written
    return False


def write_failed(path, written: int, error: BaseException | None = None) -> DiskFullError:
    """The sentence for a write of ``path`` that ran out of space after ``written`` bytes; the file it would have
    replaced, if any, is unchanged (``atomic_write``), and its size is the best guess of the space needed."""
    path = Path(path)
    folder = path.parent
    try:
        old = path.stat().st_size if path.is_file() else 0
    except OSError:
        old = 0
    quota = any(isinstance(e, OSError) and e.errno == errno.EDQUOT for e in _chain(error))
    free = free_bytes(folder)
    full = "the disk quota is exceeded" if quota else "no space left on its disk"
    if old > written:
        need = f"about {human(old)} needed, the size of its previous version"
    elif written:
        need = f"more than {human(written)} needed"
    else:
        need = "no room even to start it"
    kept = f"; {path.name} keeps its previous version" if old else ""
    return DiskFullError(f"{folder}: {full} while writing {path.name} ({need}, "
                         f"{human(free) if free is not None else 'an unknown amount'} free); free some space or "
                         f"choose another folder and run the command again (the files already written are "
                         f"kept{kept}).")


def _chain(error: BaseException | None):
    seen = 0
    while error is not None and seen < 20:
        yield error
        error, seen = error.__cause__ or error.__context__, seen + 1


# ---- folder locks ---------------------------------------------------------------------------------------------
_HELD: dict[str, int] = {}  # lock file (absolute) -> depth: a lock this process holds is taken again as a no-op


def _command() -> str:
    """This process's command line, short: ``mke-exp prepare ravdess --raw … --out …``."""
    argv = list(sys.argv) or ["python"]
    argv[0] = os.path.basename(argv[0]) or "python"
    text = " ".join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


def holder(path) -> dict | None:
    """Who holds (or last held) the lock file ``path``: its JSON (pid, host, command, since), or None when it is
    missing, empty or not that JSON."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def describe_holder(info: dict | None) -> str:
    """``pid 123 on host h, "mke-exp run …", since 2026-01-02 03:04:05`` (or what of it is known)."""
    if not info:
        return "a process that has not yet written who it is"
    parts = [f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"]
    if info.get("command"):
        parts.append(f'"{info["command"]}"')
    if info.get("since"):
        parts.append(f"since {info['since']}")
    return ", ".join(parts)


class FolderLock:
    """An exclusive lock on the file ``path`` (in the folder it guards) for the length of a ``with`` block.

    Parameters
    ----------
    path : the lock file; created if missing, removed when released (it never needs deleting by hand: a lock
        file left by a killed process is not a lock, the kernel released its ``flock``).
    what : what the holder does, for the sentences: ``"prepare of the RAVDESS cache"``.
    wait : True: wait until the holder ends, after telling ``on_wait`` once who it is; False: raise ``error``
        (one sentence naming the holder) at once.
    on_wait : ``on_wait(sentence)`` when this lock has to wait (default: the sentence on stderr).
    error : the ``MKEError`` subclass raised when ``wait`` is False (default ``FolderBusyError``).

    A lock this process already holds is taken again as a no-op (nested commands). No lock is taken where the
    lock file cannot be created (a read-only folder, no permission, a full disk: every write there then fails
    with its own sentence) or on a platform without ``fcntl``; a blocked wait ends with Ctrl-C.
    """

    def __init__(self, path, what: str, wait: bool = False, on_wait: Callable[[str], object] | None = None,
                 error: type = FolderBusyError):
        self.path, self.what, self.wait = Path(os.path.abspath(path)), what, wait
        self.on_wait = on_wait or (lambda sentence: print(sentence, file=sys.stderr, flush=True))
        self.error, self.fd, self.nested = error, None, False

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        key = str(self.path)
        if key in _HELD:
            _HELD[key] += 1
            self.nested = True
            return
        if fcntl is not None:
            self.fd = self._lock()
        _HELD[key] = 1

    def _lock(self) -> int | None:
        """The locked file descriptor, or None where no lock file can be made. The lock is on the file the path
        names when it is taken: a holder removes its file as it releases, so a lock taken on a file that was
        meanwhile removed (or replaced) is dropped and taken again on the new file."""
        told = False
        for _ in range(1000):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:
                if e.errno in UNWRITABLE:
                    log.debug("no lock taken: %s cannot be created (%s)", self.path, e.strerror)
                    return None
                raise
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    sentence = self._busy()
                    if not self.wait:
                        raise self.error(sentence) from None
                    if not told:
                        self.on_wait(sentence)
                        told = True
                    fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel wakes us when the holder ends
                if self._same_file(fd):
                    self._sign(fd)
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # locked a file its holder removed as it released: lock the one the path names now
        raise MKEError(f"{self.path}: the lock file keeps being replaced; is something removing it?")

    def _same_file(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _sign(self, fd: int) -> None:
        """Write who holds the lock into its file; on a full disk this may fail, which only leaves it anonymous."""
        info = dict(pid=os.getpid(), host=socket.gethostname(), command=_command(),
                    since=time.strftime("%Y-%m-%d %H:%M:%S %z"))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:
            pass

    def _busy(self) -> str:
        """The sentence saying who holds the lock, for the error or the wait."""
        who = describe_holder(holder(self.path))
        if self.wait:
            return (f"{self.path.parent}: waiting for another {self.what} ({who}; lock file {self.path.name}); "
                    "this one continues when it ends (Ctrl-C stops waiting).")
        return (f"{self.path.parent}: another {self.what} is writing this folder ({who}; lock file "
                f"{self.path.name}); wait for it to end, or stop it, and run this command again.")

    def release(self) -> None:
        key = str(self.path)
        if self.nested:
            _HELD[key] -= 1
            self.nested = False
            return
        if _HELD.get(key):
            del _HELD[key]
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # removed while still held: a waiter then re-locks the new file
        except OSError:
            pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)  # also for a copy of the descriptor a forked child still holds
        os.close(self.fd)
        self.fd = None
