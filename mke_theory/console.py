"""What both command-line tools share beside click: progress on stderr, seed lists, torch's thread count.

Progress: ``progress_bar`` gives library functions an ``update(n)``; click's bar on a terminal, a plain line
every few seconds elsewhere (``ProgressLines``). Seeds: ``parse_seeds`` and ``resolve_seeds``, the one rule of
``--seeds`` / ``--n-seeds``.

Threads, chosen on purpose instead of left to torch. Torch's default (one intra-op thread per core) pays off
for the convolutional image and audio networks, but the small MLPs of TwoMoon, the simulations, mfeat and the
arrays task split matrices of a few hundred rows across threads that then wait on each other: on a loaded
two-core machine TwoMoon took 62.7 s of CPU with the default threads and 6.4 s with one (9.7×). So:

* small models compute with one thread: the ``mke-theory`` drivers, and the tasks whose ``Task.small`` says so
  (each task decides for itself; this module names none);
* every other task (image, video and audio networks) with every core this process may use, shared among the
  processes ``torchrun`` starts on this machine (``LOCAL_WORLD_SIZE``);
* ``--threads N`` on the command line, or else the environment variable ``MKE_THREADS=N``, overrides both.

The command-line tools apply the choice (``threads_option``) for the whole process. ``fit_mke`` applies it for
the length of the call (``torch_threads``, its ``threads=`` argument in place of ``--threads``) and then gives
torch back the count it had; elsewhere the Python API leaves torch's setting alone (call ``set_threads`` or
``torch_threads`` yourself). Torch is imported only when the choice is applied, so importing this module stays light.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from contextlib import contextmanager

import click

from mke_theory.core.errors import MKEError

ENV_VAR = "MKE_THREADS"

def all_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


MAX_THREADS = 4096  # more than any machine has cores; torch's own limit lies far above (and overflows, a traceback)
_ASCII_NUMBER = re.compile(r"\+?[0-9]+")  # str.isdigit and int() also take "²", "٣" and "1_0": not a count


def parse_threads(value, source: str = "--threads", empty_ok: bool = False) -> int | None:
    """``value`` as a thread count in [1, ``MAX_THREADS``]; None (and, with ``empty_ok``, an empty string) is
    None: not given.

    Anything else (0, -2, 1.5, "many", True, "", "²", 99999999999) is an ``MKEError`` naming ``source``.
    """
    if value is None or (empty_ok and isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    digits = text.lstrip("+0")  # "" for zero
    if isinstance(value, bool) or not _ASCII_NUMBER.fullmatch(text) or not digits:
        raise MKEError(f"{source} must be a whole number of threads >= 1, got {value!r}")
    if len(digits) > len(str(MAX_THREADS)) or int(digits) > MAX_THREADS:  # (int() refuses over 4300 digits)
        raise MKEError(f"{source} must be at most {MAX_THREADS} threads (this machine has {all_cores()} cores), "
                       f"got {value!r}")
    return int(digits)


def default_threads(small: bool) -> int:
    """1 for small models; otherwise every core, divided among torchrun's processes on this machine."""
    if small:
        return 1
    local = os.environ.get("LOCAL_WORLD_SIZE", "1").strip()  # set by torchrun
    share = int(local) if _ASCII_NUMBER.fullmatch(local) and len(local) < 10 and int(local) > 0 else 1
    return max(1, all_cores() // share)


def choose_threads(requested=None, *, small: bool = False) -> int:
    """The intra-op thread count to use: ``requested`` (``--threads``), else ``$MKE_THREADS``, else the
    default for the model size (``small``: the task's ``Task.small`` for mke-exp, True for the theory drivers)."""
    n = parse_threads(requested)
    if n is None:
        n = parse_threads(os.environ.get(ENV_VAR), source=f"the environment variable {ENV_VAR}", empty_ok=True)
    if n is None:
        n = default_threads(small)
    return n


def set_threads(requested=None, *, small: bool = False) -> int:
    """Apply ``choose_threads`` to torch (``torch.set_num_threads``); returns the count."""
    n = choose_threads(requested, small=small)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextmanager
def torch_threads(requested=None, *, small: bool = False):
    """``set_threads`` for the length of a ``with`` block, then torch's previous count again (also on an error),
    so that a caller's process is left as it was. Yields the count used::

        with torch_threads(None, small=True):    # 1 thread, or $MKE_THREADS
            ...
    """
    n = choose_threads(requested, small=small)  # a bad value fails here, before torch is touched
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def threads_option(small):
    """Decorate a click command with ``--threads N`` and apply the choice before the command runs.

    ``small`` is True or False (the ``mke-theory`` drivers train MLPs only), or a function of the command's
    keyword arguments (mke-exp: ``Task.small`` of its ``task`` argument). Put it below ``user_errors``
    so that a bad value ends in one sentence::

        @cli.command()
        @user_errors
        @threads_option(small=True)
        def twomoon(...): ...
    """
    def decorate(command):
        @functools.wraps(command)
        def wrapper(*args, threads=None, **kwargs):
            set_threads(threads, small=small(kwargs) if callable(small) else small)
            return command(*args, **kwargs)

        return click.option(
            "--threads", default=None, metavar="N",
            help=f"Torch threads to compute with (default: ${ENV_VAR} if set, else "
                 + ("1 for the small MLP tasks, every core for image and audio tasks" if callable(small) else
                    "1: small models" if small else "every core") + ").")(wrapper)

    return decorate


# ---- progress and seeds -------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _rate(rate: float, unit: str) -> str:
    return f"{rate:.0f} {unit}/s" if rate >= 10 else f"{rate:.2g} {unit}/s"


class ProgressLines:
    """Progress as plain lines, for a stderr that is not a terminal (a log file, CI, ``make`` output):
    one line at most every ``interval`` seconds with done/total, rate and ETA, and a last line when
    done, e.g. ``training: 1200/5000 steps (24 %), 310 steps/s, ETA 12 s``. ``total`` 0: unknown."""

    def __init__(self, total: int, label: str, file, interval: float = 5.0, clock=time.monotonic,
                 unit: str = "steps"):
        self.total, self.label, self.file, self.unit = total, label, file, unit
        self.interval, self.clock = interval, clock
        self.done = 0
        self.start = self.last = clock()
        self.printed = False

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            text = f"{self.label}: {self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f} %)"
        else:
            text = f"{self.label}: {self.done} {self.unit}"
        text += f", {_rate(rate, self.unit)}"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {_duration((self.total - self.done) / rate)}"
        return text

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval and not (self.total and self.done >= self.total):
            self.last = now
            self.printed = True
            click.echo(self.line(), file=self.file)

    def finish(self) -> None:
        elapsed = self.clock() - self.start
        if self.total:
            text = f"{self.label}: {self.done}/{self.total} {self.unit} done in {_duration(elapsed)}"
        else:
            text = f"{self.label}: {self.done} {self.unit} done in {_duration(elapsed)}"
        click.echo(text, file=self.file)


def _is_terminal(file) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):
        return False


PROGRESS_INTERVAL_S = 5.0  # seconds between two progress lines when stderr is not a terminal


@contextmanager
def progress_bar(length: int, label: str, file=None, interval: float | None = None, clock=time.monotonic,
                 unit: str = "steps"):
    """Progress on stderr (or ``file``); ``update(n)`` is what library functions receive as ``progress``.

    On a terminal: click's progress bar. Elsewhere (a log file, CI, a pipe), where the bar prints nothing
    useful: a plain line every ``interval`` seconds (``ProgressLines``). Both CLIs use this one helper.
    """
    file = sys.stderr if file is None else file
    if _is_terminal(file):
        with click.progressbar(length=length, label=label, file=file, show_eta=bool(length)) as bar:
            yield bar.update
        return
    lines = ProgressLines(length, label, file, interval=PROGRESS_INTERVAL_S if interval is None else interval,
                          clock=clock, unit=unit)
    yield lines.update
    lines.finish()


class Seeds(tuple):
    """Seeds parsed from ``--seeds``; ``bare`` when the value was a single integer without a comma."""

    bare = False


MAX_N_SEEDS = 10_000  # --n-seeds: runs of one method, far beyond any table; 10**11 would fill the memory
SEED_LIMIT = 2**64  # torch.manual_seed takes seeds below 2**64 (a larger one overflows inside torch); numpy any


def parse_seeds(ctx, param, value):
    """click callback of ``--seeds``: a comma-separated list of distinct seeds in [0, 2**64), in ASCII digits,
    e.g. ``0,1,2`` (one seed alone: ``3,``). None stays None."""
    if value is None or isinstance(value, tuple):
        return value
    parts = [v.strip() for v in str(value).split(",") if v.strip()]
    if not all(re.fullmatch(r"[+-]?[0-9]+", v) for v in parts):  # int() would also read "٣" and "1_0"
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers in ASCII digits, "
                                 "e.g. 0,1,2")
    huge = [v for v in parts if len(v.lstrip("+-0")) > len(str(SEED_LIMIT))]  # int() refuses over 4300 digits
    seeds = Seeds(int(v) for v in parts if v not in huge)
    if not parts or (seeds and min(seeds) < 0) or len(set(parts)) != len(parts) or len(set(seeds)) != len(seeds):
        raise click.BadParameter("give distinct seeds >= 0, e.g. 0,1,2")
    if huge or max(seeds) >= SEED_LIMIT:
        big = huge[0][:24] + "..." if huge else max(seeds)
        raise click.BadParameter(f"seed {big} is too large: torch takes seeds below 2**64 ({SEED_LIMIT - 1})")
    seeds.bare = "," not in str(value)
    return seeds


def resolve_seeds(seeds, n_seeds, *, bare: str, default_n: int, first_n=lambda n: list(range(n)), what="seed"):
    """The one rule of both CLIs: ``--seeds`` is a list of seeds, ``--n-seeds N`` the first N default seeds
    (``first_n(N)``), neither: ``first_n(default_n)``, both: an error.

    A bare single integer (``--seeds 5``, no comma) is where the CLIs used to differ: ``bare="error"``
    (mke-theory, where it meant a count) refuses it with the sentence that says what to write;
    ``bare="note"`` (mke-exp, where it always meant that one seed) takes the seed and says so in one
    line on stderr. ``--seeds 5,`` is seed 5 alone in both, without a word.
    """
    if seeds is not None and n_seeds is not None:
        raise MKEError("give --seeds (a list of seeds) or --n-seeds (how many), not both")
    if n_seeds is not None and n_seeds > MAX_N_SEEDS:
        raise MKEError(f"--n-seeds must be at most {MAX_N_SEEDS} (one run each), got {n_seeds}")
    if seeds is None:
        return list(first_n(default_n if n_seeds is None else n_seeds))
    if getattr(seeds, "bare", False):
        n = seeds[0]
        if bare == "error":
            runs = "run" if n == 1 else "runs"
            raise MKEError(f"--seeds is a list of seeds now, not a count; for {n} {runs} use --n-seeds {n}, "
                           f"for {what} {n} alone write --seeds {n},")
        click.echo(f"note: training seed {n} only (--seeds is a list of seeds; for {n} seeds use --n-seeds {n})",
                   err=True)
    return list(seeds)
