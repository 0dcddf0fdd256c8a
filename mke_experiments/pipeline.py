"""Moved to ``mke_experiments.protocol``; this name goes in a later release (``mke_theory._moved``)."""

from mke_theory._moved import alias

alias(__name__)
