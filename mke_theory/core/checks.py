"""Argument checks shared by every public function: one clear ``ValueError`` naming the
parameter and its allowed range, and the one way randomness enters (``check_random_state``)."""

from __future__ import annotations

import numbers

import numpy as np

from mke_theory.core.errors import MKEError

RandomState = None | int | np.random.Generator


def check_random_state(random_state: RandomState) -> np.random.Generator:
    """Turn ``None``, an int seed or a ``np.random.Generator`` into a Generator."""
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise MKEError(
        f"random_state must be None, an int or a numpy.random.Generator, got {type(random_state).__name__}"
    )


def check_range(
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
):
    """Return ``value`` if it lies in the interval, else raise ``ValueError`` naming it."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or (not integer and np.isnan(value)):
        raise MKEError(f"{name} must be {'an integer' if integer else 'a real number'}, got {value!r}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "-inf" if low is None else f"{low}"
        right = "inf" if high is None else f"{high}"
        opening = "[" if low_inclusive and low is not None else "("
        closing = "]" if high_inclusive and high is not None else ")"
        interval = f"{opening}{left}, {right}{closing}"
        raise MKEError(f"{name} must lie in {interval}, got {value!r}")
    return value


def check_choice(name: str, value, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    if value not in choices:
        raise MKEError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_labels(name: str, labels, n_classes: int | None = None) -> np.ndarray:
    """A 1-d integer array of class indices in ``[0, n_classes)``."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise MKEError(f"{name} must be 1-d, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise MKEError(f"{name} must hold integer class indices")
        labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise MKEError(f"{name} must hold class indices >= 0, found {labels.min()}")
    if n_classes is not None and labels.size and labels.max() >= n_classes:
        raise MKEError(f"{name} must hold class indices < n_classes={n_classes}, found {labels.max()}")
    return labels.astype(np.int64, copy=False)


def check_features(name: str, x, n_samples: int | None = None) -> np.ndarray:
    """A finite 2-d float array ``(n_samples, n_features)``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise MKEError(f"{name} must be 2-d (n_samples, n_features), got shape {x.shape}")
    if n_samples is not None and x.shape[0] != n_samples:
        raise MKEError(f"{name} has {x.shape[0]} rows but {n_samples} were expected")
    if not np.all(np.isfinite(x)):
        raise MKEError(f"{name} contains NaN or infinite values")
    return x


def check_samples(name: str, x, n_samples: int | None = None) -> np.ndarray:
    """A finite float array ``(n_samples, ...)``: features, images or spectrograms, one row per sample.

    Floating arrays keep their dtype (float32 image stacks stay float32); others become float64. Rows of a
    memory-mapped cache (``mke_experiments.data.rows.LazyRows``) stay lazy: their shape is checked here, their values
    were checked finite when the cache was prepared, and reading them all here would defeat the cache.
    """
    if getattr(x, "lazy_rows", False):
        if x.ndim < 2:
            raise MKEError(f"{name} must have a sample axis and at least one feature axis, got shape {x.shape}")
        if n_samples is not None and len(x) != n_samples:
            raise MKEError(f"{name} has {len(x)} rows but {n_samples} were expected")
        return x
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim < 2:
        raise MKEError(f"{name} must have a sample axis and at least one feature axis, got shape {x.shape}")
    if n_samples is not None and x.shape[0] != n_samples:
        raise MKEError(f"{name} has {x.shape[0]} rows but {n_samples} were expected")
    if not np.all(np.isfinite(x)):
        raise MKEError(f"{name} contains NaN or infinite values")
    return x
