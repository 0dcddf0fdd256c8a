"""The self-training bound of Wei, Shen, Chen and Ma (ICLR 2021, arXiv 2010.03622) and the
label-correction condition MKE relies on.

With an input distribution that has (a, c)-expansion (c > 3) and a ground-truth classifier whose
robustness is at most μ (the separation), a minimiser G of the objective

    L(G) = (c+1)/(c−1)·L_01(G, G_pl) + 2c/(c−1)·R_B(G) − Err(G_pl)

has error Err(G) ≤ 2/(c−1)·Err(G_pl) + 2c/(c−1)·μ  (Wei et al. 2021, Thm 4.3, as commonly cited).

The bound is below the pseudo-labeller's own error, i.e. the student provably corrects labels,
exactly when μ < (c − 3)/(2c)·Err(G_pl), equivalently c > 3·Err(G_pl)/(Err(G_pl) − 2μ).

Every function is vectorised: the arguments broadcast against each other like numpy operands and
the results are numpy arrays of the broadcast shape (0-d arrays for scalar input, so
``float(result)`` works). Values outside the theorem's domain are not errors: they give NaN and
are reported through ``Bound.in_domain`` and ``Bound.reason``. Only arguments that are not real
numbers, or shapes that do not broadcast, raise ``ValueError``.

An infinite expansion factor ``c = inf`` is accepted and gives the limit of the formulas
(coefficients 2/(c−1) → 0 and 2c/(c−1) → 2); the code writes 2c/(c−1) as 2 + 2/(c−1) and
(c+1)/(c−1) as 1 + 2/(c−1) so that the limit comes out without inf/inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mke_theory.core.errors import MKEError

__all__ = [
    "Bound",
    "Correction",
    "label_correction",
    "max_mu_for_correction",
    "min_c_for_correction",
    "self_training_bound",
    "wei_objective",
]

#: The theorem needs expansion strictly above this value (Wei et al. 2021, Thm 4.3).
MIN_EXPANSION = 3.0

REASON_C = "c <= 3: Theorem 4.3 needs expansion c > 3"
CITATION = "Wei et al. 2021, Thm 4.3"


# ---- argument handling ---------------------------------------------------------------------------


def _as_real(name: str, value) -> np.ndarray:
    """``value`` as a float64 array; ``ValueError`` naming ``name`` if it is not real numbers."""
    try:
        array = np.asarray(value)
    except ValueError as error:  # ragged nested sequences
        raise MKEError(f"{name} must be a real number or an array_like of real numbers: {error}") from None
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise MKEError(
            f"{name} must be a real number or an array_like of real numbers, got dtype {array.dtype} "
            f"from {type(value).__name__}"
        )
    return array.astype(np.float64)


def _broadcast(**arrays) -> tuple[np.ndarray, ...]:
    """Convert each named argument and broadcast them together; ``ValueError`` naming all shapes."""
    converted = {name: _as_real(name, value) for name, value in arrays.items()}
    try:
        shape = np.broadcast_shapes(*(a.shape for a in converted.values()))
    except ValueError:
        shapes = ", ".join(f"{name} {a.shape}" for name, a in converted.items())
        raise MKEError(f"{', '.join(converted)} must broadcast together, got shapes {shapes}") from None
    return tuple(np.broadcast_to(a, shape).copy() for a in converted.values())


def _rate_ok(x: np.ndarray) -> np.ndarray:
    """True where ``x`` is a probability in [0, 1] (False for NaN)."""
    return (x >= 0.0) & (x <= 1.0)


def _frozen(x) -> np.ndarray:
    array = np.array(x)  # a fresh array: 0-d stays 0-d, numpy scalars become 0-d arrays
    array.setflags(write=False)
    return array


def _add_reason(reason: np.ndarray, mask: np.ndarray, text: str) -> np.ndarray:
    """Append ``text`` (joined with "; ") to ``reason`` where ``mask`` holds."""
    joined = np.where(reason == "", text, np.char.add(np.char.add(reason.astype(str), "; "), text))
    return np.where(mask, joined, reason)


def _fmt(x: float) -> str:
    return f"{float(x):.4g}"


# ---- the objective -------------------------------------------------------------------------------


def wei_objective(l01_to_pseudo, robustness, pseudo_label_error, c) -> np.ndarray:
    """The self-training objective whose minimiser Theorem 4.3 bounds.

    L(G) = (c+1)/(c−1)·L_01(G, G_pl) + 2c/(c−1)·R_B(G) − Err(G_pl)  (Wei et al. 2021, Thm 4.3).

    Parameters
    ----------
    l01_to_pseudo : array_like, rate in [0, 1]
        L_01(G, G_pl) = P(G(x) ≠ G_pl(x)), the student's disagreement with the pseudo labels.
    robustness : array_like, rate in [0, 1]
        R_B(G) = P(∃x' ∈ B(x): G(x') ≠ G(x)), the student's inconsistency under transformations.
    pseudo_label_error : array_like, rate in [0, 1]
        Err(G_pl), the pseudo-labeller's error (a constant in G; it makes L comparable to Err(G)).
    c : array_like, > 1
        Expansion factor; the expression is defined for c > 1, the theorem's guarantee needs c > 3
        (see :func:`self_training_bound`). ``c = inf`` gives the limit L_01 + 2·R_B − Err(G_pl).

    Returns
    -------
    ndarray of float64, the broadcast shape of the arguments (0-d for scalars)
        The objective; NaN where a rate lies outside [0, 1], c ≤ 1 or an input is NaN.

    Raises
    ------
    ValueError
        If an argument is not real numbers or the shapes do not broadcast.
    """
    l01, rob, err, c = _broadcast(
        l01_to_pseudo=l01_to_pseudo, robustness=robustness, pseudo_label_error=pseudo_label_error, c=c
    )
    ok = _rate_ok(l01) & _rate_ok(rob) & _rate_ok(err) & (c > 1.0)
    with np.errstate(all="ignore"):  # out-of-domain entries are masked below
        shrink = 2.0 / (c - 1.0)  # 0 at c = inf
        value = (1.0 + shrink) * l01 + (2.0 + shrink) * rob - err  # (c+1)/(c−1), 2c/(c−1): Thm 4.3
    return _frozen(np.where(ok, value, np.nan))


# ---- the bound -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Bound:
    """The self-training bound Err(G) ≤ 2/(c−1)·Err(G_pl) + 2c/(c−1)·μ (Wei et al. 2021, Thm 4.3).

    All fields are read-only numpy arrays of the broadcast shape of the inputs; for scalar input
    they are 0-d arrays, so ``float(bound.value)``, ``bool(bound.in_domain)`` and
    ``str(bound.reason)`` give plain Python values.

    Attributes
    ----------
    value : float64 array
        The bound on the student's error; NaN outside the theorem's domain.
    in_domain : bool array
        True where c > 3, Err(G_pl) and μ lie in [0, 1] and no input is NaN.
    vacuous : bool array
        True where the bound is in the domain but ≥ 1: true, and useless for an error rate. The
        number is kept in ``value``. False outside the domain.
    reason : str array
        "" in the domain, otherwise why not, e.g. "c <= 3: Theorem 4.3 needs expansion c > 3",
        "mu outside [0, 1]", "nan input: c"; several reasons are joined with "; ".
    pseudo_label_error, mu, c : float64 arrays
        The inputs, broadcast.
    """

    value: np.ndarray
    in_domain: np.ndarray
    vacuous: np.ndarray
    reason: np.ndarray
    pseudo_label_error: np.ndarray
    mu: np.ndarray
    c: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def describe(self, index=()) -> str:
        """One sentence on the element at ``index`` (``()`` for scalar input)."""
        inputs = (
            f"Err(G_pl) = {_fmt(self.pseudo_label_error[index])}, mu = {_fmt(self.mu[index])}, "
            f"c = {_fmt(self.c[index])}"
        )
        if not self.in_domain[index]:
            return f"no bound: outside the domain of {CITATION} ({self.reason[index]}; {inputs})"
        text = f"Err(G) <= {_fmt(self.value[index])} ({CITATION}; {inputs})"
        if self.vacuous[index]:
            text += " - vacuous: a bound >= 1 on an error rate says nothing"
        return text

    def __str__(self) -> str:
        if self.value.ndim == 0:
            return self.describe()
        n_in = int(self.in_domain.sum())
        n_vacuous = int(self.vacuous.sum())
        lines = [
            f"self-training bound ({CITATION}) over shape {self.shape}: {n_in} of {self.value.size} in the "
            f"domain ({n_vacuous} vacuous), {self.value.size - n_in} outside it"
        ]
        if self.value.size <= 20:
            lines += [f"  {index}: {self.describe(index)}" for index in np.ndindex(self.shape)]
        else:
            reasons, counts = np.unique(self.reason[~self.in_domain], return_counts=True)
            lines += [f"  {count} x outside: {reason}" for reason, count in zip(reasons, counts)]
        return "\n".join(lines)


def _domain(err: np.ndarray, mu: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(in_domain, reason)`` for Theorem 4.3 on broadcast inputs."""
    reason = np.full(err.shape, "", dtype=str)
    for name, x in (("pseudo_label_error", err), ("mu", mu), ("c", c)):
        reason = _add_reason(reason, np.isnan(x), f"nan input: {name}")
    reason = _add_reason(reason, c <= MIN_EXPANSION, REASON_C)
    for name, x in (("pseudo_label_error", err), ("mu", mu)):
        reason = _add_reason(reason, ~np.isnan(x) & ~_rate_ok(x), f"{name} outside [0, 1]")
    in_domain = (c > MIN_EXPANSION) & _rate_ok(err) & _rate_ok(mu)
    return in_domain, reason


def self_training_bound(pseudo_label_error, mu, c) -> Bound:
    """Bound the error of a minimiser of :func:`wei_objective`.

    Err(G) ≤ 2/(c−1)·Err(G_pl) + 2c/(c−1)·μ  (Wei et al. 2021, Thm 4.3), valid when the input
    distribution has (a, c)-expansion with c > 3 and the ground truth has separation
    R_B(G*) ≤ μ.

    Parameters
    ----------
    pseudo_label_error : array_like, rate in [0, 1]
        Err(G_pl), the pseudo-labeller's (teacher's) error on the unlabeled data.
    mu : array_like, rate in [0, 1]
        The separation μ, an upper bound on the ground truth's robustness R_B(G*).
    c : array_like
        The expansion factor; the theorem needs c > 3. ``c = inf`` gives the limit 2μ.

    Returns
    -------
    Bound
        Value, domain flags, vacuity flags and reasons, all of the broadcast shape (0-d arrays
        for scalar input). Outside the domain the value is NaN and ``reason`` says why.

    Raises
    ------
    ValueError
        If an argument is not real numbers or the shapes do not broadcast. Values outside the
        domain (c ≤ 3, rates outside [0, 1], NaN) do not raise.

    Examples
    --------
    >>> b = self_training_bound(0.3, 0.01, 5.0)  # 2/4·0.3 + 10/4·0.01
    >>> round(float(b.value), 6)
    0.175
    """
    err, mu, c = _broadcast(pseudo_label_error=pseudo_label_error, mu=mu, c=c)
    in_domain, reason = _domain(err, mu, c)
    with np.errstate(all="ignore"):  # out-of-domain entries are masked below
        shrink = 2.0 / (c - 1.0)  # 2/(c−1); 0 at c = inf
        value = shrink * err + (2.0 + shrink) * mu  # 2/(c−1)·Err(G_pl) + 2c/(c−1)·μ: Thm 4.3
    value = np.where(in_domain, value, np.nan)
    return Bound(
        value=_frozen(value),
        in_domain=_frozen(in_domain),
        vacuous=_frozen(in_domain & (value >= 1.0)),
        reason=_frozen(reason),
        pseudo_label_error=_frozen(err),
        mu=_frozen(mu),
        c=_frozen(c),
    )


# ---- label correction ----------------------------------------------------------------------------


def max_mu_for_correction(pseudo_label_error, c) -> np.ndarray:
    """The largest separation for which the bound beats the pseudo-labeller.

    With c > 3: 2/(c−1)·e + 2c/(c−1)·μ < e ⇔ 2cμ < (c−3)·e ⇔ μ < (c−3)/(2c)·e, where
    e = Err(G_pl) (Wei et al. 2021, Thm 4.3 rearranged). The threshold is strict.

    Parameters
    ----------
    pseudo_label_error : array_like, rate in [0, 1]
        Err(G_pl).
    c : array_like
        Expansion factor; ``c = inf`` gives e/2.

    Returns
    -------
    ndarray of float64, broadcast shape (0-d for scalars)
        (c−3)/(2c)·e; NaN where c ≤ 3, e lies outside [0, 1] or an input is NaN.
    """
    err, c = _broadcast(pseudo_label_error=pseudo_label_error, c=c)
    ok = (c > MIN_EXPANSION) & _rate_ok(err)
    with np.errstate(all="ignore"):  # out-of-domain entries are masked below
        threshold = (0.5 - 1.5 / c) * err  # (c−3)/(2c)·e
    return _frozen(np.where(ok, threshold, np.nan))


def min_c_for_correction(pseudo_label_error, mu) -> np.ndarray:
    """The expansion the bound needs to beat the pseudo-labeller: it does exactly when c > c_min.

    2cμ < (c−3)·e ⇔ c·(e − 2μ) > 3e ⇔ c > 3e/(e − 2μ) when e > 2μ, with e = Err(G_pl)
    (Wei et al. 2021, Thm 4.3 rearranged). When e ≤ 2μ no expansion suffices and c_min = +inf.
    Since c_min ≥ 3, c > c_min also puts c in the theorem's domain. The threshold is strict.

    Parameters
    ----------
    pseudo_label_error : array_like, rate in [0, 1]
        Err(G_pl).
    mu : array_like, rate in [0, 1]
        Separation μ.

    Returns
    -------
    ndarray of float64, broadcast shape (0-d for scalars)
        3e/(e − 2μ), or +inf where e ≤ 2μ; NaN where a rate lies outside [0, 1] or is NaN.
    """
    err, mu = _broadcast(pseudo_label_error=pseudo_label_error, mu=mu)
    ok = _rate_ok(err) & _rate_ok(mu)
    with np.errstate(all="ignore"):  # out-of-domain entries are masked below
        gap = err - 2.0 * mu
        # 3e/(e − 2μ) ≥ 3 exactly; the maximum removes rounding just below 3 when μ = 0
        threshold = np.where(gap > 0, np.maximum(3.0 * err / gap, MIN_EXPANSION), np.inf)
    return _frozen(np.where(ok, threshold, np.nan))


@dataclass(frozen=True, eq=False)
class Correction:
    """Whether Theorem 4.3 guarantees that the student beats its pseudo-labeller.

    All fields are read-only arrays of the broadcast shape (0-d for scalar input).

    Attributes
    ----------
    holds : bool array
        ``bound.in_domain & (bound.value < pseudo_label_error)``; equivalently, in the domain,
        μ < (c−3)/(2c)·Err(G_pl).
    improvement : float64 array
        Err(G_pl) − bound, the guaranteed gain (negative when the guarantee fails); NaN outside
        the domain.
    max_mu : float64 array
        :func:`max_mu_for_correction`, the separation below which it holds at this c.
    min_c : float64 array
        :func:`min_c_for_correction`, the expansion above which it holds at this μ.
    bound : Bound
        The bound it is based on.
    """

    holds: np.ndarray
    improvement: np.ndarray
    max_mu: np.ndarray
    min_c: np.ndarray
    bound: Bound

    def describe(self, index=()) -> str:
        """One sentence on the element at ``index`` (``()`` for scalar input)."""
        bound = self.bound
        if not bound.in_domain[index]:
            return f"no guarantee of label correction: {bound.describe(index)}"
        err = _fmt(bound.pseudo_label_error[index])
        if self.holds[index]:
            return (
                f"label correction guaranteed: Err(G) <= {_fmt(bound.value[index])} < Err(G_pl) = {err} "
                f"(improvement {_fmt(self.improvement[index])}; {CITATION})"
            )
        return (
            f"no guarantee of label correction: bound {_fmt(bound.value[index])} >= Err(G_pl) = {err}; "
            f"it needs mu < {_fmt(self.max_mu[index])} at c = {_fmt(bound.c[index])}, "
            f"or c > {_fmt(self.min_c[index])} at mu = {_fmt(bound.mu[index])}"
        )

    def __str__(self) -> str:
        if self.holds.ndim == 0:
            return self.describe()
        shape = self.holds.shape
        lines = [
            f"label correction ({CITATION}) over shape {shape}: guaranteed for {int(self.holds.sum())} "
            f"of {self.holds.size} ({int(self.bound.in_domain.sum())} in the domain)"
        ]
        if self.holds.size <= 20:
            lines += [f"  {index}: {self.describe(index)}" for index in np.ndindex(shape)]
        return "\n".join(lines)


def label_correction(pseudo_label_error, mu, c) -> Correction:
    """Does the self-training bound guarantee that the student beats the pseudo-labeller?

    It does where c > 3 and 2/(c−1)·Err(G_pl) + 2c/(c−1)·μ < Err(G_pl)  (Wei et al. 2021,
    Thm 4.3), i.e. μ < (c−3)/(2c)·Err(G_pl), i.e. c > 3·Err(G_pl)/(Err(G_pl) − 2μ).

    Parameters
    ----------
    pseudo_label_error : array_like, rate in [0, 1]
        Err(G_pl).
    mu : array_like, rate in [0, 1]
        Separation μ.
    c : array_like
        Expansion factor (the theorem needs c > 3).

    Returns
    -------
    Correction
        ``holds``, ``improvement``, ``max_mu``, ``min_c`` and the underlying ``bound``, all of
        the broadcast shape (0-d arrays for scalar input).

    Raises
    ------
    ValueError
        If an argument is not real numbers or the shapes do not broadcast.
    """
    bound = self_training_bound(pseudo_label_error, mu, c)
    err = bound.pseudo_label_error
    improvement = np.where(bound.in_domain, err - bound.value, np.nan)
    return Correction(
        holds=_frozen(bound.in_domain & (bound.value < err)),
        improvement=_frozen(improvement),
        max_mu=max_mu_for_correction(err, bound.c),
        min_c=min_c_for_correction(err, bound.mu),
        bound=bound,
    )
