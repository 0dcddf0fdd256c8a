"""`mke-exp run mfeat` against a minimal batched script of the same work, side by side.

    python benchmarks/bench_mfeat.py [--repeat 2] [--seeds 0,1,2,3,4]

Both sides are timed as whole commands in a fresh interpreter (start-up and imports included: what
a user waits for), alternating library, minimal, library, minimal, ... with one torch thread each:

* library: ``mke-exp run mfeat --out TMP --threads 1`` from scratch into a temporary folder (records and
  checkpoints written as a user's run writes them); accuracies read back from the records.
* minimal: this file with ``--minimal``: the same split (``mke_experiments.tasks.mfeat.load``), the same
  networks (teacher: 2-layer ReLU encoder 47→128→128, dropout 0.3, linear head; late-fusion student: one
  such encoder per modality, a dropout + linear head each, logits summed; no dropout for the MM student
  without regularisation), Adam lr 1e-3 weight decay 1e-4, 40 epochs of mini-batches of 128 (a last
  batch of one sample skipped), plain cross entropy for the teacher and the unregularised student and
  Eq. (3) with γ = 1 and input noise a = 0.5 (x + a·mean|x|·ε per modality and batch) for the others,
  the best validation-accuracy epoch kept; each seed's students learn from that seed's teacher; the
  six methods teacher, um_student, noisy_student, mm_student_noreg, mm_student, mm_supervised; all
  seeds of a method trained at once as one ensemble with stacked weights (S, in, out) and
  ``torch.baddbmm``. Nothing is written to disk. It draws its own random numbers, so per-seed numbers
  differ from the library's; the means should agree within noise.

Prints the two tables of mean test accuracy per method side by side with the difference, the times
(CPU user+sys of the child process and wall, median over ``--repeat``), and as its very last line
``library/minimal: N.NNx``: the median CPU time of the library command over that of the minimal one.
Never fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("teacher", "um_student", "noisy_student", "mm_student_noreg", "mm_student", "mm_supervised")
HIDDEN, DROPOUT, EPOCHS, BATCH, LR, WD, GAMMA, NOISE = 128, 0.3, 40, 128, 1e-3, 1e-4, 1.0, 0.5


# ---- the minimal batched script -----------------------------------------------------------------------------
def minimal(seeds: tuple[int, ...]) -> dict:
    """method -> [test accuracy per seed], every seed of a method trained at once."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from mke_experiments.tasks.mfeat import MfeatData, load

    torch.set_num_threads(1)
    split = load(MfeatData())
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    la, ua, ub, va, vb, ta, tb = map(t, (split.labeled_alpha, split.unlabeled_alpha, split.unlabeled_beta,
                                         split.val_alpha, split.val_beta, split.test_alpha, split.test_beta))
    y_l, y_u, y_v, y_t = (torch.as_tensor(v, dtype=torch.long) for v in
                          (split.labels, split.unlabeled_labels, split.val_labels, split.test_labels))
    S, K = len(seeds), split.n_classes
    gen = torch.Generator().manual_seed(1000 + seeds[0])

    def linear(fan_in, fan_out):  # nn.Linear's default initialisation, one weight per member
        bound = fan_in ** -0.5
        w = (torch.rand(S, fan_in, fan_out, generator=gen) * 2 - 1) * bound
        b = (torch.rand(S, 1, fan_out, generator=gen) * 2 - 1) * bound
        return [w.requires_grad_(), b.requires_grad_()]

    def network(dims, dropout):
        """Per modality: [W1, b1, W2, b2, W_head, b_head]; logits are the sum over modalities."""
        return dict(layers=[linear(d, HIDDEN) + linear(HIDDEN, HIDDEN) + linear(HIDDEN, K) for d in dims],
                    dropout=dropout)

    def forward(net, xs, train):
        out = 0
        for x, (w1, b1, w2, b2, wh, bh) in zip(xs, net["layers"]):
            if x.dim() == 2:
                x = x.expand(S, *x.shape)
            h = torch.relu(torch.baddbmm(b1, x, w1))
            h = torch.relu(torch.baddbmm(b2, h, w2))
            p = net["dropout"]
            if train and p > 0:
                h = h * (torch.rand(h.shape, generator=gen) >= p) / (1 - p)
            out = out + torch.baddbmm(bh, h, wh)
        return out  # (S, n, K)

    def noisy(x):  # T(x) = x + a·mean|x|·ε, the mean per member over its batch and features
        return x + NOISE * x.abs().mean(dim=(1, 2), keepdim=True) * torch.randn(x.shape, generator=gen)

    def ce(logits, y):  # (S,) mean cross entropy per member
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)

    def accuracy(net, xs, y):
        with torch.no_grad():
            return (forward(net, xs, False).argmax(-1) == y).float().mean(1)  # (S,)

    def fit(net, xs, y, regularised, val_xs):
        """xs: tensors (n, d); y: (n,) or per member (S, n). Returns the network with each member's best
        validation epoch."""
        params = [p for layer in net["layers"] for p in layer]
        opt = torch.optim.Adam(params, lr=LR, weight_decay=WD)
        n = len(xs[0])
        y = y.expand(S, n) if y.dim() == 1 else y
        best = [p.detach().clone() for p in params]
        best_acc = torch.full((S,), -1.0)
        for _ in range(EPOCHS):
            order = torch.rand(S, n, generator=gen).argsort(1)  # each member shuffles on its own
            for i in range(0, n, BATCH):
                idx = order[:, i:i + BATCH]
                if idx.shape[1] == 1 and n > 1:
                    continue
                xb = [x[idx] for x in xs]  # (S, B, d)
                yb = y.gather(1, idx)
                clean = forward(net, xb, True)
                loss = ce(clean, yb)
                if regularised:  # Eq. (3): L_pl + γ · ||softmax f(x) − softmax f(T(x))||²
                    perturbed = forward(net, [noisy(x) for x in xb], True)
                    loss = loss + GAMMA * ((clean.softmax(-1) - perturbed.softmax(-1)) ** 2).sum(-1).mean(1)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()  # members share no parameter: each gets its own gradient
                opt.step()
            acc = accuracy(net, val_xs, y_v)
            better = acc > best_acc
            if better.any():
                best_acc = torch.where(better, acc, best_acc)
                for b, p in zip(best, params):
                    b.copy_(torch.where(better.view(S, *[1] * (p.dim() - 1)), p.detach(), b))
        with torch.no_grad():
            for b, p in zip(best, params):
                p.copy_(b)
        return net

    results = {}
    teacher = fit(network([la.shape[1]], DROPOUT), [la], y_l, False, [va])
    results["teacher"] = accuracy(teacher, [ta], y_t)
    with torch.no_grad():
        pseudo = forward(teacher, [ua], False).argmax(-1)  # (S, M): each seed's own teacher
    um = fit(network([ua.shape[1]], DROPOUT), [ua], pseudo, True, [va])
    results["um_student"] = accuracy(um, [ta], y_t)
    noisy_student = fit(network([ua.shape[1]], DROPOUT), [torch.cat([la, ua])],
                        torch.cat([y_l.expand(S, -1), pseudo], 1), True, [va])
    results["noisy_student"] = accuracy(noisy_student, [ta], y_t)
    dims = [ua.shape[1], ub.shape[1]]
    for name, targets, regularised in (("mm_student_noreg", pseudo, False), ("mm_student", pseudo, True),
                                       ("mm_supervised", y_u, True)):
        student = fit(network(dims, DROPOUT if regularised else 0.0), [ua, ub], targets, regularised, [va, vb])
        results[name] = accuracy(student, [ta, tb], y_t)
    return {m: [float(v) for v in acc] for m, acc in results.items()}


# ---- the comparison ------------------------------------------------------------------------------------------
def timed(cmd: list[str], env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """(CPU user+sys of the child, wall seconds, the finished process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall, proc


def library_accuracies(out: Path) -> dict:
    from mke_theory.core.records import read_records

    acc = {}
    for r in read_records(out):
        acc.setdefault(r["method"], []).append((r["seed"], r["metrics"]["test_accuracy"]))
    return {m: [a for _, a in sorted(v)] for m, v in acc.items()}


def cell(values) -> str:
    import numpy as np

    v = 100 * np.asarray(values)
    return f"{v.mean():5.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:4.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side, alternating (default 2)")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="seeds (default: mke-exp run's 0,1,2,3,4)")
    parser.add_argument("--minimal", action="store_true", help="run only the minimal script (the timed child)")
    parser.add_argument("--json", type=Path, default=None, help="with --minimal: write its accuracies here")
    args = parser.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    if args.minimal:
        accuracies = minimal(seeds)
        if args.json is not None:
            args.json.write_text(json.dumps(accuracies))
        return

    import numpy as np

    exe = Path(sys.executable).with_name("mke-exp")
    library_cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mke_experiments"]
    env = {k: v for k, v in os.environ.items() if k not in ("MKE_THREADS",)}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # one thread for both sides, torch's and BLAS's
    tmp = Path(tempfile.mkdtemp(prefix="bench_mfeat_"))
    print(f"mfeat: {len(seeds)} seeds × {len(METHODS)} methods, library vs minimal batched script, "
          f"alternating, {args.repeat} run(s) each, 1 torch thread, {os.cpu_count()} CPUs")
    times = {"library": [], "minimal": []}
    acc = {}
    try:
        for r in range(args.repeat):
            out = tmp / f"library{r}"
            cmd = [*library_cmd, "run", "mfeat", "--out", str(out), "--seeds", args.seeds,
                   "--methods", ",".join(METHODS), "--device", "cpu", "--threads", "1"]
            cpu, wall, proc = timed(cmd, env)
            if proc.returncode != 0:
                sys.exit(f"library run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            times["library"].append((cpu, wall))
            acc.setdefault("library", library_accuracies(out))
            path = tmp / f"minimal{r}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--minimal", "--seeds", args.seeds,
                   "--json", str(path)]
            cpu, wall, proc = timed(cmd, env)
            if proc.returncode != 0:
                sys.exit(f"minimal run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            times["minimal"].append((cpu, wall))
            acc.setdefault("minimal", json.loads(path.read_text()))
            print(f"  run {r + 1}: library {times['library'][-1][0]:6.1f} s CPU ({times['library'][-1][1]:5.1f} s "
                  f"wall), minimal {times['minimal'][-1][0]:6.1f} s CPU ({times['minimal'][-1][1]:5.1f} s wall)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nmean test accuracy (%) ± std over {len(seeds)} seeds; Δ = library − minimal, "
          "noise = 2·√(se_lib² + se_min²)")
    print(f"{'method':<18} {'library':>13} {'minimal':>13} {'Δ':>7} {'noise':>6}")
    for m in METHODS:
        a, b = np.asarray(acc["library"][m]) * 100, np.asarray(acc["minimal"][m]) * 100
        noise = 2 * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) if len(seeds) > 1 else float("nan")
        flag = "" if not abs(a.mean() - b.mean()) > noise else "  <- outside noise"
        print(f"{m:<18} {cell(a / 100):>13} {cell(b / 100):>13} {a.mean() - b.mean():>+7.1f} {noise:>6.1f}{flag}")

    med = {side: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for side, v in times.items()}
    print(f"\nwhole command, median of {args.repeat}: library {med['library'][0]:.1f} s CPU, "
          f"{med['library'][1]:.1f} s wall; minimal {med['minimal'][0]:.1f} s CPU, {med['minimal'][1]:.1f} s wall "
          f"(wall ratio {med['library'][1] / med['minimal'][1]:.2f}x)")
    print("ratio below: median CPU time (user+sys) of the library command / that of the minimal script")
    print(f"library/minimal: {med['library'][0] / med['minimal'][0]:.2f}x")


if __name__ == "__main__":
    main()
