"""Time the expansion diagnostics on 20,000 points in the multimodal space (α, β side by side).

    python benchmarks/bench_expansion.py [--n 20000] [--seed 0] [--min-mass 0.2]

Steps: embed, choose_radius, neighbourhood_graph, mistake_set_expansion (symmetric pseudo labels,
η = 0.2), worst_case_expansion("both"), separation. At the default radius the sample graph is
disconnected, so worst_case_expansion with min_mass = 0 stops at a union of small components
(ratio 1, exact); the search itself is timed again with ``--min-mass`` (sets of at least that mass),
which runs the greedy and spectral searches in full. Prints times and never fails on time.
"""

from __future__ import annotations

import argparse
import os
import time

from mke_theory.expansion import (
    choose_radius,
    embed,
    mistake_set_expansion,
    neighbourhood_graph,
    separation,
    worst_case_expansion,
)
from mke_theory.generators import gaussian_mixture
from mke_theory.noise import symmetric_noise

TARGET = "target: ≤ 30 s total on a 2-core machine"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="unlabeled points (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the searches (default 0)")
    parser.add_argument("--min-mass", type=float, default=0.2, help="min_mass of the forced search (default 0.2)")
    args = parser.parse_args()
    split = gaussian_mixture(n_unlabeled=args.n, alpha_dim=2, beta_dim=2, beta_separation=3.0,
                             random_state=args.seed)
    labels = split.unlabeled_labels
    print(f"expansion benchmark: {args.n} points, α 2-d + β 2-d, 2 classes; {os.cpu_count()} CPUs")
    print(TARGET)

    times = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - t0
        return out

    points = timed("embed", lambda: embed(split.unlabeled_alpha, split.unlabeled_beta))
    radius = timed("choose_radius", lambda: choose_radius(points, k=10, quantile=0.5, random_state=args.seed))
    graph = timed("neighbourhood_graph", lambda: neighbourhood_graph(points, radius))
    pseudo = symmetric_noise(labels, 0.2, random_state=args.seed)
    mistakes = timed("mistake_set_expansion", lambda: mistake_set_expansion(graph, labels, pseudo))
    worst = timed("worst_case_expansion", lambda: worst_case_expansion(graph, labels, a=0.5, method="both",
                                                                      random_state=args.seed))
    forced = timed(f"worst_case_expansion(min_mass={args.min_mass})",
                   lambda: worst_case_expansion(graph, labels, a=0.5, method="both", random_state=args.seed,
                                                min_mass=args.min_mass))
    mu = timed("separation", lambda: separation(labels, points, radius))

    print(f"radius r = {radius:.4f} (half the median distance to the 10th neighbour); "
          f"graph: {graph.nnz} entries, {graph.nnz / args.n:.1f} per row incl. the self-loop")
    print(f"mistake sets (η = 0.2): c = {mistakes['c']:.3f}, mass = {mistakes['mass'].round(3).tolist()}")
    print(f"worst case (a = 0.5): c = {worst.c:.3f} via {worst.method} (exact: {worst.exact})")
    print(f"worst case (a = 0.5, min_mass = {args.min_mass}): c = {forced.c:.3f} via {forced.method}, "
          f"per class {[round(v, 3) for v in forced.per_class.values()]}")
    print(f"separation μ = {mu:.4f}")
    for name, seconds in times.items():
        print(f"  {name:<40s} {seconds:8.3f} s")
    print(f"  {'total':<40s} {sum(times.values()):8.3f} s   ({TARGET})")


if __name__ == "__main__":
    main()
