"""Full disks and locks (issue 23, cases 3 and 11): what fits a fast table run in-process. A second ``prepare`` into a
folder whose lock another process holds stops with one sentence naming that process (pid, host, command, since)
before it reads or writes anything there; before, it worked in the other's ``.partial`` and its error named a
temporary file. The full-disk cases need a patched or a real small disk: tests/experiments/test_disk_and_locks.py.
"""

from __future__ import annotations

import json
import os

try:
    import fcntl
except ImportError:  # no locks on this platform: no case
    fcntl = None

HOLDER = {"pid": 4242, "host": "node7", "command": "mke-exp prepare ravdess --raw R --out O",
          "since": "2026-12-06 05:00:00 +0000"}
_HELD = []  # the descriptors holding the locks, open for the rest of the test process

CASES = [] if fcntl is None else [
    ("disk-prepare-locked", "exp", ["prepare", "ravdess", "--raw", "{disk_raw}", "--out", "{disk_locked_out}",
                                    "--workers", "1"],
     "another prepare of the RAVDESS cache is writing this folder (pid 4242 on host node7, "
     '"mke-exp prepare ravdess --raw R --out O", since 2026-12-06 05:00:00 +0000; lock file .prepare.lock)'),
]


def make_files(tmp):
    """A RAVDESS tree of two pairs (garbage bytes: the lock is taken before any is decoded) and a cache folder
    whose ``.prepare.lock`` this process holds as another prepare would (a descriptor of its own: flock locks
    are per open file, so the CLI's lock, run in this process, meets it)."""
    raw = tmp / "disk_raw" / "Actor_01"
    raw.mkdir(parents=True)
    for emotion in ("01", "02"):
        (raw / f"01-01-{emotion}-01-01-01-01.mp4").write_bytes(b"garbage")
        (raw / f"03-01-{emotion}-01-01-01-01.wav").write_bytes(b"garbage")
    out = tmp / "disk_locked_out"
    out.mkdir()
    if fcntl is not None:
        fd = os.open(out / ".prepare.lock", os.O_RDWR | os.O_CREAT, 0o666)
        os.write(fd, (json.dumps(HOLDER) + "\n").encode())
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _HELD.append(fd)
    return {"disk_raw": raw.parent, "disk_locked_out": out}
