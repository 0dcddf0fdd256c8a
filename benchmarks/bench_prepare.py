"""Parallel prepare: the same RAVDESS-format tree prepared with 1 and with 2 worker processes, side by side.

The tree is ``mke_experiments.testing.ravdess.make_ravdess_tree`` scaled up (``clips`` pairs: 8 emotions per
actor, up to 24 actors; 3 s wavs at 48 kHz and 3 s mp4s of 640×480 at 30 fps, as long as a RAVDESS clip),
prepared with ``ravdess.prepare``'s default parameters (4 face crops of 48×48, 40 mel bands, 3 s), each run in a
fresh interpreter (as ``mke-exp prepare`` runs) into a fresh folder. The target is a speed-up of at least 1.7×
with 2 workers on 2 free cores; the arrays of all runs must be equal.

    python benchmarks/bench_prepare.py [--clips 192] [--repeats 2] [--json OUT.json]
    python benchmarks/bench_prepare.py --digests [--clips 192] [--repeats 3] [--workers 1]

``--digests`` times what the content digests cost instead (``measure_digests``): the same prepare with and without
them (``MKE_PREPARE_DIGESTS=0``, a switch only this benchmark uses), runs taking turns, each timed inside its
interpreter (imports excluded), and the rerun's up-to-date check (every file re-hashed, nothing decoded) against
the prepare it spares. The target is a digest cost under 5 % of prepare time.

``measure(clips, workers=(1, 2))`` is the importable entry (benchmarks/bench_scale.py uses it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mke_experiments.data import cache
from mke_experiments.testing.ravdess import make_ravdess_tree
from mke_theory.console import all_cores

MAX_CLIPS = 24 * 8  # one pair per actor and emotion in the fixture


def _tree(root: Path, clips: int) -> Path:
    actors = range(1, min(24, math.ceil(clips / 8)) + 1)
    return make_ravdess_tree(root, actors=actors, frames=90, width=640, height=480, seconds=3.0)


# One prepare as ``mke-exp prepare`` runs it: a fresh interpreter, which imports and warms up its libraries.
PREPARE = ("from mke_experiments.data import ravdess; "
           "ravdess.prepare({raw!r}, {out!r}, workers={workers}, shard_size={shard_size})")


def _cpu_seconds() -> float:
    """CPU time of the finished child processes (each prepare and its pool's workers), user + system."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


# One prepare timed inside its interpreter (the imports excluded, as they are the same with and without digests).
TIMED = ("import time; from mke_experiments.data import ravdess; t = time.perf_counter(); "
         "m = ravdess.prepare({raw!r}, {out!r}, workers={workers}, shard_size={shard_size}); "
         "print(time.perf_counter() - t, m['reused'])")


def _timed(raw: Path, out: Path, workers: int, digests: bool, shard_size: int = cache.SHARD_SIZE) -> tuple:
    """(seconds, CPU seconds, reused) of one prepare in a fresh interpreter, with or without the content digests;
    the CPU seconds count the whole child (its imports too, the same in both)."""
    code = TIMED.format(raw=str(raw), out=str(out), workers=workers, shard_size=shard_size)
    env = dict(os.environ, MKE_PREPARE_DIGESTS="1" if digests else "0")
    cpu = _cpu_seconds()
    line = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True,
                          text=True).stdout.split()
    return float(line[-2]), _cpu_seconds() - cpu, line[-1] == "True"


def measure_digests(clips: int = MAX_CLIPS, repeats: int = 3, workers: int = 1) -> dict:
    """Seconds of ``ravdess.prepare`` with and without the content digests (item digests and shard checksums), the
    fastest of ``repeats`` runs each (taking turns, each into a fresh folder), and of the rerun that finds the
    cache up to date (every source file re-hashed). Raises AssertionError when the arrays differ."""
    result = {"clips": None, "workers": workers, "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="bench_digests_") as folder:
        raw = _tree(Path(folder) / "raw", clips)
        result["source_bytes"] = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
        for run in range(repeats):
            for mode in ("with", "without"):
                out = Path(folder) / f"out_{mode}_{run}"
                seconds, cpu, _ = _timed(raw, out, workers, mode == "with")
                result[f"seconds_{mode}"] = round(min(seconds, result.get(f"seconds_{mode}", float("inf"))), 3)
                result[f"cpu_seconds_{mode}"] = round(min(cpu, result.get(f"cpu_seconds_{mode}", float("inf"))), 3)
                result["clips"] = json.loads((out / "manifest.json").read_text())["rows"]
            check, _, reused = _timed(raw, Path(folder) / "out_with_0", workers, True)
            assert reused, "the rerun did not find the cache up to date"
            result["seconds_check"] = round(min(check, result.get("seconds_check", float("inf"))), 3)
        first, second = Path(folder) / "out_with_0", Path(folder) / "out_without_0"
        for path in sorted((first / cache.ARRAYS).iterdir()):
            if path.stem != cache.DIGEST:
                assert np.array_equal(np.load(path), np.load(second / cache.ARRAYS / path.name)), path.name
    result["digest_cost"] = round(result["seconds_with"] / result["seconds_without"] - 1, 4)
    result["digest_cost_cpu"] = round(result["cpu_seconds_with"] / result["cpu_seconds_without"] - 1, 4)
    result["check_over_prepare"] = round(result["seconds_check"] / result["seconds_with"], 4)
    return result


ONE_THREAD = {variable: "1" for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                              "NUMBA_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")}  # as a pool worker of 2


def measure(clips: int = MAX_CLIPS, workers=(1, 2), shard_size: int = cache.SHARD_SIZE, repeats: int = 1,
            one_thread: bool = False) -> dict:
    """Seconds of ``ravdess.prepare`` per worker count, each in a fresh interpreter as ``mke-exp prepare`` runs
    it, on a fixture tree of ``clips`` pairs (rounded up to a multiple of 8, at most 192). With ``repeats`` > 1
    the worker counts take turns and each keeps its fastest run (other work on a shared machine only ever slows
    a run down).

    Returns
    -------
    dict ``{"clips", "cores", "shard_size", "repeats", "seconds_<w>" and "cpu_seconds_<w>" per w, "speedup"}``:
    speedup is the time of the first worker count over the last; CPU seconds (of the fastest run) count the
    workers too (one worker decodes in the prepare's own process, with OpenCV's and OpenBLAS's own threads, so
    it may use more than one core). Raises AssertionError when the runs' arrays differ. ``one_thread`` adds
    ``seconds_1t``, one worker whose libraries run one thread each (as each of 2 pool workers on 2 cores does,
    ``cache._limit_threads``), and ``speedup_over_one_thread``, the last worker count against it: how the pool
    scales, apart from the libraries' own threads.
    """
    if not 1 <= clips <= MAX_CLIPS:
        raise ValueError(f"measure: clips={clips} must lie in 1..{MAX_CLIPS} (the fixture's actors × emotions)")
    result = {"clips": None, "cores": all_cores(), "shard_size": shard_size, "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as folder:
        raw = _tree(Path(folder) / "raw", clips)
        for run in range(repeats):
            for w in (*workers, *(["1t"] if one_thread else [])):
                out = Path(folder) / f"out_{w}_{run}"
                started, cpu = time.perf_counter(), _cpu_seconds()
                code = PREPARE.format(raw=str(raw), out=str(out), workers=1 if w == "1t" else w, shard_size=shard_size)
                subprocess.run([sys.executable, "-c", code], check=True,
                               env=dict(os.environ, **ONE_THREAD) if w == "1t" else None)
                seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
                manifest = json.loads((out / "manifest.json").read_text())
                if seconds < result.get(f"seconds_{w}", float("inf")):
                    result[f"seconds_{w}"], result[f"cpu_seconds_{w}"] = round(seconds, 3), round(cpu, 3)
                result["clips"] = manifest["rows"]
                first = Path(folder) / f"out_{workers[0]}_0"
                for path in sorted((first / cache.ARRAYS).iterdir()):
                    assert np.array_equal(np.load(path), np.load(out / cache.ARRAYS / path.name)), path.name
    result["speedup"] = round(result[f"seconds_{workers[0]}"] / result[f"seconds_{workers[-1]}"], 3)
    if one_thread:
        result["speedup_over_one_thread"] = round(result["seconds_1t"] / result[f"seconds_{workers[-1]}"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=MAX_CLIPS)
    parser.add_argument("--repeats", type=int, default=2, help="Runs per worker count, taking turns; the fastest "
                                                                    "counts.")
    parser.add_argument("--json", type=Path, default=None, help="Write the numbers here.")
    parser.add_argument("--one-thread", action="store_true", help="Also time one worker on one thread per library.")
    parser.add_argument("--digests", action="store_true", help="Time the content digests' cost instead.")
    parser.add_argument("--workers", type=int, default=1, help="With --digests: the prepare's workers.")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # other work on the machine: it shares the cores the workers count on
    if args.digests:
        r = measure_digests(args.clips, max(1, args.repeats), args.workers)
        print(f"prepare of {r['clips']} RAVDESS-format clips, {r['workers']} worker(s) (1-minute load average "
              f"{load:.2f} before), fastest of {r['repeats']}: with content digests {r['seconds_with']:.2f} s, "
              f"without {r['seconds_without']:.2f} s: the digests cost {100 * r['digest_cost']:+.1f} % (target < 5 %), "
              f"{100 * r['digest_cost_cpu']:+.1f} % in CPU time ({r['cpu_seconds_with']:.2f} against "
              f"{r['cpu_seconds_without']:.2f} CPU-s); the rerun's up-to-date check (every one of the "
              f"{r['source_bytes'] / 1e6:.0f} MB of source files re-hashed) {r['seconds_check']:.2f} s, "
              f"{100 * r['check_over_prepare']:.1f} % of the prepare")
        if args.json is not None:
            args.json.write_text(json.dumps(r, indent=1) + "\n")
        return
    result = measure(args.clips, repeats=args.repeats, one_thread=args.one_thread)
    print(f"prepare of {result['clips']} RAVDESS-format clips on {result['cores']} cores (1-minute load average "
          f"{load:.2f} before): 1 worker {result['seconds_1']:.1f} s ({result['cpu_seconds_1']:.1f} CPU-s), "
          f"2 workers {result['seconds_2']:.1f} s ({result['cpu_seconds_2']:.1f} CPU-s), speed-up "
          f"{result['speedup']:.2f}× (target ≥ 1.7×); fastest of {result['repeats']} run(s) each")
    if args.one_thread:
        print(f"1 worker with one thread per library {result['seconds_1t']:.1f} s: 2 workers "
              f"{result['speedup_over_one_thread']:.2f}× that")
    if args.json is not None:
        keys = ("clips", "seconds_1", "seconds_2", "speedup", "seconds_1t", "speedup_over_one_thread")
        args.json.write_text(json.dumps({key: result[key] for key in keys if key in result}, indent=1) + "\n")

if __name__ == "__main__":
    main()
