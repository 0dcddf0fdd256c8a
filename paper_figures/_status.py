"""The outcome of one figure script, for the summary that ends ``make figures``.

``summary.py run FILE -- CMD`` runs a script with ``MKE_FIGURE_STATUS=FILE``; the script says what it did through
``report`` (``_common`` calls it: made when an output is written, skipped when its records are missing), and the
runner records a failure itself when the script exits non-zero. One small JSON file per output
(``{"state", "reason", "command", "needs_data"}``), written atomically, so ``make -j`` is safe. Outside ``make``
(no variable set) ``report`` does nothing. Standard library only: the summary imports no torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "MKE_FIGURE_STATUS"
STATES = ("made", "reused", "skipped", "failed")


def report(state: str, reason: str = "", command: str = "", needs_data: bool = False) -> None:
    """Record this script's outcome where ``MKE_FIGURE_STATUS`` says; nothing when it is unset."""
    path = os.environ.get(ENV)
    if path:
        write(Path(path), state, reason, command, needs_data)


def write(path: Path, state: str, reason: str = "", command: str = "", needs_data: bool = False) -> None:
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}; one of {', '.join(STATES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dict(state=state, reason=reason, command=command, needs_data=needs_data)) + "\n")
    os.replace(tmp, path)


def read(path: Path) -> dict | None:
    """The recorded outcome, or None when there is none (or it is unreadable: a crash mid-write)."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and status.get("state") in STATES else None
