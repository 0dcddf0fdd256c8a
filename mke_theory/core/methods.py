"""The methods of Algorithm 1 and its baselines: one frozen row each, the only place they are named.

A row says what a method *is*: which network it trains (UM: α only; MM: α and β), on which
targets (the labels of D_l, the teacher's pseudo labels on D_u, both, or the true labels of D_u),
whether the perturbations T and the regulariser are on, and, where a method uses only some of
the pseudo labels, the rule that picks them. Every driver reads the table: the experiment
pipeline's loop, the TwoMoon and simulation drivers, record validation, the CLI choices, the
order of table rows and the labels of plots. Adding a method is one row here (plus, if it
selects pseudo labels, one small rule function); nothing else is edited.

Torch-free on purpose: ``mke-exp list``, record validation and figures import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mke_theory.core.errors import MKEError

MODALITIES = ("um", "mm")  # um: the teacher's modality α alone; mm: α and β
TARGETS = ("labels", "pseudo", "labels+pseudo", "true")
DRIVERS = ("experiments", "twomoon", "simulate")  # who trains a method (mke-exp run, mke-theory twomoon/simulate)
# The forms of the student objective (``mke_theory.objective.student_loss``): "perturbed_ce", the official
# TwoMoon code's L_pl(f_s(T(x))); "consistency", Eq. (3)'s L_pl(f_s(x)) + γ·L_reg. Named once, here.
LOSS_FORMS = ("perturbed_ce", "consistency")
# The regularisers of the notebook's TwoMoon ablation, in the order its rows go (their settings:
# ``mke_theory.toy.ensemble.REGULARIZERS``, which imports torch). Named once, here.
REGULARIZERS = ("none", "input_noise", "feature_noise", "dropout", "all")


def confident_pseudo_labels(confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Which pseudo labels to learn from: the teacher's top-class probability ≥ ``threshold``.

    ``confidence`` is max_k softmax(f_t(x^α))_k per sample ``(n,)`` or per pixel ``(n, H, W)``;
    the result is a boolean mask of its shape. Unselected targets add nothing to L_pl, while the
    consistency term L_reg still sees every sample (pseudo-label thresholding as in FixMatch).
    """
    if not 0.0 <= threshold <= 1.0:
        raise MKEError(f"the confidence threshold must lie in [0, 1], got {threshold!r}")
    return np.asarray(confidence) >= threshold


@dataclass(frozen=True)
class Method:
    """One method of the MKE protocol.

    name : the record's ``method`` field and the CLI's name.
    label : how tables and plots call it.
    modality : ``"um"`` trains a network on α alone, ``"mm"`` on α and β.
    targets : ``"labels"`` (D_l with labels; the teacher), ``"pseudo"`` (the teacher's pseudo
        labels on D_u), ``"labels+pseudo"`` (D_l with labels ∪ D_u with pseudo labels) or
        ``"true"`` (the true labels of D_u: an upper bound that needs them).
    regularised : the perturbations T and the consistency term of Eq. (3) are on.
    select : ``select(confidence, threshold) -> mask`` keeps only some pseudo labels, or None.
    drivers : which drivers train it (``DRIVERS``).
    default : trained by ``mke-exp run`` unless ``--methods`` says otherwise.
    """

    name: str
    label: str
    modality: str
    targets: str
    regularised: bool
    description: str
    select: Callable[[np.ndarray, float], np.ndarray] | None = None
    drivers: tuple[str, ...] = ("experiments",)
    default: bool = True

    def __post_init__(self):
        if self.modality not in MODALITIES or self.targets not in TARGETS:
            raise MKEError(f"method {self.name}: modality must be one of {MODALITIES} and targets one of {TARGETS}")
        unknown = set(self.drivers) - set(DRIVERS)
        if unknown:
            raise MKEError(f"method {self.name}: unknown driver(s) {', '.join(sorted(unknown))}")

    @property
    def multimodal(self) -> bool:
        return self.modality == "mm"

    @property
    def is_teacher(self) -> bool:
        return self.targets == "labels"


# Table order: the order of rows in every results table.
TABLE: tuple[Method, ...] = (
    Method("teacher", "UM teacher", "um", "labels", False, "α of D_l with its labels (Eq. 1)", drivers=DRIVERS),
    Method("um_student", "UM student", "um", "pseudo", True,
           "α of D_u with pseudo labels, regularised (perturbations T)", drivers=DRIVERS),
    Method("um_student_noreg", "UM student (no reg.)", "um", "pseudo", False,
           "α of D_u with pseudo labels, no perturbation", drivers=("simulate", "twomoon"), default=False),
    Method("noisy_student", "NOISY student", "um", "labels+pseudo", True,
           "α of D_l ∪ D_u, labels on D_l and pseudo labels on D_u, regularised"),
    Method("mm_student_noreg", "MM student (no reg.)", "mm", "pseudo", False,
           "α + β of D_u with pseudo labels, no perturbation, plain cross entropy",
           drivers=("experiments", "simulate")),
    Method("mm_student", "MM student (MKE)", "mm", "pseudo", True,
           "α + β of D_u with pseudo labels, L_pl + γ·L_reg (MKE, Eq. 3)", drivers=DRIVERS),
    Method("mm_student_confident", "MM student (MKE, confident pseudo labels)", "mm", "pseudo", True,
           "the MKE student with L_pl only on pseudo labels of teacher confidence ≥ mke.confidence_threshold",
           select=confident_pseudo_labels, default=False),
    Method("mm_supervised", "MM supervised (upper bound)", "mm", "true", True,
           "α + β of D_u with the true labels: the upper bound (needs them)", drivers=("experiments", "twomoon")),
)

METHODS: dict[str, Method] = {m.name: m for m in TABLE}
NAMES: tuple[str, ...] = tuple(METHODS)
LABELS: dict[str, str] = {m.name: m.label for m in TABLE}


def get_method(name: str) -> Method:
    """The row of ``name``; an unknown name is an ``MKEError`` listing the known ones."""
    if name not in METHODS:
        raise MKEError(f"unknown method {name!r}; known: {', '.join(NAMES)}")
    return METHODS[name]


def methods_of(driver: str, default_only: bool = False) -> tuple[str, ...]:
    """Names of the methods ``driver`` trains, in table order (only its defaults if asked)."""
    if driver not in DRIVERS:
        raise MKEError(f"unknown driver {driver!r}; known: {', '.join(DRIVERS)}")
    return tuple(m.name for m in TABLE if driver in m.drivers and (m.default or not default_only))


def table_order(name: str) -> int:
    """Position of a method in tables (unknown names last)."""
    return NAMES.index(name) if name in METHODS else len(NAMES)
