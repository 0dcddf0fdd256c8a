"""The expansion of given sets: ``|N(V) ∩ C_i| / |V|`` for one set, and for the pseudo-labeller's
mistake sets ``V_i = {x ∈ C_i : pseudo(x) != i}`` (Wei et al. 2021, Thm 4.3). numpy and scipy only."""

from __future__ import annotations

import numpy as np

from mke_theory.core.checks import check_labels, check_range
from mke_theory.core.errors import MKEError
from mke_theory.expansion.graph import _certified_ratio, _check_graph, _check_same_length


def expansion_ratio(graph, labels, subset, cls: int) -> float:
    """Empirical ``P_i(N(V)) / P_i(V) = |N(V) ∩ C_i| / |V|`` for a set V of class ``cls``.

    Parameters
    ----------
    graph : (n, n) adjacency (sparse or dense); the diagonal is taken as set.
    labels : (n,) int class indices; ``C_i = {j : labels[j] = cls}``.
    subset : (n,) bool mask or an int index array of V; nonempty, all of class ``cls``.
    cls : the class i.

    Returns
    -------
    float ratio, at least 1 (the plain ratio: ``+inf`` is never returned, see ``worst_case_expansion``).
    """
    labels = check_labels("labels", labels)
    graph = _check_graph(graph, labels.shape[0])
    check_range("cls", cls, 0, None, integer=True)
    n = labels.shape[0]
    subset = np.asarray(subset)
    if subset.dtype == bool:
        _check_same_length("subset", subset.shape[0], "labels", n)
        index = np.flatnonzero(subset)
    else:
        if subset.ndim != 1 or (subset.size and not np.issubdtype(subset.dtype, np.integer)):
            raise MKEError("subset must be a (n,) bool mask or a 1-d array of integer sample indices")
        index = np.unique(subset).astype(np.int64)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise MKEError(f"subset must hold sample indices in [0, {n}), got {index.min()} .. {index.max()}")
    if index.size == 0:
        raise MKEError("subset must hold at least one sample")
    if np.any(labels[index] != cls):
        raise MKEError(f"subset must hold samples of class cls={cls} only")
    covered = np.asarray(graph[index].sum(axis=0)).ravel() > 0  # (n,) N(V)
    return float(np.count_nonzero(covered & (labels == cls)) / index.size)


def mistake_set_expansion(graph, labels, pseudo_labels) -> dict:
    """Expansion of the pseudo-labeller's mistake sets ``V_i = {x ∈ C_i : pseudo(x) != i}``.

    These are the sets to which Wei et al. (2021, Thm 4.3) apply the expansion assumption.

    Parameters
    ----------
    graph : (n, n) adjacency (sparse or dense); the diagonal is taken as set.
    labels : (n,) int true class indices; at least two classes must occur.
    pseudo_labels : (n,) int pseudo labels.

    Returns
    -------
    dict with, for K = 1 + the largest class index in ``labels`` or ``pseudo_labels``:

    - ``"ratio"``: (K,) ``|N(V_i) ∩ C_i| / |V_i|``, nan where ``V_i`` is empty;
    - ``"certified"``: (K,) the same, but ``+inf`` where ``N(V_i)`` covers ``C_i`` (the largest c
      the set satisfies ``P_i(N(V)) >= min{c P_i(V), 1}`` with);
    - ``"mass"``: (K,) ``P_i(V_i) = |V_i| / |C_i|``, nan where ``C_i`` is empty;
    - ``"size"``: (K,) int ``|V_i|``;
    - ``"c"``: float, the smallest ``"ratio"`` over classes with nonempty ``V_i`` (``+inf`` if
      the pseudo labels make no mistake).
    """
    labels = check_labels("labels", labels)
    pseudo_labels = check_labels("pseudo_labels", pseudo_labels)
    _check_same_length("pseudo_labels", pseudo_labels.shape[0], "labels", labels.shape[0])
    graph = _check_graph(graph, labels.shape[0])
    if np.unique(labels).size < 2:
        raise MKEError("labels must hold at least two classes for mistake_set_expansion")
    n_classes = int(max(labels.max(), pseudo_labels.max())) + 1
    mistakes = labels != pseudo_labels  # (n,)
    ratio = np.full(n_classes, np.nan)
    certified = np.full(n_classes, np.nan)
    mass = np.full(n_classes, np.nan)
    size = np.zeros(n_classes, dtype=np.int64)
    for i in range(n_classes):
        members = labels == i
        n_i = int(np.count_nonzero(members))
        if n_i == 0:
            continue
        mistake_set = np.flatnonzero(members & mistakes)
        size[i] = mistake_set.size
        mass[i] = mistake_set.size / n_i
        if mistake_set.size == 0:
            continue
        reached = np.asarray(graph[mistake_set].sum(axis=0)).ravel() > 0  # (n,) N(V_i)
        n_covered = int(np.count_nonzero(reached & members))
        ratio[i] = n_covered / mistake_set.size
        certified[i] = _certified_ratio(n_covered, mistake_set.size, n_i)
    c = float(np.nanmin(ratio)) if np.any(size > 0) else float("inf")
    return {"ratio": ratio, "certified": certified, "mass": mass, "size": size, "c": c}
