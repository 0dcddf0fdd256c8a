"""How the packages are cut: lines per subpackage, the longest functions, and start-up time of the light commands.

    python benchmarks/layout_report.py [--root DIR] [--top 15] [--repeats 5] [--json FILE]

``--root`` measures another checkout (e.g. a worktree of an older commit: the commands then run with
``PYTHONPATH=DIR``, so its packages shadow the installed ones). Lines are physical lines of ``.py`` files;
a function's length is from its ``def`` to its last line (decorators excluded, nested functions counted in
their parent too). The wall time of ``mke-exp list`` and ``mke-theory --help`` is the median of ``--repeats``
fresh interpreters, both commands taking turns, so that a busy machine slows them alike.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

PACKAGES = ("mke_theory", "mke_experiments")


def lines_per_subpackage(root: Path) -> dict:
    counts = Counter()
    for pkg in PACKAGES:
        for path in (root / pkg).rglob("*.py"):
            rel = path.relative_to(root).parts
            key = "/".join(rel[:2]) if len(rel) > 2 else f"{rel[0]}/(top level)"
            counts[key] += len(path.read_text().splitlines())
    return dict(sorted(counts.items()))


def longest_functions(root: Path, top: int) -> list[tuple[int, str]]:
    found = []
    for pkg in PACKAGES:
        for path in (root / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    found.append((n, f"{path.relative_to(root)}:{node.name}"))
    return sorted(found, reverse=True)[:top]


def startup(root: Path, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root))
    commands = {"mke-exp list": [sys.executable, "-c", "from mke_experiments.cli import cli; cli(['list'])"],
                "mke-theory --help": [sys.executable, "-c", "from mke_theory.cli import cli; cli(['--help'])"]}
    times = {name: [] for name in commands}
    for _ in range(repeats):
        for name, args in commands.items():
            t0 = time.perf_counter()
            subprocess.run(args, env=env, cwd=root, capture_output=True, check=False)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    root = args.root.resolve()
    report = dict(lines=lines_per_subpackage(root), longest=longest_functions(root, args.top),
                  over_80=sum(1 for n, _ in longest_functions(root, 10_000) if n > 80),
                  startup_s=startup(root, args.repeats))
    print(f"lines per subpackage ({root}):")
    for key, n in report["lines"].items():
        print(f"  {key:40s} {n:6d}")
    print(f"the {args.top} longest functions ({report['over_80']} over 80 lines):")
    for n, name in report["longest"]:
        print(f"  {n:4d}  {name}")
    print("start-up, median wall s: " + ", ".join(f"{k} {v:.2f}" for k, v in report["startup_s"].items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
