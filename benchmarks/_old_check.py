"""The former ``mke-theory check`` (``check`` and ``verdict`` of mke_theory/diagnose.py at git commit 9533c90),
kept verbatim as the baseline of benchmarks/bench_check.py. It needs the true labels of D_u.
"""

from __future__ import annotations

import numpy as np

from mke_theory import expansion as ex
from mke_theory.bounds import label_correction
from mke_theory.core.checks import check_features, check_labels, check_range
from mke_theory.core.errors import MKEError

SPACES = {"um": "UM space (α)", "mm": "MM space (α, β)"}


def radius_rule(k: int, quantile: float) -> str:
    """How ``choose_radius`` picked r, in words (the check reports it beside the numbers)."""
    return (f"r = the {quantile:g} quantile of the distance to the k-th nearest neighbour (k = {k}), chosen in each "
            f"space separately, so that a ball B(x) holds at least {k} samples for {100 * quantile:g} % of them")


def _unit_scale(x: np.ndarray) -> np.ndarray:
    scale = np.max(np.abs(x), axis=0) if len(x) else np.ones(x.shape[1])
    return x / np.where(scale > 0, scale, 1.0)


def _space(points, labels, pseudo_labels, radius, a, random_state) -> dict:
    graph = ex.neighbourhood_graph(points, radius)
    out = dict(radius=radius, mean_neighbours=float(graph.sum() / len(points) - 1))
    if labels is None:  # without true labels only the pseudo-labeller's own consistency can be measured
        out.update(c=None, c_search=None, mu=None, pseudo_label_error=None, bound=None, condition_holds=None,
                   robustness_of_pseudo_labels=ex.robustness(pseudo_labels, points, radius),
                   reason="true labels unknown: c, μ and the bound need them")
        return out
    mistakes = ex.mistake_set_expansion(graph, labels, pseudo_labels)
    search = ex.worst_case_expansion(graph, labels, a=a, method="spectral", random_state=random_state)
    mu = ex.separation(labels, points, radius)
    err = float(np.mean(pseudo_labels != labels))
    c = float(mistakes["c"])
    correction = label_correction(err, mu, c)  # NaN c (no mistakes) is reported as outside the domain
    bound = correction.bound
    out.update(
        c=None if np.isnan(c) else c, c_search=float(search.c), mu=float(mu), pseudo_label_error=err,
        bound=float(bound.value) if bool(bound.in_domain) else None, bound_vacuous=bool(bound.vacuous),
        condition_holds=bool(correction.holds),
        improvement=float(correction.improvement) if bool(bound.in_domain) else None,
        robustness_of_pseudo_labels=ex.robustness(pseudo_labels, points, radius),
        reason=str(bound.reason) or ("bound ≥ 1 says nothing" if bool(bound.vacuous) else ""),
        summary=correction.describe(),
    )
    return out


def check(alpha, beta, pseudo_labels, labels=None, k: int = 10, quantile: float = 0.5, radius=None,
          a: float = 0.5, random_state=0) -> dict:
    """Run the diagnostic on paired samples of D_u.

    Parameters
    ----------
    alpha : (n_samples, d_alpha) modality α.
    beta : (n_samples, d_beta) modality β of the same samples.
    pseudo_labels : (n_samples,) the teacher's pseudo labels.
    labels : (n_samples,) true labels, or None when unknown (then only robustness is reported).
    k, quantile : the radius rule of ``expansion.choose_radius`` (see ``radius_rule``).
    radius : a fixed radius for both spaces instead of the rule (distances after ``expansion.embed``).
    a : the largest class share of a set in the worst-case expansion search.

    Returns
    -------
    dict with ``um`` and ``mm`` (each: c, c_search, mu, pseudo_label_error, bound,
    condition_holds, radius, ...), ``n_samples``, ``n_classes``, ``radius_rule`` and ``verdict``.
    c is the expansion of the mistake sets (used in the bound); c_search the smallest ratio a
    spectral search found over sets of share ≤ a (an upper bound on the worst-case c).
    """
    alpha = check_features("alpha", alpha)
    n = len(alpha)
    beta = check_features("beta", beta)
    if n < 2:
        raise MKEError(f"alpha has {n} row(s); the check needs at least k + 1 paired samples of D_u (one per row)")
    if len(beta) != n:
        raise MKEError(f"alpha has {n} rows but beta has {len(beta)}; they must hold the same samples")
    # divide each feature by its largest |value|: embed() z-scores, which this does not change, but
    # features of 1e200 would overflow its variance and collapse every point onto one
    alpha, beta = _unit_scale(alpha), _unit_scale(beta)
    pseudo_labels = check_labels("pseudo_labels", pseudo_labels)
    if len(pseudo_labels) != n:
        raise MKEError(f"pseudo_labels has {len(pseudo_labels)} entries but alpha has {n} rows")
    if labels is not None:
        labels = check_labels("labels", labels)
        if len(labels) != n:
            raise MKEError(f"labels has {len(labels)} entries but alpha has {n} rows")
        if len(np.unique(labels)) < 2:
            raise MKEError("labels hold a single class; expansion and separation need at least two")
    elif len(np.unique(pseudo_labels)) < 2:
        raise MKEError("pseudo_labels hold a single class; the check needs at least two")
    check_range("k", k, 1, n - 1, integer=True)
    if radius is not None:
        check_range("radius", radius, 0.0, None, low_inclusive=False)
    points = {"um": ex.embed(alpha), "mm": ex.embed(alpha, beta)}
    result = dict(n_samples=n, n_classes=int(max(pseudo_labels.max(), -1 if labels is None else labels.max()) + 1),
                  radius_rule=radius_rule(k, quantile) if radius is None else f"r = {radius:g} fixed by the user")
    for name, pts in points.items():
        r = radius if radius is not None else ex.choose_radius(pts, k=k, quantile=quantile, random_state=random_state)
        result[name] = _space(pts, labels, pseudo_labels, r, a, random_state)
    result["verdict"] = verdict(result["um"], result["mm"])
    return result


def verdict(um: dict, mm: dict, tolerance: float = 0.15) -> str:
    """One sentence: does the theory expect the extra modality to help?

    Differences smaller than ``tolerance`` (relative) are not taken as a sign either way, and a
    vacuous bound (≥ 1) is never compared.
    """
    if um.get("mu") is None:
        return "Without true labels the bound cannot be computed; compare the pseudo labels' robustness instead."
    if mm["condition_holds"] and not um["condition_holds"]:
        return "The bound guarantees label correction in the MM space but not in the UM space: β is expected to help."
    if mm["condition_holds"]:
        return "The bound guarantees label correction in both spaces."
    usable = mm["bound"] is not None and not mm["bound_vacuous"]
    if usable and (um["bound"] is None or um["bound_vacuous"] or mm["bound"] < (1 - tolerance) * um["bound"]):
        return ("No guarantee, but the MM bound is clearly smaller than the UM bound: "
                "β looks helpful, without proof.")
    if mm["mu"] < (1 - tolerance) * um["mu"]:
        return (f"No usable bound; β lowers the separation μ from {um['mu']:.3g} to {mm['mu']:.3g}, "
                "the direction MKE needs.")
    return "No sign that β helps: the MM space does not separate the classes better than α alone."
