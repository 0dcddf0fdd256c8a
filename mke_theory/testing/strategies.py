"""Hypothesis strategies for labels, error rates, logits and small ``MultimodalSplit``s.

Each strategy validates its own bounds eagerly and draws only valid values; they are tested in
``tests/test_strategies.py``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mke_theory.core.checks import check_range
from mke_theory.core.errors import MKEError

__all__ = ["eta_strategy", "labels_strategy", "logits_strategy", "multimodal_split_strategy"]

_SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def labels_strategy(
    min_classes: int = 2,
    max_classes: int = 5,
    min_size: int = 1,
    max_size: int = 200,
) -> st.SearchStrategy[tuple[np.ndarray, int]]:
    """``(labels, n_classes)``: a (n,) int64 array with entries in ``[0, n_classes)``.

    ``n_classes`` lies in ``[min_classes, max_classes]`` and ``n`` in ``[min_size, max_size]``;
    not every class need occur in ``labels``.
    """
    check_range("min_classes", min_classes, 2, None, integer=True)
    check_range("max_classes", max_classes, min_classes, None, integer=True)
    check_range("min_size", min_size, 0, None, integer=True)
    check_range("max_size", max_size, min_size, None, integer=True)

    @st.composite
    def draw_labels(draw):
        n_classes = draw(st.integers(min_classes, max_classes))
        size = draw(st.integers(min_size, max_size))
        labels = draw(hnp.arrays(np.int64, size, elements=st.integers(0, n_classes - 1)))
        return labels, n_classes

    return draw_labels()


def eta_strategy(min_value: float = 0.0, max_value: float = 1.0) -> st.SearchStrategy[float]:
    """Error rates η: finite floats in ``[min_value, max_value]`` within [0, 1], endpoints included."""
    check_range("min_value", min_value, 0, 1)
    check_range("max_value", max_value, min_value, 1)
    return st.floats(min_value=min_value, max_value=max_value, allow_nan=False, allow_infinity=False)


def logits_strategy(
    min_samples: int = 1,
    max_samples: int = 32,
    min_classes: int = 2,
    max_classes: int = 10,
    bound: float = 20.0,
) -> st.SearchStrategy[np.ndarray]:
    """(n_samples, n_classes) float64 arrays of finite logits in ``[-bound, bound]``."""
    check_range("min_samples", min_samples, 1, None, integer=True)
    check_range("max_samples", max_samples, min_samples, None, integer=True)
    check_range("min_classes", min_classes, 1, None, integer=True)
    check_range("max_classes", max_classes, min_classes, None, integer=True)
    check_range("bound", bound, 0, 1e6, low_inclusive=False)
    shapes = st.tuples(st.integers(min_samples, max_samples), st.integers(min_classes, max_classes))
    elements = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=64)
    return hnp.arrays(np.float64, shapes, elements=elements)


def multimodal_split_strategy(names=None):
    """Small ``MultimodalSplit``s from the generators of ``GENERATORS`` with drawn parameters and seed.

    Parameters
    ----------
    names : generator names to draw from; all of ``GENERATORS`` by default.
    """
    from mke_theory.generators import GENERATORS, make_split

    names = tuple(GENERATORS) if names is None else tuple(names)
    for name in names:
        if name not in GENERATORS:
            raise MKEError(f"names must hold generator names from {', '.join(map(repr, GENERATORS))}; got {name!r}")

    @st.composite
    def draw_split(draw):
        name = draw(st.sampled_from(names))
        seed = draw(_SEEDS)
        kwargs = {}
        if name == "twomoon":
            kwargs = {"n_samples": draw(st.integers(50, 300)), "noise": draw(st.floats(0.0, 0.3))}
        elif name in ("gaussian", "shared-specific"):
            n_classes = draw(st.integers(2, 4))
            kwargs = {
                "n_classes": n_classes,
                "n_labeled": draw(st.integers(n_classes, 20)),
                "n_unlabeled": draw(st.integers(1, 60)),
                "n_test": draw(st.integers(1, 40)),
            }
        if name == "gaussian":
            kwargs.update(
                alpha_dim=draw(st.integers(1, 4)),
                beta_dim=draw(st.integers(1, 4)),
                alpha_separation=draw(st.floats(0.0, 5.0)),
                beta_separation=draw(st.floats(0.0, 5.0)),
                beta_informative=draw(st.booleans()),
            )
        elif name == "shared-specific":
            kwargs.update(
                n_shared=draw(st.integers(1, 3)),
                n_alpha_specific=draw(st.integers(1, 3)),
                n_beta_specific=draw(st.integers(1, 3)),
                alpha_noise_dim=draw(st.integers(0, 2)),
                beta_noise_dim=draw(st.integers(0, 2)),
            )
        # Any other registered generator is drawn with its defaults and a drawn seed.
        return make_split(name, random_state=seed, **kwargs)

    return draw_split()
