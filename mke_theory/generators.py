"""Synthetic multimodal data with known answers; every generator returns a ``MultimodalSplit``.

``GENERATORS`` maps the CLI names to the functions; ``make_split(name, **kwargs)`` looks one up.
"""

from __future__ import annotations

import numpy as np

from mke_theory.core.checks import RandomState, check_choice, check_random_state, check_range
from mke_theory.core.errors import MKEError
from mke_theory.core.split import MultimodalSplit


def twomoon(
    n_samples: int = 500,
    noise: float = 0.1,
    random_state: int = 42,
    scale_on: str = "all",
) -> MultimodalSplit:
    """The paper's TwoMoon data split by axis: α = x coordinate, β = y coordinate.

    Official protocol (zihuixue/MKE notebook): ``make_moons(500, noise=0.1, random_state=42)``,
    ``StandardScaler`` fit on all points, ``train_test_split(test_size=0.4, random_state=42)``
    gives 300 train / 200 test, and the 300 are split again with ``test_size=0.9`` into
    30 labeled (D_l) / 270 unlabeled (D_u).

    Parameters
    ----------
    n_samples : total number of points before splitting.
    noise : standard deviation of the Gaussian noise added by ``make_moons``.
    random_state : seed of ``make_moons`` and both ``train_test_split`` calls.
    scale_on : ``"all"`` fits the scaler on all points as the official notebook does (it sees
        the test set); ``"train"`` fits it on the 300 training points only.
    """
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    check_range("n_samples", n_samples, 20, None, integer=True)
    check_range("noise", noise, 0.0, None)
    check_choice("scale_on", scale_on, ("all", "train"))
    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=random_state)
    if scale_on == "all":
        x = StandardScaler().fit_transform(x)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.4, random_state=random_state)
    if scale_on == "train":
        scaler = StandardScaler().fit(x_train)
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    x_l, x_u, y_l, y_u = train_test_split(x_train, y_train, test_size=0.9, random_state=random_state)
    return MultimodalSplit(
        labeled_alpha=x_l[:, :1], labels=y_l,
        unlabeled_alpha=x_u[:, :1], unlabeled_beta=x_u[:, 1:], unlabeled_labels=y_u,
        test_alpha=x_test[:, :1], test_beta=x_test[:, 1:], test_labels=y_test,
        n_classes=2, name="twomoon",
        meta={"n_samples": n_samples, "noise": noise, "random_state": random_state, "scale_on": scale_on},
    )


def _seed_for_meta(random_state: RandomState):
    """The seed as ``meta`` records it: an int, ``None``, or ``"Generator"`` for a passed generator."""
    if random_state is None or isinstance(random_state, np.random.Generator):
        return None if random_state is None else "Generator"
    return int(random_state)


def _random_orthogonal(dim: int, rng: np.random.Generator) -> np.ndarray:
    """(dim, dim) orthogonal matrix drawn from the Haar measure (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def _random_unit_vector(dim: int, rng: np.random.Generator) -> np.ndarray:
    """(dim,) vector drawn uniformly from the unit sphere."""
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) labels in random order with every class holding ``n // K`` or ``n // K + 1`` entries.

    The ``n % K`` classes that get one extra entry are chosen at random, so no class is favoured.
    """
    counts = np.full(n_classes, n // n_classes)
    counts[rng.choice(n_classes, size=n % n_classes, replace=False)] += 1
    return rng.permutation(np.repeat(np.arange(n_classes), counts)).astype(np.int64)


def _class_means(n_classes: int, dim: int, separation: float, rng: np.random.Generator) -> np.ndarray:
    """(n_classes, dim) class means whose closest pair lies ``separation`` apart.

    With ``dim >= n_classes - 1`` the means are the vertices of a regular simplex, every pair
    ``separation`` apart, centred at the origin and randomly rotated. With fewer dimensions the
    means lie evenly spaced on a random line through the origin, neighbours ``separation`` apart.
    """
    if dim >= n_classes - 1:
        centred = np.eye(n_classes) - 1.0 / n_classes  # (K, K): vertices sqrt(2) apart
        basis = np.linalg.svd(centred)[2][: n_classes - 1].T  # (K, K-1): orthonormal span
        vertices = centred @ basis / np.sqrt(2.0)  # (K, K-1): vertices 1 apart
        rotation = _random_orthogonal(dim, rng)[: n_classes - 1]  # (K-1, dim): orthonormal rows
        return separation * vertices @ rotation
    positions = np.arange(n_classes) - (n_classes - 1) / 2.0  # (K,): neighbours 1 apart
    return separation * positions[:, None] * _random_unit_vector(dim, rng)[None, :]


def _check_split_sizes(n_classes, n_labeled, n_unlabeled, n_test) -> None:
    """At least 2 classes and at least one sample in each of D_l, D_u and the test set."""
    check_range("n_classes", n_classes, 2, None, integer=True)
    check_range("n_labeled", n_labeled, 1, None, integer=True)
    check_range("n_unlabeled", n_unlabeled, 1, None, integer=True)
    check_range("n_test", n_test, 1, None, integer=True)


def _check_gaussian_args(n_classes, n_labeled, n_unlabeled, n_test, alpha_dim, beta_dim, alpha_separation,
                         beta_separation, beta_informative) -> None:
    """``gaussian_mixture``'s arguments checked."""
    _check_split_sizes(n_classes, n_labeled, n_unlabeled, n_test)
    check_range("alpha_dim", alpha_dim, 1, None, integer=True)
    check_range("beta_dim", beta_dim, 1, None, integer=True)
    check_range("alpha_separation", alpha_separation, 0, None)
    check_range("beta_separation", beta_separation, 0, None)
    if not isinstance(beta_informative, (bool, np.bool_)):
        raise MKEError(f"beta_informative must be True or False, got {beta_informative!r}")  # noqa: TRY004


def _draw_gaussian(n: int, alpha_means: np.ndarray, beta_means: np.ndarray, rng: np.random.Generator,
                   with_beta: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One part of the Gaussian mixture: (y (n,) balanced labels, α (n, alpha_dim), β (n, beta_dim) or None),
    α and β the class means ``alpha_means`` (K, alpha_dim), ``beta_means`` (K, beta_dim) plus unit noise."""
    n_classes, alpha_dim = alpha_means.shape
    beta_dim = beta_means.shape[1]
    y = _balanced_labels(n, n_classes, rng)  # (n,)
    a = alpha_means[y] + rng.standard_normal((n, alpha_dim))  # (n, alpha_dim)
    b = beta_means[y] + rng.standard_normal((n, beta_dim)) if with_beta else None  # (n, beta_dim)
    return y, a, b


def gaussian_mixture(
    n_classes: int = 2,
    n_labeled: int = 30,
    n_unlabeled: int = 270,
    n_test: int = 200,
    alpha_dim: int = 2,
    beta_dim: int = 2,
    alpha_separation: float = 1.0,
    beta_separation: float = 3.0,
    beta_informative: bool = True,
    random_state: RandomState = None,
) -> MultimodalSplit:
    """A K-class Gaussian mixture with a separately controlled informativeness per modality.

    Given the class ``y``, α and β are drawn independently (conditional independence)::

        alpha | y ~ N(mu_alpha[y], I_{alpha_dim}),    beta | y ~ N(mu_beta[y], I_{beta_dim}).

    The class means of a modality form a regular simplex whose vertices lie ``separation`` apart
    (randomly rotated) when the modality has at least ``n_classes - 1`` dimensions; with fewer
    dimensions they lie evenly spaced on a random line, neighbours ``separation`` apart. For two
    classes the Bayes accuracy of a modality alone is therefore ``Phi(separation / 2)``.
    With ``beta_informative=False`` every class has ``mu_beta = 0``: β is independent of the
    label (a negative control; α and the labels are the same as with ``True`` for one seed).

    Every split (labeled, unlabeled, test) is class-balanced: each class holds ``n // K`` or
    ``n // K + 1`` of its ``n`` samples.

    Parameters
    ----------
    n_classes : number of classes K, at least 2.
    n_labeled, n_unlabeled, n_test : sizes of D_l, D_u and the test set, each at least 1.
    alpha_dim, beta_dim : number of features of α and β, each at least 1.
    alpha_separation, beta_separation : distance between the closest class means of α and β
        (noise has unit variance per feature), each at least 0.
    beta_informative : whether the class means of β differ.
    random_state : seed or ``np.random.Generator``; the only source of randomness.

    Returns
    -------
    MultimodalSplit named ``"gaussian"``; α has ``alpha_dim`` columns, β has ``beta_dim``.
    ``unlabeled_labels`` holds the true labels of D_u; ``meta`` holds the parameters and the
    class means ``alpha_means`` (K, alpha_dim) and ``beta_means`` (K, beta_dim) as nested lists.
    """
    _check_gaussian_args(n_classes, n_labeled, n_unlabeled, n_test, alpha_dim, beta_dim, alpha_separation,
                         beta_separation, beta_informative)
    rng = check_random_state(random_state)
    alpha_means = _class_means(n_classes, alpha_dim, alpha_separation, rng)  # (K, alpha_dim)
    beta_means = _class_means(n_classes, beta_dim, beta_separation, rng)  # (K, beta_dim)
    if not beta_informative:
        beta_means = np.zeros_like(beta_means)
    y_l, a_l, _ = _draw_gaussian(n_labeled, alpha_means, beta_means, rng, with_beta=False)
    y_u, a_u, b_u = _draw_gaussian(n_unlabeled, alpha_means, beta_means, rng, with_beta=True)
    y_t, a_t, b_t = _draw_gaussian(n_test, alpha_means, beta_means, rng, with_beta=True)
    return MultimodalSplit(
        labeled_alpha=a_l, labels=y_l,
        unlabeled_alpha=a_u, unlabeled_beta=b_u, unlabeled_labels=y_u,
        test_alpha=a_t, test_beta=b_t, test_labels=y_t,
        n_classes=n_classes, name="gaussian",
        meta={
            "n_classes": n_classes, "n_labeled": n_labeled, "n_unlabeled": n_unlabeled, "n_test": n_test,
            "alpha_dim": alpha_dim, "beta_dim": beta_dim, "alpha_separation": alpha_separation,
            "beta_separation": beta_separation, "beta_informative": bool(beta_informative),
            "random_state": _seed_for_meta(random_state),
            "alpha_means": alpha_means.tolist(), "beta_means": beta_means.tolist(),
        },
    )


def _check_shared_specific_args(n_classes, n_labeled, n_unlabeled, n_test, n_shared, n_alpha_specific,
                                n_beta_specific, alpha_noise_dim, beta_noise_dim) -> None:
    """``shared_specific``'s arguments checked."""
    _check_split_sizes(n_classes, n_labeled, n_unlabeled, n_test)
    check_range("n_shared", n_shared, 1, None, integer=True)
    check_range("n_alpha_specific", n_alpha_specific, 1, None, integer=True)
    check_range("n_beta_specific", n_beta_specific, 1, None, integer=True)
    check_range("alpha_noise_dim", alpha_noise_dim, 0, None, integer=True)
    check_range("beta_noise_dim", beta_noise_dim, 0, None, integer=True)


def shared_specific(
    n_classes: int = 2,
    n_labeled: int = 30,
    n_unlabeled: int = 270,
    n_test: int = 200,
    n_shared: int = 1,
    n_alpha_specific: int = 1,
    n_beta_specific: int = 1,
    alpha_noise_dim: int = 1,
    beta_noise_dim: int = 1,
    random_state: RandomState = None,
) -> MultimodalSplit:
    """Decisive features shared by both modalities or specific to one (after Xue et al., ICLR 2023).

    The hyperplane construction of the modality focusing hypothesis (MFH): latent decisive
    features ``z = [z_shared, z_alpha_specific, z_beta_specific] ~ N(0, I)`` decide the label
    through one random linear rule ``s = w . z``, where ``w`` has a random unit direction within
    each of the three blocks, so each block contributes a unit-variance term to ``s``. With two
    classes the label is ``1[s > 0]``; with K classes it is the index of the bin of ``s`` between
    the ``k / K`` quantiles of ``N(0, |w|^2)`` (``k = 1 .. K-1``), so every class has probability
    exactly ``1 / K``. The modalities are::

        alpha = [z_shared, z_alpha_specific, e_alpha] @ Q_alpha,
        beta  = [z_shared, z_beta_specific,  e_beta ] @ Q_beta,

    with label-free noise ``e ~ N(0, I)`` and random orthogonal rotations ``Q`` within each
    modality. α alone cannot determine the label (the β-specific features are decisive and
    independent of α): for two classes its Bayes accuracy is ``1 - arccos(sqrt(2/3)) / pi ≈ 0.80``
    whatever the block sizes, while α and β together determine the label exactly (accuracy 1,
    linearly separable for two classes).

    Parameters
    ----------
    n_classes : number of classes K, at least 2.
    n_labeled, n_unlabeled, n_test : sizes of D_l, D_u and the test set, each at least 1. The
        splits are i.i.d. draws, balanced in expectation only.
    n_shared, n_alpha_specific, n_beta_specific : dimensions of the three decisive blocks, each
        at least 1.
    alpha_noise_dim, beta_noise_dim : label-free noise features of α and β, each at least 0.
    random_state : seed or ``np.random.Generator``; the only source of randomness.

    Returns
    -------
    MultimodalSplit named ``"shared-specific"``; α has ``n_shared + n_alpha_specific +
    alpha_noise_dim`` columns, β has ``n_shared + n_beta_specific + beta_noise_dim``.
    """
    _check_shared_specific_args(n_classes, n_labeled, n_unlabeled, n_test, n_shared, n_alpha_specific,
                                n_beta_specific, alpha_noise_dim, beta_noise_dim)
    rng = check_random_state(random_state)
    weights = np.concatenate([_random_unit_vector(d, rng) for d in (n_shared, n_alpha_specific, n_beta_specific)])
    from scipy.special import ndtri  # not at the top: mke-theory check loads this module, and not scipy.special

    thresholds = np.linalg.norm(weights) * ndtri(np.arange(1, n_classes) / n_classes)  # (K-1,) quantiles of s
    alpha_rotation = _random_orthogonal(n_shared + n_alpha_specific + alpha_noise_dim, rng)
    beta_rotation = _random_orthogonal(n_shared + n_beta_specific + beta_noise_dim, rng)

    n = n_labeled + n_unlabeled + n_test
    z_shared = rng.standard_normal((n, n_shared))
    z_alpha = rng.standard_normal((n, n_alpha_specific))
    z_beta = rng.standard_normal((n, n_beta_specific))
    score = np.hstack([z_shared, z_alpha, z_beta]) @ weights  # (n,)
    y = np.searchsorted(thresholds, score, side="right").astype(np.int64)  # (n,) bin of the score
    alpha = np.hstack([z_shared, z_alpha, rng.standard_normal((n, alpha_noise_dim))]) @ alpha_rotation
    beta = np.hstack([z_shared, z_beta, rng.standard_normal((n, beta_noise_dim))]) @ beta_rotation
    lab, unl, tst = slice(0, n_labeled), slice(n_labeled, n_labeled + n_unlabeled), slice(n_labeled + n_unlabeled, n)
    return MultimodalSplit(
        labeled_alpha=alpha[lab], labels=y[lab],
        unlabeled_alpha=alpha[unl], unlabeled_beta=beta[unl], unlabeled_labels=y[unl],
        test_alpha=alpha[tst], test_beta=beta[tst], test_labels=y[tst],
        n_classes=n_classes, name="shared-specific",
        meta={
            "n_classes": n_classes, "n_labeled": n_labeled, "n_unlabeled": n_unlabeled, "n_test": n_test,
            "n_shared": n_shared, "n_alpha_specific": n_alpha_specific, "n_beta_specific": n_beta_specific,
            "alpha_noise_dim": alpha_noise_dim, "beta_noise_dim": beta_noise_dim,
            "random_state": _seed_for_meta(random_state),
            "decision_weights": weights.tolist(),
        },
    )


GENERATORS = {
    "twomoon": twomoon,
    "gaussian": gaussian_mixture,
    "shared-specific": shared_specific,
}


def make_split(name: str, random_state: RandomState = None, **kwargs) -> MultimodalSplit:
    """Build the split of the generator called ``name`` (see ``GENERATORS``)."""
    check_choice("generator", name, tuple(GENERATORS))
    if random_state is not None:
        kwargs["random_state"] = random_state
    return GENERATORS[name](**kwargs)
