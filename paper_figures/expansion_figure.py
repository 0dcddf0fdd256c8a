"""Expansion c and separation μ of the UM and MM spaces against the pseudo-label error η."""

import sys

from _common import arguments, records_for, write_figure

from mke_theory.results.plots import SIMULATE_TASK, plot_expansion

args = arguments(__doc__.splitlines()[0], "runs/simulate")
records = records_for(args.runs, SIMULATE_TASK, f"mke-theory simulate --noise 0,0.1,0.2,0.3,0.4 --out {args.runs}",
                      outputs=[args.out / "expansion_figure.png", args.out / "expansion_figure.pdf"])
if records is None:
    sys.exit(0)
try:
    fig = plot_expansion(records)
except ValueError as e:  # e.g. records of two different sweeps in one folder
    sys.exit(f"Error: {e}")
write_figure(fig, args.out, "expansion_figure")
