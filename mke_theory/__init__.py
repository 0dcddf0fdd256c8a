"""mke_theory: the maths of Multimodal Knowledge Expansion (Xue et al., ICCV 2021) and the shared core.

Layers, bottom up (``docs/architecture.md``; ``tests/test_structure.py`` enforces them):

* ``core``: torch-free nouns and contracts (errors, checks, ``MultimodalSplit``, the method table, the npz
  bundle format, run records);
* the maths: ``objective`` (Algorithm 1; torch), ``generators``, ``noise``, ``expansion``, ``bounds`` and
  ``diagnose`` (the check), numpy/scipy only;
* ``results``: statistics, tables, plots, palette and the published reference numbers;
* ``toy``: the notebook-exact ensemble engine, TwoMoon and the simulations (torch);
* ``console`` and ``cli``: what the command-line tools share, and ``mke-theory``.

Nothing here reads rows from disk or names an experiment task; that is ``mke_experiments``.
"""

from mke_theory.core.split import MultimodalSplit

__version__ = "0.1.0"
__all__ = ["MultimodalSplit", "__version__"]
