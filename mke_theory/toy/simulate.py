"""Teacher-noise simulations: replace the trained teacher by a pseudo-labeller of error η.

For every η, pseudo labels of D_u come from a noise model (``mke_theory.noise``); UM and MM
students with and without regularisation are trained over seeds (all at once, one
``MLPEnsemble`` per architecture) and compared on the test set and on D_u, where each student
*corrects* wrong pseudo labels (predicts the true class where ỹ was wrong) or *corrupts* right
ones.  The label-correction claim of MKE is that the MM student corrects far more than it
corrupts while the UM student cannot.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from mke_theory.core.checks import check_choice, check_range
from mke_theory.core.errors import MKEError
from mke_theory.core.methods import REGULARIZERS as REGULARIZER_NAMES
from mke_theory.core.methods import get_method, methods_of
from mke_theory.diagnose import check
from mke_theory.generators import GENERATORS, make_split
from mke_theory.noise import NOISE_MODELS, make_pseudo_labels
from mke_theory.toy.ensemble import REGULARIZERS, MLPEnsemble

TASK = "simulate"
# the students of a sweep: rows of the method table (UM and MM, with and without T)
STUDENTS = tuple(m for m in map(get_method, methods_of("simulate")) if not m.is_teacher)


@dataclass(frozen=True)
class SimulateConfig:
    """A noise sweep; student defaults follow the official TwoMoon protocol."""

    generator: str = "gaussian"
    noise: tuple[float, ...] = (0.3,)
    noise_model: str = "symmetric"
    n_seeds: int = 5
    data_seed: int = 0  # the generator's random_state; pseudo-labeller seeds derive from it
    regularizer: str = "input_noise"
    um_hidden: int = 32
    mm_hidden: int = 16
    steps: int = 2000
    lr: float = 0.01
    optimizer: str = "sgd"

    def __post_init__(self):
        check_choice("generator", self.generator, tuple(GENERATORS))
        check_choice("noise_model", self.noise_model, tuple(NOISE_MODELS))
        if len(self.noise) == 0:
            raise MKEError("noise must hold at least one rate η")
        for eta in self.noise:
            check_range("noise", eta, 0.0, 1.0)
        if len(set(self.noise)) != len(self.noise):  # rows, records and pseudo labels are keyed by η
            raise MKEError(f"noise must not repeat a rate, got {', '.join(f'{e:g}' for e in self.noise)}")
        check_range("n_seeds", self.n_seeds, 1, None, integer=True)
        check_range("data_seed", self.data_seed, 0, None, integer=True)
        check_choice("regularizer", self.regularizer, REGULARIZER_NAMES[1:])
        for name in ("um_hidden", "mm_hidden", "steps"):
            check_range(name, getattr(self, name), 1, None, integer=True)
        check_range("lr", self.lr, 0.0, None, low_inclusive=False)
        check_choice("optimizer", self.optimizer, ("sgd", "adam"))


def _labeller_rng(data_seed: int, eta: float) -> np.random.Generator:
    # keyed by the rate itself, so η = 0.3 gets the same pseudo labels in every sweep that holds it
    return np.random.default_rng([data_seed, int(round(eta * 1_000_000))])


def simulate(config: SimulateConfig | None = None, progress=None) -> list[dict]:
    """Run the sweep; returns one row per (η, method, seed) in the run-record layout.

    Metrics: ``test_accuracy``, ``test_error``, ``pseudo_label_error`` (the labeller's error on
    D_u), ``unlabeled_accuracy``, ``corrected`` and ``corrupted`` (counts on D_u).  Rows of
    method ``teacher`` describe the pseudo-labeller itself (its error on D_u; no test score).
    """
    cfg = config or SimulateConfig()
    split = make_split(cfg.generator, random_state=cfg.data_seed)
    y_u = split.unlabeled_labels
    seeds = list(range(cfg.n_seeds))
    pseudo = {eta: make_pseudo_labels(cfg.noise_model, y_u, eta, alpha=split.unlabeled_alpha,
                                      n_classes=split.n_classes, random_state=_labeller_rng(cfg.data_seed, eta))
              for eta in cfg.noise}
    # per-run config: the sweep's other rates and its seed count do not change this run
    base = {k: v for k, v in asdict(cfg).items() if k not in ("noise", "n_seeds")}
    base["split_id"] = split.split_id
    rows: list[dict] = []
    for eta, pl in pseudo.items():
        err = float((pl != y_u).mean())
        t0 = time.perf_counter()
        on_test = make_pseudo_labels(cfg.noise_model, split.test_labels, eta, alpha=split.test_alpha,
                                     n_classes=split.n_classes, random_state=_labeller_rng(cfg.data_seed + 1, eta))
        metrics = dict(pseudo_label_error=err, unlabeled_accuracy=1 - err, **theory_metrics(split, pl, on_test))
        rows.append(dict(task=TASK, method="teacher", variant=f"eta={eta:g}", seed=0, config=dict(base, eta=eta),
                         wall_time_s=time.perf_counter() - t0, metrics=metrics))
    for modality, hidden, x_u, x_test in (("um", cfg.um_hidden, split.unlabeled_alpha, split.test_alpha),
                                          ("mm", cfg.mm_hidden, split.unlabeled_multimodal, split.test_multimodal)):
        members = [(eta, m.name, m.regularised, s) for eta in cfg.noise for m in STUDENTS if m.modality == modality
                   for s in seeds]
        t0 = time.perf_counter()
        model = MLPEnsemble(hidden, cfg.steps, cfg.lr, optimizer=cfg.optimizer).fit(
            x_u, np.stack([pseudo[eta] for eta, *_ in members]), seeds=[s for *_, s in members],
            regularizers=[REGULARIZERS[cfg.regularizer if reg else "none"] for _, _, reg, _ in members],
            progress=progress)
        wall = (time.perf_counter() - t0) / len(members)
        test_acc = model.score(x_test, split.test_labels)
        pred_u = model.predict(x_u)  # (S, n_unlabeled)
        for i, (eta, method, reg, seed) in enumerate(members):
            wrong = pseudo[eta] != y_u
            right_now = pred_u[i] == y_u
            rows.append(dict(
                task=TASK, method=method, variant=f"eta={eta:g}", seed=seed, wall_time_s=wall,
                config=dict(base, eta=eta, regularizer=cfg.regularizer if reg else "none"), ensemble_size=len(members),
                metrics=dict(test_accuracy=float(test_acc[i]), test_error=float(1 - test_acc[i]),
                             pseudo_label_error=float(wrong.mean()), unlabeled_accuracy=float(right_now.mean()),
                             corrected=int((wrong & right_now).sum()), corrupted=int((~wrong & ~right_now).sum()))))
    return rows


def theory_metrics(split, pseudo_labels, teacher_test) -> dict:
    """``diagnose.check`` of D_u's pseudo labels, with the test set as the labeled validation data and
    ``teacher_test`` the labeller's classes on it (D_u's true labels unused, as in a real check).

    Keys ``um_c`` (certified lower bound), ``um_c_search`` (the search's upper bound), ``um_mu``,
    ``um_bound``, ``um_condition`` (1.0 if label correction is guaranteed), ``um_radius`` and the same
    with ``mm_``, plus ``predicted_gain``; a value the check leaves undefined is left out.
    """
    report = check(split.unlabeled_alpha, split.unlabeled_beta, pseudo_labels, split.test_alpha, split.test_beta,
                   split.test_labels, teacher_test)
    out = dict(predicted_gain=report["predicted_gain"]["estimate"])
    for space in ("um", "mm"):
        r = report[space]
        out.update({f"{space}_c": r["c"], f"{space}_c_search": r["c_upper"], f"{space}_mu": r["mu"],
                    f"{space}_bound": r["bound"], f"{space}_condition": float(r["condition_holds"]),
                    f"{space}_radius": r["radius"]})
    return {k: float(v) for k, v in out.items() if v is not None}


def total_steps(config: SimulateConfig) -> int:
    return 2 * config.steps
