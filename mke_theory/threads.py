"""How many threads torch computes with, chosen on purpose instead of left to torch.

Torch's default (one intra-op thread per core) pays off for the convolutional image and audio
networks, but the small MLPs of TwoMoon, the simulations, mfeat and the arrays task split matrices
of a few hundred rows across threads that then wait on each other: on a loaded two-core machine
TwoMoon took 62.7 s of CPU with the default threads and 6.4 s with one (9.7×). So:

* small models (the tasks in ``SMALL_TASKS``: MLPs on feature vectors) compute with one thread;
* every other task (image, video and audio networks) with every core this process may use,
  shared among the processes ``torchrun`` starts on this machine (``LOCAL_WORLD_SIZE``);
* ``--threads N`` on the command line, or else the environment variable ``MKE_THREADS=N``,
  overrides both.

Which tasks are small is decided here, by name, and nowhere else. The command-line tools apply
the choice (``threads_option``); the Python API leaves torch's setting alone (call
``set_threads`` yourself). Torch is imported only when the choice is applied, so importing this
module stays light.
"""

from __future__ import annotations

import functools
import os

import click

from mke_theory.errors import MKEError

ENV_VAR = "MKE_THREADS"

# MLPs on feature vectors: the theory drivers (mke-theory twomoon / simulate) and the vector tasks of mke-exp.
# A task not listed here counts as large (torch's own habit: every core).
SMALL_TASKS = frozenset({"twomoon", "simulate", "mfeat", "arrays"})


def is_small(task: str | None) -> bool:
    """Whether ``task`` trains small models (MLPs) that compute best on one thread."""
    return task in SMALL_TASKS


def all_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse_threads(value, source: str = "--threads", empty_ok: bool = False) -> int | None:
    """``value`` as a thread count ≥ 1; None (and, with ``empty_ok``, an empty string) is None: not given.

    Anything else (0, -2, 1.5, "many", True, "") is an ``MKEError`` naming ``source``.
    """
    if value is None or (empty_ok and isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.lstrip("+").isdigit() or int(text) < 1:
        raise MKEError(f"{source} must be a whole number of threads >= 1, got {value!r}")
    return int(text)


def default_threads(small: bool) -> int:
    """1 for small models; otherwise every core, divided among torchrun's processes on this machine."""
    if small:
        return 1
    local = os.environ.get("LOCAL_WORLD_SIZE", "1").strip()  # set by torchrun
    return max(1, all_cores() // (int(local) if local.isdigit() and int(local) > 0 else 1))


def choose_threads(requested=None, *, task: str | None = None, small: bool | None = None) -> int:
    """The intra-op thread count to use: ``requested`` (``--threads``), else ``$MKE_THREADS``, else the
    default for the model size (``small``, or read off ``task`` by ``is_small``)."""
    n = parse_threads(requested)
    if n is None:
        n = parse_threads(os.environ.get(ENV_VAR), source=f"the environment variable {ENV_VAR}", empty_ok=True)
    if n is None:
        n = default_threads(is_small(task) if small is None else small)
    return n


def set_threads(requested=None, *, task: str | None = None, small: bool | None = None) -> int:
    """Apply ``choose_threads`` to torch (``torch.set_num_threads``); returns the count."""
    n = choose_threads(requested, task=task, small=small)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def threads_option(small: bool | None = None):
    """Decorate a click command with ``--threads N`` and apply the choice before the command runs.

    ``small=None`` reads the model size off the command's ``task`` argument (``mke-exp run TASK``);
    True or False fixes it (the ``mke-theory`` drivers train MLPs only). Put it below ``user_errors``
    so that a bad value ends in one sentence::

        @cli.command()
        @user_errors
        @threads_option(small=True)
        def twomoon(...): ...
    """
    def decorate(command):
        @functools.wraps(command)
        def wrapper(*args, threads=None, **kwargs):
            set_threads(threads, task=kwargs.get("task"), small=small)
            return command(*args, **kwargs)

        return click.option(
            "--threads", default=None, metavar="N",
            help=f"Torch threads to compute with (default: ${ENV_VAR} if set, else "
                 + ("1: small models" if small else "every core" if small is False else
                    "1 for the small MLP tasks, every core for image and audio tasks") + ").")(wrapper)

    return decorate
