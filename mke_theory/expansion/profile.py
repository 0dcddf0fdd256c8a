"""The theory's numbers against the ball's radius: the expansion c bracketed by a certified lower bound and a
search's upper bound, and the separation μ over pairs within 2r, at each of several radii. What the expansion
figure of ``make figures`` draws (``paper_figures/expansion_figure.py``); numpy and scipy only.
"""

from __future__ import annotations

import numpy as np

from mke_theory.core.checks import check_labels
from mke_theory.expansion.certificate import certified_expansion
from mke_theory.expansion.graph import _check_points, _check_radius, neighbourhood_graph
from mke_theory.expansion.robust import overlap_separation
from mke_theory.expansion.search import worst_case_expansion


def radius_profile(points, labels, radii, a: float, random_state=0) -> dict:
    """c (certified lower and searched upper bound over sets of class mass ≤ ``a``) and μ at each radius.

    The same three numbers as ``mke-theory check``'s theory block (``mke_theory.diagnose``), the search the
    spectral one (the check's sensitivity rows use it too). Small radii leave every ball alone (c = 1: no set
    reaches beyond itself); large ones join each class into one clique (c = +inf) and every sample to the other
    class (μ = 1): the figure shows where between the two each space lies.

    Parameters
    ----------
    points : (n, d) finite features.
    labels : (n,) int true classes.
    radii : the balls' radii r > 0, in any order.
    a : the largest class mass of a set, in (0, 1] (the check's ā).
    random_state : the search's seed.

    Returns
    -------
    dict of float arrays, one entry per radius: ``radius``, ``c_lower``, ``c_upper`` (+inf where every admissible
    set reaches its whole class) and ``mu``.
    """
    points = _check_points(points)
    labels = check_labels("labels", labels)
    rows = []
    for r in radii:
        graph = neighbourhood_graph(points, _check_radius(r))
        upper = worst_case_expansion(graph, labels, a=a, method="spectral", random_state=random_state).c
        lower = certified_expansion(graph, labels, a=a)
        rows.append((float(r), float(lower), float(upper), overlap_separation(labels, points, r)))
    radius, c_lower, c_upper, mu = (np.array(col, dtype=np.float64) for col in zip(*rows))
    return dict(radius=radius, c_lower=c_lower, c_upper=c_upper, mu=mu)


SCALES = tuple(float(s) for s in 2.0 ** np.arange(-2.0, 3.01, 0.5))  # r / r_T from 1/4 to 8, the figure's x-axis


def space_profiles(spaces: dict, labels, a: float, scales=SCALES, random_state=0) -> dict:
    """``radius_profile`` of several spaces at radii ``scales`` × each space's own r_T.

    ``spaces`` maps a name to ``(points (n, d), r_T)``: e.g. the check's ``um`` and ``mm`` spaces (the validation
    data z-scored with D_u's statistics) and the radius of the student's perturbation in each
    (``mke_theory.diagnose.t_radius``); ``labels`` (n,) the validation labels, ``a`` the check's ā. Returns
    ``{name: radius_profile(...) plus scale}``.
    """
    scales = np.asarray(scales, dtype=np.float64)
    return {name: dict(radius_profile(points, labels, scales * r_t, a, random_state), scale=scales)
            for name, (points, r_t) in spaces.items()}
