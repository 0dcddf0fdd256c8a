"""mke_theory: the maths of Multimodal Knowledge Expansion (Xue et al., ICCV 2021).

Generators with known answers, teacher-noise models, the MKE objective, batched ensembles of
small students, and the run records every command writes. Only ``objective``, ``ensemble`` and
the simulations import torch; the rest needs numpy, scipy and pandas.
"""

from mke_theory.core.split import MultimodalSplit

__version__ = "0.1.0"
__all__ = ["MultimodalSplit", "__version__"]
