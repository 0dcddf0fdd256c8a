"""Fingerprint every number the library's main commands produce, to prove a change moved code and nothing else.

    python benchmarks/identity_check.py --out fingerprint.json [--quick]
    python benchmarks/identity_check.py --compare before.json after.json

Runs, each in a fresh process through the command-line tools (so the script works unchanged on any commit):
the TwoMoon table with its ablation (``mke-theory twomoon --ablation``), the notebook's exact runs
(``--rng notebook``), a simulation sweep (``mke-theory simulate``), mfeat's 30 records (``mke-exp run mfeat``:
6 methods × 5 seeds) and the smoke run of every registered task (its ``smoke`` hook's tiny data, 2 epochs,
seed 0). Of each record it keeps what the code computes (metrics, per-epoch history, best epoch, config hash,
split id) and drops what the machine decides (wall time, hardware, git revision). Give both runs one
``--work`` folder: the smoke data's paths enter the audioset-vggsound config and the nyudv2 split id.
``--compare`` matches records by (task, method, variant, seed) and prints each field that differs; it exits 1
when a number differs or a run is missing. Differences in config hash or split id alone are listed apart: the
audioset-vggsound smoke config holds a cache path (since cache format 3, split ids of cache-backed data come from
content digests, not from paths or mtimes).
``--quick`` leaves out the mfeat and notebook runs (about a minute).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KEEP = ("task", "method", "seed", "metrics", "history", "best_epoch", "config_hash", "split_id", "ensemble_size")


def _records(folder: Path) -> dict:
    out = {}
    for path in sorted(folder.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(record, dict) and "metrics" in record and "method" in record:
            out[path.name] = {k: record.get(k) for k in KEEP}
    return out


def _run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def fingerprint(quick: bool, work: Path) -> dict:
    bin_dir = Path(sys.executable).parent
    theory, exp = str(bin_dir / "mke-theory"), str(bin_dir / "mke-exp")
    listing = "import json; from mke_experiments.tasks import TASKS; print(json.dumps(sorted(TASKS)))"
    tasks = json.loads(subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True,
                                      check=True).stdout)
    result = {}
    shutil.rmtree(work, ignore_errors=True)  # a fixed folder: paths that enter a config (a cache's) are the same
    work.mkdir(parents=True)
    tmp = work
    jobs = {"twomoon": [theory, "twomoon", "--ablation", "--no-figure", "--out", str(tmp / "twomoon")],
            "simulate": [theory, "simulate", "--noise", "0.1,0.3", "--n-seeds", "2", "--steps", "300",
                         "--out", str(tmp / "simulate")]}
    if not quick:
        jobs["twomoon-notebook"] = [theory, "twomoon", "--rng", "notebook", "--no-figure",
                                    "--out", str(tmp / "twomoon-notebook")]
        jobs["mfeat"] = [exp, "run", "mfeat", "--out", str(tmp / "mfeat")]
    for name, args in jobs.items():
        print(f"  {name} ...", file=sys.stderr, flush=True)
        _run(args, tmp)
        result[name] = _records(tmp / name)
    for task in tasks:
        print(f"  smoke {task} ...", file=sys.stderr, flush=True)
        folder = tmp / f"smoke-{task}"
        folder.mkdir()
        code = ("import json, sys; from pathlib import Path; from mke_experiments.tasks import get_task\n"
                f"data, small = get_task({task!r}).smoke(Path({str(folder)!r}))\n"
                "print(json.dumps([None if data is None else str(data), list(small)]))")
        data, small = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                check=True).stdout.strip().splitlines()[-1])
        args = [exp, "run", task, "--seeds", "0,", "--device", "cpu", "--out", str(folder / "runs"),
                "--set", "train.epochs=2"]
        for override in small:
            args += ["--set", override]
        if data is not None:
            args += ["--data", data]
        _run(args, tmp)
        result[f"smoke-{task}"] = _records(folder / "runs")
    return result


def _by_run(records: dict) -> dict:
    return {(r["task"], r["method"], name.split("__")[2] if name.count("__") >= 3 else "", r["seed"]): r
            for name, r in records.items()}


NUMBERS = ("metrics", "history", "best_epoch", "ensemble_size")  # what the code computes
IDS = ("config_hash", "split_id")  # also what it computes, but the smoke data's paths enter some


def compare(before: dict, after: dict) -> tuple[list[str], list[str]]:
    """(differences in numbers or missing runs, differences in ids only), one line each."""
    numbers, ids = [], []
    for job in sorted(set(before) | set(after)):
        a, b = before.get(job), after.get(job)
        if a is None or b is None:
            numbers.append(f"{job}: only in {'after' if a is None else 'before'}")
            continue
        a, b = _by_run(a), _by_run(b)
        for run in sorted(set(a) | set(b), key=str):
            if run not in a or run not in b:
                numbers.append(f"{job} {run}: only in {'after' if run not in a else 'before'}")
                continue
            differ = [k for k in KEEP if a[run].get(k) != b[run].get(k)]
            if any(k not in IDS for k in differ):
                numbers.append(f"{job} {run}: {', '.join(differ)} differ")
            elif differ:
                ids.append(f"{job} {run}: {', '.join(differ)} differ")
    return numbers, ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the runs write (emptied first; default: a new temporary folder). Give the same "
                             "folder before and after a change: the smoke data's paths enter some configs and "
                             "split ids, which then differ between folders while every number agrees")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        numbers, ids = compare(before, after)
        n = sum(len(v) for v in after.values())
        if ids:
            print(f"ids only ({len(ids)} records; numbers equal):\n  " + "\n  ".join(ids))
        print("\n".join(numbers) if numbers else f"every number identical: {n} records in {len(after)} jobs")
        return 1 if numbers else 0
    data = fingerprint(args.quick, args.work or Path(tempfile.mkdtemp(prefix="mke_identity_")))
    text = json.dumps(data, indent=1, sort_keys=True)
    if args.out:
        args.out.write_text(text)
    print(f"{sum(len(v) for v in data.values())} records in {len(data)} jobs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
