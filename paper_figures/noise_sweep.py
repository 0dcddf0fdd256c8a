"""Noise sweep: students' test error and label corrections against the pseudo-label error η."""

import sys

from _common import arguments, records_for, write_figure

from mke_theory.results.plots import SIMULATE_TASK, plot_noise_sweep

args = arguments(__doc__.splitlines()[0], "runs/simulate")
records = records_for(args.runs, SIMULATE_TASK, f"mke-theory simulate --noise 0,0.1,0.2,0.3,0.4 --out {args.runs}",
                      outputs=[args.out / "noise_sweep.png", args.out / "noise_sweep.pdf"])
if records is None:
    sys.exit(0)
try:
    fig = plot_noise_sweep(records)
except ValueError as e:  # e.g. records of two different sweeps in one folder
    sys.exit(f"Error: {e}")
write_figure(fig, args.out, "noise_sweep")
