"""The end of ``make figures``: one line per output (made / reused / skipped / failed) and the exit status.

    python paper_figures/summary.py run STATUS_FILE -- CMD ...   # run one figure script, record its outcome
    python paper_figures/summary.py show --out FIG [--status DIR] [--since T] OUTPUT ...

``run`` gives the script ``MKE_FIGURE_STATUS=STATUS_FILE``: the script records made or skipped there itself
(``_common``), with the reason and the command that makes its records; when it exits non-zero, ``run`` records
the failure with the last line of its stderr, and exits with the script's status.

``show`` reads ``DIR`` (default ``FIG/.status``). An outcome recorded at or after ``T`` (seconds since the epoch,
when ``make`` started) is this run's; an output with no such record that exists was up to date, so ``make``
reused it. Exit status 0 only when nothing failed and every skipped output needs data the user does not have
(records of a real-data task); anything else, a script error or missing records of a task ``make`` runs itself,
exits 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import _status


def run(status_file: Path, command: list[str]) -> int:
    status_file.unlink(missing_ok=True)  # an outcome left by an earlier run is not this one's
    script = Path(command[1]).name if len(command) > 1 else command[0]
    env = {**os.environ, _status.ENV: str(status_file)}
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    last = ""
    for line in proc.stderr:  # passed on as it comes; the last line says why a script stopped
        sys.stderr.write(line)
        sys.stderr.flush()
        last = line.strip() or last
    code = proc.wait()
    if code != 0:
        _status.write(status_file, "failed", f"{script} exited with status {code}" + (f": {last}" if last else ""))
    elif _status.read(status_file) is None:
        _status.write(status_file, "failed", f"{script} exited 0 but neither wrote its output nor said why")
        code = 1
    return code


def classify(out: Path, status_dir: Path, name: str, since: float | None) -> dict:
    """The outcome of output ``name``: {state, reason, command, needs_data}."""
    path = status_dir / f"{name}.json"
    fresh = path.exists() and (since is None or path.stat().st_mtime >= since)
    status = _status.read(path) if fresh else None
    if status is None:
        if (out / name).exists():
            return dict(state="reused", reason="up to date", command="", needs_data=False)
        return dict(state="failed", reason="not made in this run, and no outcome recorded (did its rule run?)",
                    command="", needs_data=False)
    if status["state"] == "made" and not (out / name).exists():
        return dict(status, state="failed", reason=f"the script said made, but {out / name} is not there")
    if status["state"] == "skipped" and (out / name).exists():
        status = dict(status, reason=status["reason"] + f"; the {name} there is from an earlier run")
    return status


def line(name: str, status: dict, width: int) -> str:
    text = f"  {status['state']:<8} {name:<{width}}"
    if status["state"] == "reused":
        text += f"  ({status['reason']})"
    elif status["state"] == "skipped":
        text += f"  {status['reason']}" + (f"; make them with: {status['command']}" if status["command"] else "")
        if not status.get("needs_data"):
            text += " (no real data needed: make figures should have made them, so this fails)"
    elif status["state"] == "failed":
        text += f"  {status['reason']}"
    return text.rstrip()


def show(out: Path, status_dir: Path, names: list[str], since: float | None) -> int:
    outcomes = {name: classify(out, status_dir, name, since) for name in names}
    width = max(map(len, names), default=0)
    print(f"make figures: {len(names)} outputs in {out}")
    for name, status in outcomes.items():
        print(line(name, status, width))
    count = {s: sum(o["state"] == s for o in outcomes.values()) for s in _status.STATES}
    bad = [n for n, o in outcomes.items()
           if o["state"] == "failed" or (o["state"] == "skipped" and not o.get("needs_data"))]
    skipped = f"{count['skipped']} skipped" + (" (need real data)" if count["skipped"] and not bad else "")
    print(f"{count['made']} made, {count['reused']} reused, {skipped}, {count['failed']} failed")
    if bad:
        print(f"make figures failed: {', '.join(bad)} (see above)", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p_run = sub.add_parser("run", help="run one figure script and record its outcome")
    p_run.add_argument("status_file", type=Path)
    p_run.add_argument("command", nargs=argparse.REMAINDER, help="-- then the script's command line")
    p_show = sub.add_parser("show", help="one line per output and the exit status")
    p_show.add_argument("--out", type=Path, required=True, help="the outputs' folder (make's FIG)")
    p_show.add_argument("--status", type=Path, default=None, help="outcome folder [default: OUT/.status]")
    p_show.add_argument("--since", type=float, default=None,
                        help="outcomes recorded before this time (seconds since the epoch) are an earlier run's")
    p_show.add_argument("names", nargs="+", help="the outputs, as make's FIGURES list names them")
    args = parser.parse_args(argv)
    if args.what == "run":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("run: give the command after --")
        return run(args.status_file, command)
    return show(args.out, args.status or args.out / ".status", args.names, args.since)


if __name__ == "__main__":
    sys.exit(main())
