"""``fit_mke(bundle, seeds=...)`` from Python against ``mke-exp run arrays`` on the same bundle, side by side.

    python benchmarks/bench_fit_mke.py [--repeat 3] [--seeds 0,1,2] [--n-unlabeled 3000] [--default-threads]

One bundle (``mke_experiments.testing.bundles.write_bundle`` of a 3-class Gaussian mixture: 200 labeled,
``--n-unlabeled`` unlabeled, 1000 test samples), the ``arrays`` task's defaults (50 epochs), methods teacher
and mm_student, on the CPU. Both sides are whole commands in a fresh interpreter (start-up and imports
included: what a user waits for), alternating fit_mke, CLI, fit_mke, CLI, ...:

* fit_mke: this file with ``--child``: ``fit_mke(dict(np.load(bundle)), seeds=[...], device="cpu")``, then
  ``print(result.table())``;
* CLI: ``mke-exp run arrays --data BUNDLE --methods teacher,mm_student --seeds 0,1,2 --device cpu``.

Neither side is told a thread count: ``$MKE_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` are removed
from their environment, so each applies its own policy (the task's ``Task.small``: one torch thread for
``arrays``). ``--default-threads`` adds a third side, fit_mke with ``threads=`` every core (torch's default,
what ``fit_mke`` computed with before it applied the policy).

Prints each run's CPU time (user+sys of the child) and wall time, whether the two sides printed the same table,
the medians side by side, and as its very last line ``fit_mke/CLI: N.NNx``, the median CPU time of the fit_mke
process over that of the CLI's (the target: at most 1.1). Never fails on time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

METHODS = ("teacher", "mm_student")


def child(bundle: Path, seeds: list[int], threads: int | None) -> None:
    import numpy as np

    from mke_experiments.protocol import fit_mke

    result = fit_mke(dict(np.load(bundle)), device="cpu", methods=METHODS, seeds=seeds, threads=threads)
    print(result.table())


def timed(cmd: list[str], env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """(CPU user+sys of the child, wall seconds, the finished process): ``bench_mfeat.timed``, and a failed
    child ends the benchmark."""
    from bench_mfeat import timed as measure  # benchmarks/ is on the path of a script run from it

    cpu, wall, proc = measure(cmd, env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return cpu, wall, proc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating (default 3)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds (default 0,1,2)")
    parser.add_argument("--n-unlabeled", type=int, default=3000, help="unlabeled samples of the bundle (3000)")
    parser.add_argument("--default-threads", action="store_true",
                        help="also time fit_mke on every core (torch's default thread count)")
    parser.add_argument("--child", type=Path, default=None, help="run fit_mke on this bundle (the timed child)")
    parser.add_argument("--threads", type=int, default=None, help="with --child: fit_mke's threads=")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.child is not None:
        return child(args.child, seeds, args.threads)

    from mke_experiments.testing.bundles import write_bundle
    from mke_theory.console import all_cores
    from mke_theory.generators import gaussian_mixture

    tmp = Path(tempfile.mkdtemp(prefix="bench_fit_mke_"))
    bundle = write_bundle(tmp / "bundle.npz", gaussian_mixture(
        n_classes=3, n_labeled=200, n_unlabeled=args.n_unlabeled, n_test=1000, random_state=0))
    exe = Path(sys.executable).with_name("mke-exp")
    cli_cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mke_experiments"]
    me = [sys.executable, str(Path(__file__).resolve()), "--child", str(bundle), "--seeds", args.seeds]
    sides = {"fit_mke": me,
             "CLI": [*cli_cmd, "run", "arrays", "--data", str(bundle), "--methods", ",".join(METHODS),
                     "--seeds", args.seeds, "--device", "cpu"]}
    if args.default_threads:
        sides[f"fit_mke threads={all_cores()}"] = [*me, "--threads", str(all_cores())]
    env = {k: v for k, v in os.environ.items() if k not in ("MKE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    print(f"arrays bundle: 3 classes, 200 labeled / {args.n_unlabeled} unlabeled / 1000 test; {len(seeds)} seeds "
          f"× {', '.join(METHODS)}; {args.repeat} run(s) of each side, alternating; {all_cores()} usable cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    times = {side: [] for side in sides}
    outputs = {}
    try:
        for r in range(args.repeat):
            line = []
            for side, cmd in sides.items():
                cpu, wall, proc = timed(cmd, env)
                times[side].append((cpu, wall))
                outputs.setdefault(side, proc.stdout)
                line.append(f"{side} {cpu:6.1f} s CPU ({wall:5.1f} s wall)")
            print(f"  run {r + 1}: " + ", ".join(line))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    table = outputs["fit_mke"].strip()
    print(f"\nthe same table from both: {'yes' if table and table in outputs['CLI'] else 'NO'}")
    print(table)
    med = {side: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for side, v in times.items()}
    print(f"\nwhole command, median of {args.repeat}:")
    for side, (cpu, wall) in med.items():
        print(f"  {side:<20} {cpu:6.1f} s CPU {wall:6.1f} s wall")
    print(f"wall ratio fit_mke/CLI: {med['fit_mke'][1] / med['CLI'][1]:.2f}x")
    print("ratio below: median CPU time (user+sys) of the fit_mke process / that of the CLI's (target <= 1.1)")
    print(f"fit_mke/CLI: {med['fit_mke'][0] / med['CLI'][0]:.2f}x")


if __name__ == "__main__":
    main()
