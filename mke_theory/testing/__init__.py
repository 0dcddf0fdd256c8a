"""Test helpers for mke_theory: hypothesis strategies (``mke_theory.testing.strategies``).

hypothesis is a test dependency: importing ``mke_theory`` never imports this package.
"""

from mke_theory.testing.strategies import (
    eta_strategy,
    labels_strategy,
    logits_strategy,
    multimodal_split_strategy,
)

__all__ = ["eta_strategy", "labels_strategy", "logits_strategy", "multimodal_split_strategy"]
