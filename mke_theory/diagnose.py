""""Will the extra modality β help on my data?" — answered before training, without D_u's labels.

Two parts, kept apart because they answer different questions:

1. **The prediction** (the verdict). kNN probes are fitted to the teacher's pseudo labels on D_u and
   scored on labeled validation data: one in the teacher's space α, one in the student's space (α, β) with
   β as the student sees it, one with β's weight cross-fitted. The student-like probe's gain over the α
   probe (what β adds, like for like) plus λ times the cross-fitted probe's gain over the teacher,
   calibrated into points of the MM student's gain over its teacher, with a 95 % interval that adds the
   spread the validation data cannot see. ``helps`` / ``hurts`` / ``unclear`` (= keep the teacher) by a
   threshold. Every constant (``CALIBRATION``) was chosen on the tuning half of the benchmark that ships
   (``benchmarks/bench_check.py``, docs/check_benchmark.md) and is reported on cases never tuned on;
   validated, not proved.
2. **The theory** of Wei et al. (2021, Thm 4.3) in both spaces, estimated on the labeled
   validation data: the (ā, c)-expansion over every set of class mass ≤ ā (ā: the teacher's largest
   per-class error), bracketed by a certified lower bound and a search's upper bound; the
   separation μ (over pairs within 2r: two balls of radius r overlap up to 2r apart); the teacher's error; the
   bound. "Guaranteed" only when the certified c clears the condition, and then only for the theorem's
   minimiser on the validation sample, conditional on the estimated μ, not for the student to be trained.
   The ball B(x) is the student's perturbation T (``t_radius``), the same rule in both
   spaces, and its sensitivity to the radius is reported.

D_u's true labels, when a bundle has them, are never used for either part. numpy and scipy only (the
kNN probe is scikit-learn's, computed in numpy: ``_probe``).
"""

from __future__ import annotations

import time

import numpy as np

from mke_theory import expansion as ex
from mke_theory.bounds import label_correction
from mke_theory.core.bundle import CHECK_KEYS, check_keys, check_probs, encode_labels, feature_array
from mke_theory.core.checks import check_features, check_labels, check_range
from mke_theory.core.errors import MKEError
from mke_theory.core.split import zscore, zscore_stats

SPACES = {"um": "UM space (α)", "mm": "MM space (α, β)"}
VERDICTS = ("helps", "unclear", "hurts")
RADIUS_SCALES = (0.5, 1.0, 2.0)  # the radius's sensitivity: r × these
PROBE_BLOCK = 2**22  # distances per block of the probe (32 MiB of float64)
PROBE_K = 20  # neighbours of the kNN probe (picked among 5, 10, 20, 40 on benchmarks/bench_check.py)
MIN_UNLABELED = 2 * PROBE_K  # rows of D_u the check needs: the probe's neighbours at most half of them
N_PERMUTATIONS = 10  # shuffles of β for the probe that says what β itself adds
BETA_WEIGHTS = (0.0, 0.5, 1.0, 2.0)  # β's weight in the (α, β) probe, chosen by cross-fitting
BROKEN_DEFICIT = 0.25  # the α probe this far below the teacher (whole interval): the pseudo labels do not match
# the teacher's validation score. A sanity alarm, not tuned for regret: on docs/check_benchmark.md the closest case
# reaches −20 (wine, 6 labels, 50 rows of D_u, where the probe votes over 40 % of D_u), every other stays above −4
STUDENT_WEIGHT = 1.0  # β's weight in the student-like probe: as the student sees it, z-scored like α
# The constants of ``calibrated``, chosen on the tuning half of benchmarks/bench_check.py (``tune``; the test
# tests/test_bench_check.py rederives them from benchmarks/check_results.json): λ, the least-squares slope and
# offset of the measured gain on the score, the gap that brings the tuning coverage to 0.95, the threshold tau,
# kappa (unclear within kappa standard errors of tau) and the β guard.
CALIBRATION = dict(lam=0.5, slope=0.2195, offset=0.0075, gap=0.034, tau=0.0, kappa=1.0, beta_guard="off")
THEORY_MAX_SAMPLES = 2000  # validation samples the theory's graphs are built on (a seeded subsample beyond)
Z95 = 1.959963984540054


# ---- spaces and the ball of T -----------------------------------------------------------------------


def _zscore(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """``train`` and ``others`` z-scored with ``train``'s statistics (``split.zscore``, the run's own formula)."""
    stats = zscore_stats(train)
    return [zscore(x, *stats) for x in (train, *others)]


def t_radius(modalities, input_noise: float) -> float:
    """The radius r of the ball of T(x) = x + a·mean|x|·ε (ε standard normal, per modality; the
    perturbation of ``mke_experiments``' vector students and of ``objective.input_noise``):
    r = a · sqrt(Σ_m d_m · mean|x_m|²), the typical length ‖T(x) − x‖. One rule for both spaces: the
    MM ball is the UM ball with β's share added, as the MM student is perturbed."""
    return float(input_noise * np.sqrt(sum(m.shape[1] * np.mean(np.abs(m)) ** 2 for m in modalities)))


# ---- the prediction: probes fitted to the pseudo labels, scored on labeled data ---------------------


def _probe(train: np.ndarray, targets: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Class predictions on ``test`` of the kNN probe fitted to (``train``, ``targets``): the ``PROBE_K``
    nearest neighbours (Euclidean), votes weighted by 1 / distance; neighbours at distance 0, when there are any,
    vote alone; a tie of votes goes to the smallest class (no ties that would depend on class names).

    scikit-learn's ``KNeighborsClassifier(weights="distance", algorithm="brute")``, computed the way it computes it
    (squared distances by one matrix product, the k nearest by partial sort), in numpy: importing sklearn.neighbors
    costs about 0.6 s, a third of a ``mke-theory check`` call (benchmarks/bench_check_speed.py). The two agree
    wherever no two neighbours tie at the k-th distance (tests/theory/test_check_internals.py). The test rows go in
    blocks of at most ``PROBE_BLOCK`` distances, so a large D_u is never held as one matrix of distances."""
    classes, codes = np.unique(targets, return_inverse=True)
    if classes.size == 1:
        return np.full(len(test), classes[0])
    train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    k = min(PROBE_K, len(train))
    train_sq = np.einsum("ij,ij->i", train, train)
    out = np.empty(len(test), dtype=np.int64)
    step = max(1, PROBE_BLOCK // len(train))
    for start in range(0, len(test), step):
        block = test[start:start + step]
        d2 = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * (block @ train.T) + train_sq[None, :]
        near = np.argpartition(d2, k - 1, axis=1)[:, :k]
        dist = np.sqrt(np.maximum(np.take_along_axis(d2, near, axis=1), 0.0))
        exact = dist == 0
        with np.errstate(divide="ignore"):
            weight = np.where(exact.any(axis=1, keepdims=True), exact, 1.0 / dist)
        votes = np.zeros((len(block), classes.size))
        np.add.at(votes, (np.arange(len(block))[:, None], codes[near]), weight)
        out[start:start + step] = votes.argmax(axis=1)
    return classes[out]


def _paired(correct_a: np.ndarray, correct_b: np.ndarray, extra_variance: float = 0.0) -> dict:
    """Mean of a − b over paired outcomes with a normal 95 % interval (accuracy as a fraction), its variance
    the validation sampling's plus ``extra_variance``."""
    d = correct_a.astype(np.float64) - correct_b.astype(np.float64)
    se = np.sqrt(d.var(ddof=1) / len(d) + extra_variance) if len(d) > 1 else np.inf
    mean = float(d.mean())
    return dict(estimate=mean, low=float(mean - Z95 * se), high=float(mean + Z95 * se))


def _crossfit(correct: dict, folds: np.ndarray) -> np.ndarray:
    """Per validation sample, the outcome of the β weight chosen on the *other* fold (2-fold cross-fitting:
    choosing a weight and scoring it on the same labels would favour noise)."""
    out = np.zeros(len(folds))
    for k in (0, 1):
        best = max(correct, key=lambda w: correct[w][folds == k].mean())  # ties: the first, the smaller weight
        out[folds != k] = correct[best][folds != k]
    return out


def predict_gain(u_alpha, u_beta, pseudo_labels, val_alpha, val_beta, val_labels, teacher_val,
                 random_state=0, alpha_probe=None, calibration=None) -> dict:
    """The label-free prediction: probes fitted to D_u's pseudo labels, scored on the labeled validation data.

    Four probes, all kNN (``_probe``) on z-scored features: the α probe; the student-like (α, β) probe, β at the
    weight 1 a student sees it with (it cannot leave β out: noise in β costs it); the cross-fitted (α, β) probe,
    β weighted by w ∈ ``BETA_WEIGHTS`` chosen by 2-fold cross-fitting on the validation data (the best a probe can
    make of β); and the same cross-fitted probe with D_u's β rows shuffled, ``N_PERMUTATIONS`` times (β's marginal
    kept, its link to the sample cut: a built-in negative control, since merely adding dimensions changes what a
    probe smooths over).

    Returns ``predicted_gain`` with the verdict (``calibrated``: the student-like probe's gain over the α probe
    plus λ times the cross-fitted probe's gain over the teacher, calibrated on docs/check_benchmark.md), and the
    raw parts: ``probe_vs_teacher`` (the cross-fitted probe − the teacher: the estimate of earlier versions),
    ``predicted_gain_over_um`` (the cross-fitted probe − the α probe), ``student_like_over_um`` (the student-like
    probe − the α probe), ``beta_contribution`` (the cross-fitted probe − its β-shuffled twin), the accuracies
    and ``teacher_on_val`` ("given", or "α probe" when the teacher's output on the validation data is missing:
    the α probe then stands in for the teacher). ``outcomes`` (per validation sample, 1 = correct) is what the
    benchmark calibrates on."""
    rng = np.random.default_rng(random_state)
    folds = rng.permutation(np.arange(len(val_labels)) % 2)
    if alpha_probe is None:  # the α probe's classes on the validation data, when the caller has not made them
        alpha_probe = _probe(u_alpha, pseudo_labels, val_alpha)
    um = alpha_probe == val_labels

    def per_weight(beta) -> dict:
        # w = 0 is the α probe itself (zero columns add exactly 0 to every distance), for real and shuffled β alike:
        # computed once, not once per call (a quarter of the probes)
        return {w: um if w == 0 else _probe(np.hstack([u_alpha, w * beta]), pseudo_labels,
                                            np.hstack([val_alpha, w * val_beta])) == val_labels for w in BETA_WEIGHTS}

    real = per_weight(u_beta)
    mm, student_like = _crossfit(real, folds), real[STUDENT_WEIGHT]
    draws = np.array([_crossfit(per_weight(u_beta[rng.permutation(len(u_beta))]), folds)
                      for _ in range(N_PERMUTATIONS)])
    shuffled = draws.mean(axis=0)
    teacher = um if teacher_val is None else (teacher_val == val_labels)
    # under "β carries nothing" the real probe is one more shuffle: its accuracy varies like theirs, on top of
    # the validation sampling the paired interval covers
    spread = draws.mean(axis=1).var(ddof=1) * (1 + 1 / N_PERMUTATIONS)
    outcomes = dict(teacher=teacher, um=um, mm=mm, student_like=student_like)
    out = dict(probe_vs_teacher=_paired(mm, teacher), predicted_gain_over_um=_paired(mm, um),
               student_like_over_um=_paired(student_like, um),
               beta_contribution=_paired(mm, shuffled, extra_variance=spread),
               accuracy=dict(teacher=float(teacher.mean()), um_probe=float(um.mean()), mm_probe=float(mm.mean()),
                             student_like_probe=float(student_like.mean()),
                             shuffled_beta_probe=float(shuffled.mean())),
               teacher_on_val="given" if teacher_val is not None else "α probe", probe=f"kNN, k = {PROBE_K}",
               outcomes={k: v.astype(np.int8) for k, v in outcomes.items()})
    out.update(calibrated(outcomes, out["beta_contribution"], calibration))
    if teacher_val is None:
        out["verdict_text"] += (" Without the teacher's output on the validation data (teacher_val_pred), an α probe "
                                "stands in for the teacher: the prediction is about a weaker teacher than yours.")
    return out


def sample_scores(outcomes: dict, lam: float) -> np.ndarray:
    """Per validation sample, s = (student_like − um) + λ·(mm − teacher), from the probes' ``outcomes`` (1 = right):
    the score ``calibrated`` turns into the predicted gain."""
    o = {k: np.asarray(outcomes[k], np.float64) for k in ("student_like", "um", "mm", "teacher")}
    return (o["student_like"] - o["um"]) + lam * (o["mm"] - o["teacher"])


def calibrated(outcomes: dict, beta_contribution: dict, calibration: dict | None = None) -> dict:
    """The prediction and its verdict from the probes' per-sample ``outcomes`` (``teacher``, ``um``, ``mm``,
    ``student_like``: 1 = correct on a validation sample) under the constants ``calibration`` (default
    ``CALIBRATION``).

    Per validation sample s = (student_like − um) + λ·(mm − teacher): what β adds to a probe that cannot ignore
    it, plus λ times how the pseudo labels, smoothed, fare against the teacher. ``predicted_gain`` = slope·mean(s)
    + offset, its 95 % interval ± 1.96·sqrt((slope·se)² + gap²): se the paired standard error over the validation
    samples, gap the spread the validation data cannot see (the student's seed-to-seed spread, the gap between
    probe and student, the teacher's selection on the validation data). ``helps`` (run MKE) when the estimate is
    above tau and, with ``beta_guard`` "estimate", β adds something against β shuffled; ``unclear`` (keep the
    teacher) when it is at or below tau by at most kappa·slope·se, too close for this validation set to rule a gain
    out; ``hurts`` (keep the teacher) below that, and whenever the α probe loses to the teacher by more than
    ``BROKEN_DEFICIT`` with its whole interval (pseudo labels that do not match the teacher's validation score: a
    shift or misaligned rows, which the calibration cannot see). Returns ``predicted_gain``, ``verdict``,
    ``verdict_text``, ``resolution`` (kappa·slope·se)."""
    c = CALIBRATION if calibration is None else calibration
    s = sample_scores(outcomes, c["lam"])
    n = len(s)
    se = float(s.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    est = c["slope"] * float(s.mean()) + c["offset"]
    half = Z95 * float(np.sqrt((c["slope"] * se) ** 2 + c["gap"] ** 2))
    margin = c["kappa"] * c["slope"] * se
    gain = dict(estimate=est, low=est - half, high=est + half)
    span = f"{100 * est:+.1f} points [{100 * (est - half):+.1f}, {100 * (est + half):+.1f}]"
    b = beta_contribution
    b_span = f"{100 * b['estimate']:+.1f} points [{100 * b['low']:+.1f}, {100 * b['high']:+.1f}]"
    guarded = c["beta_guard"] == "estimate" and b["estimate"] <= 0
    out = dict(predicted_gain=gain, resolution=float(margin))
    deficit = _paired(np.asarray(outcomes["um"]), np.asarray(outcomes["teacher"]))
    if deficit["high"] < -BROKEN_DEFICIT:
        return dict(out, verdict="hurts", verdict_text=(
            f"Keep the teacher, and look at the data: the α probe fitted to the pseudo labels of D_u scores "
            f"{100 * deficit['estimate']:+.1f} points [{100 * deficit['low']:+.1f}, {100 * deficit['high']:+.1f}] "
            f"against the teacher on the validation data, more than {100 * BROKEN_DEFICIT:.0f} points worse: the "
            "pseudo labels are far worse than the teacher's validation score says (rows of D_u and pseudo labels "
            "out of line, or D_u drawn from another population than the validation data), and a student trained "
            "on them loses."))
    if est > c["tau"] and not guarded:
        share = ("" if b["low"] > 0 else f" β itself adds {b_span} against β shuffled: part of the gain may be "
                 "self-training's, which a student on α alone could also reach.")
        return dict(out, verdict="helps", verdict_text=(
            f"Run MKE: predicted gain of the MM student over its teacher {span} (calibrated on the tuning half of "
            f"docs/check_benchmark.md; a prediction, not a guarantee).{share}"))
    if guarded:
        return dict(out, verdict="hurts", verdict_text=(
            f"Keep the teacher: β adds nothing against β shuffled ({b_span}), although the predicted gain is {span}."))
    if est + margin > c["tau"]:
        return dict(out, verdict="unclear", verdict_text=(
            f"Unclear, keep the teacher: the predicted gain {span} lies {100 * (c['tau'] - est):.1f} points below the "
            f"threshold {100 * c['tau']:+.1f}, within its validation standard error of {100 * margin / c['kappa']:.1f}"
            f" points; with {n} validation samples this check cannot resolve a gap that small; about {4 * n} would "
            "halve it."))
    return dict(out, verdict="hurts", verdict_text=(
        f"Keep the teacher: predicted gain of the MM student over its teacher {span}; on the benchmark, running MKE "
        "in such cases lost on average."))


# ---- the theory, on the labeled validation data -----------------------------------------------------


def _theory(points: np.ndarray, labels: np.ndarray, teacher: np.ndarray, radius: float, a_bar: float,
            random_state, search: str = "both") -> dict:
    """c bracketed over sets of class mass ≤ ā, μ, Err(G_pl) and Thm 4.3's bound at one radius."""
    graph = ex.neighbourhood_graph(points, radius)
    upper = ex.worst_case_expansion(graph, labels, a=a_bar, method=search, random_state=random_state)
    lower = ex.certified_expansion(graph, labels, a=a_bar)
    # μ over pairs within 2r, not r: two balls of radius r overlap up to 2r apart, so a ground truth agreeing with
    # every label may switch class inside both balls; at r a gap between r and 2r read μ = 0 ("guaranteed")
    mu = ex.overlap_separation(labels, points, radius)
    err = float(np.mean(teacher != labels))
    certified = label_correction(err, mu, lower)
    optimistic = label_correction(err, mu, upper.c)
    if upper.c <= 3:
        status = (f"does not apply: a set of mass ≤ ā = {a_bar:.2f} of class {upper.cls} expands by only "
                  f"{upper.c:.2f} (Thm 4.3 needs c > 3)")
    elif bool(certified.holds):
        status = (f"label correction guaranteed for Thm 4.3's minimiser on the validation sample, conditional on "
                  f"the estimated μ = {mu:.3f} (pairs within 2r): c ≥ {lower:.2f} certified, bound "
                  f"{float(certified.bound.value):.3f} < Err(G_pl) = {err:.3f}; not a statement about the student "
                  "that will be trained")
    elif lower > 3 and not bool(certified.holds):
        status = (f"applies (c ≥ {lower:.2f} certified) but μ = {mu:.3f} (pairs within 2r) is too large for label "
                  "correction")
    else:
        status = (f"undetermined: c lies between {lower:.2f} (certified) and {upper.c:.2f} (search); "
                  "no guarantee")
    return dict(radius=float(radius), mean_neighbours=float(graph.sum() / len(points) - 1),
                c=float(lower), c_lower=float(lower), c_upper=float(upper.c), mu=float(mu),
                pseudo_label_error=err, a_bar=a_bar,
                bound=float(certified.bound.value) if bool(certified.bound.in_domain) else None,
                bound_at_c_upper=float(optimistic.bound.value) if bool(optimistic.bound.in_domain) else None,
                condition_holds=bool(certified.holds), applies=bool(upper.c > 3), status=status)


def _a_bar(labels: np.ndarray, teacher: np.ndarray) -> float:
    """ā: the teacher's largest per-class error on the labeled data (Wei et al.'s sets must expand up to it);
    at least one sample of the smallest class, so that a set is admissible."""
    classes, counts = np.unique(labels, return_counts=True)
    errors = [np.mean(teacher[labels == i] != i) for i in classes]
    return float(min(1.0, max(max(errors), 1.0 / counts.min())))


# ---- the check --------------------------------------------------------------------------------------


def check(alpha, beta, pseudo_labels, val_alpha=None, val_beta=None, val_labels=None, teacher_val=None, *,
          input_noise: float = 0.5, max_samples: int | None = None, random_state=0,
          keep_outcomes: bool = False) -> dict:
    """Will β help? The prediction and the theory, from D_u and labeled validation data.

    Parameters
    ----------
    alpha, beta : (M, d_α), (M, d_β) the two modalities of D_u.
    pseudo_labels : (M,) the teacher's classes on D_u.
    val_alpha, val_beta, val_labels : labeled validation data with both modalities (e.g. the validation
        part of a run's split); without it only the sample sizes are reported and the verdict is unclear.
    teacher_val : (n_val,) the teacher's classes on ``val_alpha``; None: an α probe fitted to the pseudo
        labels stands in for the teacher (said in the report).
    input_noise : the scale a of the student's perturbation T(x) = x + a·mean|x|·ε (``t_radius``).
    max_samples : use at most this many rows of D_u, drawn at random (``n_used`` says how many).
    random_state : the subsample's and the expansion search's seed.
    keep_outcomes : also return ``outcomes``, the probes' per-sample results on the validation data (what
        ``calibrated`` and benchmarks/bench_check.py compute from).

    Returns
    -------
    dict: ``verdict`` (one of ``VERDICTS``), ``verdict_text``, ``predicted_gain`` (the calibrated prediction of
    the MM student's gain over its teacher), ``resolution``, and the raw probe differences ``probe_vs_teacher``,
    ``student_like_over_um``, ``predicted_gain_over_um``, ``beta_contribution`` (each ``estimate``, ``low``,
    ``high``: accuracy differences as fractions),
    ``accuracy``, ``um`` and ``mm`` (the theory per space: ``c`` = certified lower bound, ``c_upper``, ``mu``,
    ``bound``, ``condition_holds``, ``status``, ``sensitivity`` over ``RADIUS_SCALES``), sizes and ``seconds``.
    """
    start = time.perf_counter()
    alpha, beta, pseudo_labels = _check_unlabeled(alpha, beta, pseudo_labels)
    n = len(alpha)
    check_range("input_noise", input_noise, 0.0, None)
    rng = np.random.default_rng(random_state)
    if max_samples is not None and n > max_samples:
        keep = np.sort(rng.choice(n, size=max_samples, replace=False))
        alpha, beta, pseudo_labels = alpha[keep], beta[keep], pseudo_labels[keep]
    have_val = val_alpha is not None and val_beta is not None and val_labels is not None
    if have_val:
        val_alpha, val_beta, val_labels, teacher_val = _check_validation(val_alpha, val_beta, val_labels,
                                                                         teacher_val, alpha, beta)
    _check_enough(len(alpha), n)
    report = dict(n_samples=n, n_used=len(alpha), input_noise=float(input_noise))
    if not have_val:
        report.update(_without_validation(), seconds=time.perf_counter() - start)
        return report
    n_classes = int(max(pseudo_labels.max(), val_labels.max()) + 1)
    za, va = _zscore(alpha, val_alpha)
    zb, vb = _zscore(beta, val_beta)
    alpha_probe = _probe(za, pseudo_labels, va)  # also the teacher's stand-in below when teacher_val is None
    prediction = predict_gain(za, zb, pseudo_labels, va, vb, val_labels, teacher_val, random_state, alpha_probe)
    if not keep_outcomes:
        prediction.pop("outcomes")
    report.update(prediction, n_val=len(val_labels), n_classes=n_classes)

    teacher = teacher_val if teacher_val is not None else alpha_probe
    report.update(_theory_of_spaces(za, zb, va, vb, val_labels, teacher, input_noise, random_state))
    report["seconds"] = time.perf_counter() - start
    return report


def _check_unlabeled(alpha, beta, pseudo_labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """D_u checked: (alpha (M, d_α), beta (M, d_β), pseudo_labels (M,)), the same M ≥ 2 rows each."""
    alpha, beta = check_features("alpha", alpha), check_features("beta", beta)
    n = len(alpha)
    if len(beta) != n:
        raise MKEError(f"alpha has {n} rows but beta has {len(beta)}; they must hold the same samples of D_u")
    pseudo_labels = check_labels("pseudo_labels", pseudo_labels)
    if len(pseudo_labels) != n:
        raise MKEError(f"pseudo_labels has {len(pseudo_labels)} entries but alpha has {n} rows")
    if n < 2:
        raise MKEError(f"D_u has {n} row(s); the check needs at least 2 samples of D_u")
    return alpha, beta, pseudo_labels


def _check_enough(used: int, n: int) -> None:
    """Refuse a D_u of fewer than ``MIN_UNLABELED`` rows (``used`` of ``n`` after ``max_samples``): the probes vote
    among the ``PROBE_K`` nearest rows of D_u, which must be a neighbourhood, at most half of D_u; with fewer rows
    every probe votes over (nearly) all of D_u, and the verdict and the ball's radius would be noise."""
    if used < MIN_UNLABELED:
        kept = f" (max_samples keeps {used} of {n})" if used < n else ""
        raise MKEError(f"D_u (unlabeled_alpha) has {n} row(s){kept}; the check needs at least {MIN_UNLABELED}: its "
                       f"probes vote among the {PROBE_K} nearest rows of D_u, which must be at most half of it, so add "
                       "unlabeled samples (or raise max_samples)")


def _without_validation() -> dict:
    """The report's verdict and prediction when there is no labeled validation data: unclear, nothing scored."""
    none = dict(estimate=None, low=None, high=None)
    return dict(n_val=0, verdict="unclear", um=None, mm=None, accuracy=None, resolution=None,
                **{k: dict(none) for k in ("predicted_gain", "probe_vs_teacher", "predicted_gain_over_um",
                                           "student_like_over_um", "beta_contribution")},
                verdict_text="No labeled validation data (val_alpha, val_beta, val_labels): nothing to score "
                             "the pseudo labels against, so no prediction and no estimate of μ.")


def _check_validation(val_alpha, val_beta, val_labels, teacher_val, alpha: np.ndarray, beta: np.ndarray):
    """The labeled validation data checked against D_u's ``alpha`` (M, d_α) and ``beta`` (M, d_β): returns
    (val_alpha (n_val, d_α), val_beta (n_val, d_β), val_labels (n_val,) of at least two classes, teacher_val
    (n_val,) or None)."""
    val_alpha, val_beta = check_features("val_alpha", val_alpha), check_features("val_beta", val_beta)
    val_labels = check_labels("val_labels", val_labels)
    if not len(val_alpha) == len(val_beta) == len(val_labels):
        raise MKEError(f"val_alpha, val_beta and val_labels have {len(val_alpha)}, {len(val_beta)} and "
                       f"{len(val_labels)} rows; they must hold the same validation samples")
    if val_alpha.shape[1] != alpha.shape[1] or val_beta.shape[1] != beta.shape[1]:
        raise MKEError(f"val_alpha / val_beta have {val_alpha.shape[1]} / {val_beta.shape[1]} features, D_u's "
                       f"alpha / beta {alpha.shape[1]} / {beta.shape[1]}; they must be the same features")
    if len(np.unique(val_labels)) < 2:
        raise MKEError("val_labels hold a single class; scoring the probes needs labeled samples of two classes")
    if teacher_val is not None:
        teacher_val = check_labels("teacher_val", teacher_val)
        if len(teacher_val) != len(val_labels):
            raise MKEError(f"teacher_val has {len(teacher_val)} entries but val_labels {len(val_labels)}")
    return val_alpha, val_beta, val_labels, teacher_val


def _theory_of_spaces(za, zb, va, vb, val_labels, teacher, input_noise: float, random_state) -> dict:
    """The theory part of the report: ``a_bar``, ``n_theory`` and, per space (``um``: α, ``mm``: α and β), the
    ``_theory`` block at the radius of T with its ``sensitivity`` over ``RADIUS_SCALES``.

    ``za`` (M, d_α), ``zb`` (M, d_β): D_u z-scored, which sets the radius; ``va`` (n_val, d_α), ``vb``
    (n_val, d_β): the validation data z-scored alike, with ``val_labels`` and the ``teacher``'s classes (n_val,).
    Beyond ``THEORY_MAX_SAMPLES`` validation samples, a subsample seeded with ``random_state``.
    """
    a_bar = _a_bar(val_labels, teacher)
    radii = {"um": t_radius([za], input_noise), "mm": t_radius([za, zb], input_noise)}
    keep = np.arange(len(val_labels))
    if len(keep) > THEORY_MAX_SAMPLES:  # the graph searches grow faster than linearly: a seeded subsample
        keep = np.sort(np.random.default_rng(random_state).choice(len(keep), THEORY_MAX_SAMPLES, replace=False))
    spaces = {"um": va[keep], "mm": np.hstack([va, vb])[keep]}
    val_labels, teacher = val_labels[keep], teacher[keep]
    out = dict(a_bar=a_bar, n_theory=len(keep))
    for name, points in spaces.items():
        out[name] = _space_theory(points, val_labels, teacher, radii[name], a_bar, random_state)
    return out


def _space_theory(points: np.ndarray, labels: np.ndarray, teacher: np.ndarray, radius: float, a_bar: float,
                  random_state) -> dict:
    """One space's theory block: ``_theory`` at ``radius`` with its ``sensitivity`` at ``radius`` × each of
    ``RADIUS_SCALES`` (the spectral search only, off the scale 1); ``points`` (n, d), ``labels``, ``teacher`` (n,)."""
    if radius <= 0:
        return dict(radius=0.0, c=None, c_upper=None, mu=None, bound=None, condition_holds=False,
                    applies=False, sensitivity=[],
                    status="does not apply: input_noise 0 makes T the identity, every ball a point")
    rows = [_theory(points, labels, teacher, s * radius, a_bar, random_state,
                    search="both" if s == 1.0 else "spectral") for s in RADIUS_SCALES]
    block = dict(rows[RADIUS_SCALES.index(1.0)])
    block["sensitivity"] = [dict(scale=s, radius=r["radius"], c=r["c"], c_upper=r["c_upper"], mu=r["mu"],
                                 condition_holds=r["condition_holds"]) for s, r in zip(RADIUS_SCALES, rows)]
    return block


def sample_note(report: dict, seed) -> str:
    """How much of D_u the check used, for the command line's stderr."""
    if report["n_used"] == report["n_samples"]:
        return f"check on all {report['n_samples']} samples of D_u"
    return f"check on {report['n_used']} of {report['n_samples']} samples of D_u, drawn at random (seed {seed})"


# ---- the bundle -------------------------------------------------------------------------------------

ALIASES = {"alpha": "unlabeled_alpha", "beta": "unlabeled_beta", "labels": "unlabeled_labels"}  # old check keys


def _input_noise(source: str, value) -> float:
    """The bundle's ``input_noise`` as a float, or one ``MKEError``: one finite number ≥ 0. A vector (one scale
    per feature) is refused: T perturbs every feature by the one scale a, and the theory's ball B(x) has one
    radius (``t_radius``)."""
    v = np.asarray(value)
    if v.size != 1:
        raise MKEError(f"{source}: input_noise must be a scalar, the one scale a of the students' perturbation "
                       f"T(x) = x + a·mean|x|·ε, got shape {v.shape}; per-feature scales are not supported (the "
                       "theory's ball B(x) has one radius), so save one number or pass --input-noise")
    if v.dtype.kind not in "fiu" or not np.isfinite(v).all() or float(v.reshape(())) < 0:
        raise MKEError(f"{source}: input_noise must be a finite number >= 0, got {v.reshape(()).item()!r}")
    return float(v.reshape(()))


def _classes_of(hard: dict, n_cols: int | None, source: str) -> tuple[dict, list]:
    """The label arrays ``hard`` (``pseudo_labels``, ``val_labels``, ``teacher_val_pred``: those given) as class
    indices, and the classes, checked against each other and against ``n_cols``, the probabilities' K.

    Without probabilities the classes are those of ``val_labels`` (without them: of all keys), and a pseudo label
    or teacher prediction of another class is refused. With them the K columns are the K classes: integer labels
    that all lie in 0 … K−1 are the column indices (a class may then lack validation samples); otherwise the
    sorted distinct label values (integers with their gaps filled) must be exactly K, column j the j-th of them.
    """
    keys = ("pseudo_labels", "val_labels", "teacher_val_pred")
    if n_cols is None:  # a single validation class is check()'s to name: nothing to score against
        single = "val_labels" in hard and len(set(np.asarray(hard["val_labels"]).tolist())) < 2
        return encode_labels(hard, keys, source, allow_missing=True, reference=None if single else ("val_labels",))
    if not hard:  # the teacher's probabilities alone: their argmax are the classes
        return {}, list(range(n_cols))
    values = [np.asarray(v) for v in hard.values()]
    if all(v.dtype.kind in "iu" or (v.dtype.kind == "f" and np.all(np.isfinite(v))) for v in values) and all(
            v.size == 0 or (v.min() >= 0 and v.max() < n_cols) for v in values):
        # already the column indices, as in the bundles mke-exp run writes: a class may lack validation samples
        encode_labels(hard, keys, source, allow_missing=True)  # the usual checks: 1-d, whole numbers
        return {k: np.asarray(v).astype(np.int64) for k, v in hard.items()}, list(range(n_cols))
    encoded, classes = encode_labels(hard, keys, source, allow_missing=True)
    if len(classes) != n_cols:
        if "val_labels" in hard:  # name the key holding a value the labeled data lacks, when there is one
            encode_labels(hard, keys, source, allow_missing=True, reference=("val_labels",))
        raise MKEError(f"{source}: the labels hold {len(classes)} classes ({', '.join(map(repr, classes[:10]))}"
                       f"{' …' if len(classes) > 10 else ''}) but the teacher's probabilities have {n_cols} columns; "
                       "the columns are one per class in the order of the sorted label values")
    return encoded, classes


def _agree(source: str, hard_key: str, hard: np.ndarray, probs_key: str, probs: np.ndarray) -> None:
    """Refuse classes ``hard`` that are not a highest-probability class of ``probs`` in their row (ties allowed):
    given both, the check would score the one and the run train on the other."""
    chosen = probs[np.arange(len(probs)), hard]
    bad = np.flatnonzero(chosen < probs.max(axis=1) - 1e-6)
    if bad.size:
        i = int(bad[0])
        raise MKEError(f"{source}: {hard_key} disagree with {probs_key} in {bad.size} of {len(probs)} rows (row {i}: "
                       f"class {int(hard[i])} against the argmax {int(probs[i].argmax())}); give one of them, or "
                       f"{hard_key} as the argmax of {probs_key}")


def check_bundle(arrays: dict, source: str = "the bundle", **options) -> dict:
    """``check`` on a bundle of the one format (``mke_theory.core.bundle``): D_u as ``unlabeled_alpha``,
    ``unlabeled_beta``; the teacher's ``pseudo_labels`` and/or ``teacher_probs``; labeled ``val_alpha``,
    ``val_beta``, ``val_labels`` and the teacher's ``teacher_val_pred`` and/or ``teacher_val_probs`` on them;
    ``input_noise`` (a scalar, the student's T; ``options`` override it). ``unlabeled_labels`` is not read.
    The keys ``alpha``, ``beta`` of the former check format are accepted for ``unlabeled_*``.

    Refused with one ``MKEError`` each: an unknown key close to a known one (``check_keys``), probabilities
    whose K differ between D_u and the validation set or from the number of classes, a pseudo label or teacher
    prediction of a class the validation labels (or the K columns) lack, classes that are not the argmax of the
    probabilities given beside them (the classes are then used), a vector ``input_noise``; string labels are
    compared in Unicode NFC with surrounding whitespace stripped (``mke_theory.core.bundle.normalize_label``).
    """
    check_keys(arrays, CHECK_KEYS, source)
    arrays = {ALIASES.get(k, k) if ALIASES.get(k, k) not in arrays else k: v for k, v in arrays.items()}
    missing = [k for k in ("unlabeled_alpha", "unlabeled_beta") if k not in arrays]
    if missing:
        raise MKEError(f"{source} misses the key(s) {', '.join(missing)}; the check reads D_u as unlabeled_alpha "
                       "(M, d_α) and unlabeled_beta (M, d_β), the teacher's pseudo_labels (M,) or teacher_probs "
                       "(M, K), and labeled val_alpha, val_beta, val_labels")
    for key in ("unlabeled_alpha", "unlabeled_beta", "val_alpha", "val_beta"):
        if key in arrays:
            arrays[key] = feature_array(source, key, arrays[key])
    m = len(arrays["unlabeled_alpha"])
    if "pseudo_labels" not in arrays and "teacher_probs" not in arrays:
        raise MKEError(f"{source} holds no teacher output: the check needs pseudo_labels (M,) or teacher_probs "
                       "(M, K), the teacher's classes or probabilities on D_u (unlabeled_alpha); add one")
    n_val = len(arrays["val_labels"]) if "val_labels" in arrays else 0
    probs = {key: check_probs(source, key, arrays[key], rows, part) for key, rows, part in (
        ("teacher_probs", m, "unlabeled_alpha"), ("teacher_val_probs", n_val, "val_alpha")) if key in arrays}
    widths = {key: p.shape[1] for key, p in probs.items()}
    if len(set(widths.values())) > 1:
        raise MKEError(f"{source}: teacher_val_probs has {widths['teacher_val_probs']} columns but teacher_probs "
                       f"{widths['teacher_probs']}; both hold one column per class, in the same order")
    hard = {k: arrays[k] for k in ("pseudo_labels", "val_labels", "teacher_val_pred") if k in arrays}
    encoded, _ = _classes_of(hard, next(iter(widths.values()), None), source)
    for hard_key, probs_key in (("pseudo_labels", "teacher_probs"), ("teacher_val_pred", "teacher_val_probs")):
        if probs_key not in probs:
            continue
        if hard_key not in encoded:
            encoded[hard_key] = probs[probs_key].argmax(axis=1)
        elif len(encoded[hard_key]) == len(probs[probs_key]):  # a length mismatch is check()'s to name
            _agree(source, hard_key, encoded[hard_key], probs_key, probs[probs_key])
    if "input_noise" in arrays and "input_noise" not in options:
        options["input_noise"] = _input_noise(source, arrays["input_noise"])
    return check(arrays["unlabeled_alpha"], arrays["unlabeled_beta"], encoded["pseudo_labels"],
                 arrays.get("val_alpha"), arrays.get("val_beta"), encoded.get("val_labels"),
                 encoded.get("teacher_val_pred"), **options)
