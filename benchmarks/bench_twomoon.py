"""Time the TwoMoon table: all seeds batched vs one seed at a time, and the whole CLI command.

    python benchmarks/bench_twomoon.py [--runs 10] [--repeat 1]

Prints times (the best of --repeat) and never fails on time.  Compute times are measured in this
process after the imports and after one short warm-up run, so one-off start-up costs are excluded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mke_theory.twomoon import TwoMoonConfig, run_twomoon

TARGETS = ("target: ≤ 3 s compute for the 10-seed table; ≤ 10 s whole command; "
           "notebook reference ≈ 120 s on a 2-core machine (not re-measured here)")


def accuracies(result) -> dict:
    return {(r["task"], r["method"], r["variant"], r["seed"]): r["metrics"]["test_accuracy"] for r in result.runs}


def best_of(repeat, fn):
    """(seconds, output) of the fastest of ``repeat`` calls of ``fn``."""
    best = (float("inf"), None)
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, (time.perf_counter() - t0, out), key=lambda b: b[0])
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="number of official student seeds (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="repeat each timing, report the best (default 1)")
    args = parser.parse_args()
    cfg = TwoMoonConfig(n_runs=args.runs)
    seeds = cfg.student_seeds
    print(f"TwoMoon benchmark: {len(seeds)} seeds {seeds}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print(TARGETS)

    run_twomoon(TwoMoonConfig(n_runs=2, teacher_steps=10, student_steps=10))  # warm-up, not timed
    print("(compute times below exclude imports and one warm-up run)")

    # (a) the whole table, every student of one architecture batched in one MLPEnsemble
    t_batched, batched = best_of(args.repeat, lambda: run_twomoon(cfg))
    # (b) the same code one seed at a time; each such run retrains the teacher
    t_single, singles = best_of(args.repeat, lambda: [run_twomoon(TwoMoonConfig(seeds=(s,))) for s in seeds])
    teacher_s = [r["wall_time_s"] for res in singles for r in res.runs if r["method"] == "teacher"]
    t_single_one_teacher = t_single - sum(teacher_s[1:])  # as if the teacher were trained once
    n = len(seeds)
    print(f"(a) {f'batched, {n} seeds in one call':<45}: {t_batched:6.2f} s")
    print(f"(b) {f'one seed at a time, {n} calls':<45}: {t_single:6.2f} s  (a) is {t_single / t_batched:.1f}x faster")
    label = f"same, teacher trained once (-{n - 1} x {sum(teacher_s) / n:.2f} s)"
    print(f"    {label:<45}: {t_single_one_teacher:6.2f} s  (a) is {t_single_one_teacher / t_batched:.1f}x faster")

    acc_b, acc_s = accuracies(batched), {}
    for res in singles:
        acc_s.update(accuracies(res))
    common = [k for k in acc_b if k in acc_s]
    diff = max(abs(acc_b[k] - acc_s[k]) for k in common)
    print(f"batched vs one-at-a-time: max |Δ test accuracy| over {len(common)} (method, seed) rows = {diff:.4f}")

    # (c) the whole command, interpreter start included; run in a temporary folder so nothing is left behind
    script = Path(sys.executable).with_name("mke-theory")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mke_theory.cli"]
    cmd += ["twomoon", "--no-figure"]  # exactly the documented command: its default, 10 seeds
    tmp = tempfile.mkdtemp(prefix="bench_twomoon_")
    try:
        t_cmd, proc = best_of(args.repeat, lambda: subprocess.run(cmd, cwd=tmp, capture_output=True, text=True))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shown = " ".join([Path(cmd[0]).name, *cmd[1:]])
    if proc.returncode == 0:
        print(f"(c) whole command `{shown}` (10 seeds): {t_cmd:.2f} s, interpreter start included")
    else:
        print(f"(c) whole command `{shown}` FAILED (exit {proc.returncode}); stderr tail:")
        print("    " + "\n    ".join(proc.stderr.strip().splitlines()[-8:]))


if __name__ == "__main__":
    main()
