"""Parallel prepare: the same RAVDESS-format tree prepared with 1 and with 2 worker processes, side by side.

The tree is ``mke_experiments.testing.ravdess.make_ravdess_tree`` scaled up (``clips`` pairs: 8 emotions per
actor, up to 24 actors; 3 s wavs at 48 kHz and 1.5 s mp4s of 640×480 at 30 fps), prepared with ``ravdess.prepare``'s
default parameters (4 face crops of 48×48, 40 mel bands, 3 s) into a fresh folder per run. The target is a
speed-up of at least 1.7× with 2 workers on 2 free cores; the arrays of both runs must be equal.

    python benchmarks/bench_prepare.py [--clips 192] [--json OUT.json]

``measure(clips, workers=(1, 2))`` is the importable entry (benchmarks/bench_scale.py uses it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from mke_experiments.data import cache, ravdess
from mke_experiments.testing.ravdess import make_ravdess_tree
from mke_theory.threads import all_cores

MAX_CLIPS = 24 * 8  # one pair per actor and emotion in the fixture


def _tree(root: Path, clips: int) -> Path:
    actors = range(1, min(24, math.ceil(clips / 8)) + 1)
    return make_ravdess_tree(root, actors=actors, frames=45, width=640, height=480, seconds=3.0)


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(clips: int = MAX_CLIPS, workers=(1, 2), shard_size: int = cache.SHARD_SIZE) -> dict:
    """Seconds of ``ravdess.prepare`` per worker count on a fixture tree of ``clips`` pairs (rounded up to a
    multiple of 8, at most 192).

    Returns
    -------
    dict ``{"clips", "cores", "shard_size", "seconds_<w>" and "cpu_seconds_<w>" per w, "speedup"}``: speedup is
    the time of the first worker count over the last; CPU seconds count the workers too (one worker in this
    process keeps OpenCV's and OpenBLAS's own threads, so it may use more than one core). Raises
    AssertionError when the runs' arrays differ.
    """
    if not 1 <= clips <= MAX_CLIPS:
        raise ValueError(f"measure: clips={clips} must lie in 1..{MAX_CLIPS} (the fixture's actors × emotions)")
    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as folder:
        raw = _tree(Path(folder) / "raw", clips)
        result = {"clips": None, "cores": all_cores(), "shard_size": shard_size}
        outs = []
        for w in workers:
            out = Path(folder) / f"out_{w}"
            started, cpu = time.perf_counter(), _cpu_seconds()
            manifest = ravdess.prepare(raw, out, workers=w, shard_size=shard_size)
            result[f"seconds_{w}"] = round(time.perf_counter() - started, 3)
            result[f"cpu_seconds_{w}"] = round(_cpu_seconds() - cpu, 3)
            result["clips"] = manifest["rows"]
            outs.append(out)
        for out in outs[1:]:
            for path in sorted((outs[0] / cache.ARRAYS).iterdir()):
                assert np.array_equal(np.load(path), np.load(out / cache.ARRAYS / path.name)), path.name
    result["speedup"] = round(result[f"seconds_{workers[0]}"] / result[f"seconds_{workers[-1]}"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=MAX_CLIPS)
    parser.add_argument("--json", type=Path, default=None, help="Write the numbers here.")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # other work on the machine: it shares the cores the workers count on
    result = measure(args.clips)
    print(f"prepare of {result['clips']} RAVDESS-format clips on {result['cores']} cores (1-minute load average "
          f"{load:.2f} before): 1 worker {result['seconds_1']:.1f} s ({result['cpu_seconds_1']:.1f} CPU-s), "
          f"2 workers {result['seconds_2']:.1f} s ({result['cpu_seconds_2']:.1f} CPU-s), speed-up "
          f"{result['speedup']:.2f}× (target ≥ 1.7×)")
    if args.json is not None:
        args.json.write_text(json.dumps({key: result[key] for key in ("clips", "seconds_1", "seconds_2", "speedup")},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
