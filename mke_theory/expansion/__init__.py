"""Neighbourhood graphs, (a, c)-expansion estimates, robustness R_B and separation μ on samples.

The expansion framework of self-training (Wei, Shen, Chen, Ma, ICLR 2021, arXiv 2010.03622),
with the transformations 𝒯 taken as small input-space perturbations:

- transformation ball ``B(x) = {x' : ||x' - x|| <= r}``;
- neighbourhood ``N(x) = {x' : B(x) ∩ B(x') != ∅} = {x' : ||x - x'|| <= 2r}``, and
  ``N(V) = ∪_{x ∈ V} N(x)``, which contains ``V``;
- the class-conditional distribution ``P_i`` has **(a, c)-expansion** if every ``V`` with
  ``P_i(V) <= a`` has ``P_i(N(V)) >= min{c · P_i(V), 1}`` (Wei et al. 2021, Sec. 3);
- **robustness** ``R_B(G) = P(∃ x' ∈ B(x) : G(x') != G(x))`` and **separation**
  ``μ = R_B(G*)`` for the ground-truth labelling ``G*`` (Wei et al. 2021, Sec. 3).

On a sample the distributions become empirical: ``P_i`` puts mass ``1 / |C_i|`` on each sample
point of class ``i`` (the set ``C_i``), and ``N`` becomes the neighbourhood graph of the sample
(an edge ``j – k`` iff ``||x_j - x_k|| <= 2r``; every vertex is its own neighbour). The worst
expansion of a graph is hard to compute exactly: ``brute_force_expansion`` enumerates all sets of
tiny classes, ``worst_case_expansion`` searches for bad sets (greedy growth, spectral sweeps,
connected components). Every set the search finds is a witness, so its ``c`` is an **upper
bound** on the true empirical expansion factor; ``1`` is a lower bound, because ``V ⊆ N(V)``.

The modules, by idea (every name below is re-exported here, so ``from mke_theory import expansion as
ex; ex.worst_case_expansion`` and ``from mke_theory.expansion import ...`` work as before):

- ``graph``: ``embed``, ``choose_radius``, ``neighbourhood_graph`` and the shared argument checks;
- ``sets``: ``expansion_ratio``, ``mistake_set_expansion`` (the expansion of given sets);
- ``search``: ``worst_case_expansion`` and ``ExpansionEstimate`` (an upper bound);
- ``certificate``: ``brute_force_expansion``, ``certified_expansion`` (exact, and a lower bound);
- ``robust``: ``robustness``, ``robustness_mc``, ``separation``, ``overlap_separation`` (μ over pairs
  within 2r, the one a guarantee uses) (named so that the module does not
  shadow the function ``robustness``);
- ``profile``: ``radius_profile`` (c bracketed and μ against the ball's radius, for the expansion figure);
- ``known``: ``cycle_graph``, ``circulant_graph``, ``bipartite_graph``, ``clique_with_pendants``,
  ``cocktail_party_graph``, ``expander_graph`` (graphs of known expansion, for tests).

Everything here needs numpy and scipy only.
"""

from __future__ import annotations

from mke_theory.expansion.certificate import BRUTE_FORCE_MAX_VERTICES, brute_force_expansion, certified_expansion
from mke_theory.expansion.certificate import _spectral_certified as _spectral_certified  # used by tests
from mke_theory.expansion.graph import _class_graph as _class_graph  # used by tests
from mke_theory.expansion.graph import _size_limits as _size_limits  # used by tests
from mke_theory.expansion.graph import choose_radius, embed, neighbourhood_graph
from mke_theory.expansion.known import (
    bipartite_graph,
    circulant_graph,
    clique_with_pendants,
    cocktail_party_graph,
    cycle_graph,
    expander_graph,
)
from mke_theory.expansion.profile import radius_profile
from mke_theory.expansion.robust import overlap_separation, robustness, robustness_mc, separation
from mke_theory.expansion.search import ExpansionEstimate, worst_case_expansion
from mke_theory.expansion.sets import expansion_ratio, mistake_set_expansion

__all__ = [
    "BRUTE_FORCE_MAX_VERTICES",
    "ExpansionEstimate",
    "bipartite_graph",
    "brute_force_expansion",
    "certified_expansion",
    "choose_radius",
    "circulant_graph",
    "clique_with_pendants",
    "cocktail_party_graph",
    "cycle_graph",
    "embed",
    "expander_graph",
    "expansion_ratio",
    "mistake_set_expansion",
    "neighbourhood_graph",
    "overlap_separation",
    "radius_profile",
    "robustness",
    "robustness_mc",
    "separation",
    "worst_case_expansion",
]
