"""Modules that moved when the packages were cut by layer (issue "One house plan"), old name -> new name.

Each old name is a two-line module that makes ``import mke_theory.stats`` (and pickles and scripts naming the
old path) load the new module under the old name too, with a ``DeprecationWarning``. They go in the release
after next; new code imports the new names (``tests/test_structure.py`` keeps the project's own code off them).
"""

from __future__ import annotations

import importlib
import sys
import warnings

MOVED = {
    "mke_theory.errors": "mke_theory.core.errors",
    "mke_theory._validation": "mke_theory.core.checks",
    "mke_theory.split": "mke_theory.core.split",
    "mke_theory.methods": "mke_theory.core.methods",
    "mke_theory.npz": "mke_theory.core.bundle",
    "mke_theory.records": "mke_theory.core.records",
    "mke_theory.stats": "mke_theory.results.stats",
    "mke_theory.tables": "mke_theory.results.tables",
    "mke_theory.plots": "mke_theory.results.plots",
    "mke_theory.palette": "mke_theory.results.palette",
    "mke_theory.reference": "mke_theory.results.reference",
    "mke_theory.ensemble": "mke_theory.toy.ensemble",
    "mke_theory.twomoon": "mke_theory.toy.twomoon",
    "mke_theory.simulate": "mke_theory.toy.simulate",
    "mke_theory.threads": "mke_theory.console",
    "mke_theory.rows": "mke_experiments.data.rows",  # a row reader of prepared caches: experiments' data layer
    "mke_experiments.loader": "mke_experiments.train.loader",
    "mke_experiments.predictor": "mke_experiments.protocol.predictor",
    "mke_experiments.pipeline": "mke_experiments.protocol",
}


def alias(old: str) -> None:
    """Make the module being imported as ``old`` the module it moved to, and say so once."""
    new = MOVED[old]
    warnings.warn(f"{old} moved to {new}; import it from there (the old name goes in a later release)",
                  DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
