"""Moved to ``mke_theory.results.plots``; this name goes in a later release (``mke_theory._moved``)."""

from mke_theory._moved import alias

alias(__name__)
