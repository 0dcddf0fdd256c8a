"""TwoMoon side by side: the library's batched path against a plain per-seed loop, and the whole command.

    python benchmarks/bench_twomoon.py [--repeat 3]

(a) ``run_twomoon(TwoMoonConfig(rng=...))``: every student of one architecture trained at once in an
    ``MLPEnsemble`` (10 runs × UM / MM / supervised, the teacher, and the figure's naive student).
(b) ``per_seed_loop``: the same table trained the way the official notebook trains, written here: one
    ``nn.Module`` at a time, ``torch.optim.SGD`` full batch, noise drawn from the global generator inside
    the forward pass, 2000 steps per student; it does not train the figure's extra student.

Both are timed for ``--rng notebook`` (the notebook's seeds and streams; the last line's speed-up)
and for the default streams, where the loop draws feature noise only when b > 0 as the library does.

Both run in this process, alternating (a, b, a, b, ...) on one torch thread each, after one warm-up of
each; the median of ``--repeat`` timings is reported. Both must give the same 31 accuracies (the teacher
and 10 runs × 3 students): the script says so, or lists the differences. The last lines time the whole
``mke-theory twomoon --no-figure`` command (interpreter start included), then the same command with a
busy process on every core but one, on its default one torch thread and with ``--threads`` = all
cores (the thread collapse the default avoids), and print the speed-up.
Nothing here fails on time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mke_theory.generators import twomoon
from mke_theory.toy.twomoon import TASK, TwoMoonConfig, official_seeds, run_twomoon


class NotebookNet(nn.Module):
    """in → h → h → 2 with ReLU; input noise a·mean|x|·ε (drawn when a > 0) and feature noise
    b·mean|h|·ε (drawn at every call, as the notebook's forward does; with ``draw_always=False`` only
    when b > 0, as the library's default) after the first layer, then dropout p."""

    def __init__(self, d: int, h: int, draw_always: bool = True):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(d, h), nn.Linear(h, h), nn.Linear(h, 2)
        self.draw_always = draw_always

    def forward(self, x, a=0.0, b=0.0, p=0.0):
        if a:
            x = x + a * x.abs().mean() * torch.randn(x.shape)
        h = torch.relu(self.fc1(x))
        if b or self.draw_always:
            h = h + b * h.abs().mean() * torch.randn(h.shape)
        h = F.dropout(h, p, training=self.training)
        return self.fc3(torch.relu(self.fc2(h)))


def train_one(seed, x, y, hidden, steps, a, lr=0.01, draw_always=True) -> NotebookNet:
    torch.manual_seed(seed)
    net = NotebookNet(x.shape[1], hidden, draw_always)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x, a), y).backward()
        opt.step()
    return net.eval()


def accuracy(net, x, y) -> float:
    with torch.no_grad():  # correct / n in float64, as the library computes it
        return int((net(x).argmax(1) == y).sum()) / len(y)


def per_seed_loop(cfg: TwoMoonConfig) -> dict:
    """(method, run) -> test accuracy, one model at a time (random streams as ``cfg.rng`` says)."""
    split, notebook = twomoon(random_state=cfg.data_seed, scale_on=cfg.scale_on), cfg.rng == "notebook"
    t = lambda a, dtype=torch.float32: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    test_a, test_ab, test_y = t(split.test_alpha), t(split.test_multimodal), t(split.test_labels, torch.long)
    teacher = train_one(cfg.teacher_seed, t(split.labeled_alpha), t(split.labels, torch.long),
                        cfg.teacher_hidden, cfg.teacher_steps, a=0.0, lr=cfg.lr, draw_always=notebook)
    with torch.no_grad():
        pseudo = teacher(t(split.unlabeled_alpha)).argmax(1)
    out = {("teacher", 0): accuracy(teacher, test_a, test_y)}
    u_a, u_ab, u_y = t(split.unlabeled_alpha), t(split.unlabeled_multimodal), t(split.unlabeled_labels, torch.long)
    for run, seed in enumerate(cfg.student_seeds):
        for method, x, y, hidden, x_test in (("um_student", u_a, pseudo, cfg.um_hidden, test_a),
                                             ("mm_student", u_ab, pseudo, cfg.mm_hidden, test_ab),
                                             ("mm_supervised", u_ab, u_y, cfg.mm_hidden, test_ab)):
            net = train_one(seed, x, y, hidden, cfg.student_steps, a=1.0, lr=cfg.lr, draw_always=notebook)
            out[(method, run)] = accuracy(net, x_test, test_y)
    return out


def batched(cfg: TwoMoonConfig) -> dict:
    """(method, run) -> test accuracy from the library (runs in the order of the seeds, repeats included)."""
    result, out, count = run_twomoon(cfg), {}, {}
    for r in result.runs:
        if r["task"] != TASK:
            continue
        run = count[r["method"]] = count.get(r["method"], -1) + 1
        out[(r["method"], run)] = r["metrics"]["test_accuracy"]
    return out


def whole_command(repeat: int, extra=()) -> tuple[float, subprocess.CompletedProcess]:
    script = Path(sys.executable).with_name("mke-theory")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mke_theory.cli"]
    cmd += ["twomoon", "--no-figure", *extra]  # the documented command: its default, 10 seeds
    tmp = tempfile.mkdtemp(prefix="bench_twomoon_")
    times, proc = [], None
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKE_THREADS")}
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=env)
            times.append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return statistics.median(times), proc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timings of each side, alternating (median; default 3)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"TwoMoon benchmark: torch {torch.__version__}, 1 thread each side, {os.cpu_count()} CPUs")
    small = TwoMoonConfig(rng="notebook", n_runs=1, teacher_steps=10, student_steps=10)
    batched(small), per_seed_loop(small)  # warm-up of both, not timed

    ratio = {}
    for rng, what in (("notebook", f"the notebook's seeds {official_seeds(10, repeats=True)} and random streams"),
                      ("library", f"the default: seeds {official_seeds(10)}")):
        cfg = TwoMoonConfig(rng=rng)
        print(f"\n--rng {rng}: {what}")
        times, results = {"batched": [], "loop": []}, {}
        for _ in range(args.repeat):  # alternating, so that load on the machine hits both alike
            for name, fn in (("batched", batched), ("loop", per_seed_loop)):
                t0 = time.perf_counter()
                results[name] = fn(cfg)
                times[name].append(time.perf_counter() - t0)
        t_b, t_l = statistics.median(times["batched"]), statistics.median(times["loop"])
        runs = {name: ", ".join(f"{t:.2f}" for t in ts) for name, ts in times.items()}
        print(f"(a) library, batched ensemble      : {t_b:6.2f} s  (runs: {runs['batched']})")
        print(f"(b) per-seed loop, notebook's way  : {t_l:6.2f} s  (runs: {runs['loop']})  "
              f"ratio {t_l / t_b:.1f}x")
        a, b = results["batched"], results["loop"]
        diff = {k: (a.get(k), b[k]) for k in b if a.get(k) != b[k]}
        if diff:
            print(f"accuracies DIFFER in {len(diff)} of {len(b)} (method, run) cells: "
                  + "; ".join(f"{m} run {r + 1}: {x} vs {y}" for (m, r), (x, y) in sorted(diff.items())))
        else:
            print(f"identical accuracies: all {len(b)} (teacher + 10 runs × UM / MM / supervised) agree exactly")
        ratio[rng] = t_l / t_b

    t_cmd, proc = whole_command(args.repeat)
    if proc.returncode == 0:
        print(f"(c) whole command `mke-theory twomoon --no-figure` (10 seeds): {t_cmd:.2f} s wall, "
              "interpreter start included (median)")
    else:
        print(f"(c) whole command FAILED (exit {proc.returncode}); stderr tail:\n    "
              + "\n    ".join(proc.stderr.strip().splitlines()[-8:]))
    # (d) a loaded machine: one busy process per core but one; the default (1 thread) against every core
    cores = os.cpu_count() or 1
    if cores > 1:
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores - 1)]
        try:
            t_one, _ = whole_command(1)  # once each: the collapsed run can take minutes
            t_all, _ = whole_command(1, ("--threads", str(cores)))
        finally:
            for p in burners:
                p.kill()
        print(f"(d) with {cores - 1} busy process(es) beside it: default (1 thread) {t_one:.2f} s, "
              f"--threads {cores} {t_all:.2f} s wall ({t_all / t_one:.1f}x slower)")
    print(f"speed-up vs per-seed loop: {ratio['notebook']:.1f}x")


if __name__ == "__main__":
    main()
