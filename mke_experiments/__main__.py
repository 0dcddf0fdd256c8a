"""``python -m mke_experiments`` (and ``torchrun -m mke_experiments``) runs the ``mke-exp`` CLI."""

from mke_experiments.cli import cli

cli()
