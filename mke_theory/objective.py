"""Algorithm 1 of Xue et al. (ICCV 2021) as small pure functions over torch tensors.

The class axis is the last one (``(..., n_classes)``) for MLPs and can be moved with
``class_dim`` for dense prediction (``(B, C, H, W)``).  Two forms of the student objective are
offered, and a result says which it used:

* ``"consistency"`` — Eq. (3): L_pl(f_s(x)) + γ · L_reg(f_s(x), f_s(T(x))), explicit weight γ.
* ``"perturbed_ce"`` — the official TwoMoon code: L_pl(f_s(T(x))), cross entropy on perturbed
  inputs; T enters through the inputs only and there is no separate L_reg.

Perturbations draw from an explicit ``torch.Generator`` so that a run is reproducible and a
batched ensemble member sees the same noise as the same seed trained alone.
"""

from __future__ import annotations

import torch

from mke_theory.core.errors import MKEError
from mke_theory.core.methods import LOSS_FORMS  # noqa: F401 (the names of the forms below; declared there)


def _check_prob(name: str, p: float, high_inclusive: bool = True) -> None:
    if not (0.0 <= p <= 1.0) or (p == 1.0 and not high_inclusive):
        raise MKEError(f"{name} must lie in [0, 1{']' if high_inclusive else ')'}, got {p!r}")


# ---- pseudo labels, Eq. (2) ------------------------------------------------------------------
def hard_pseudo_labels(teacher_logits: torch.Tensor, class_dim: int = -1) -> torch.Tensor:
    """ỹ = argmax_k f_t(x^α)_k, Eq. (2); int64 of the logits' shape without the class axis."""
    return teacher_logits.argmax(dim=class_dim)


def soft_pseudo_labels(teacher_logits: torch.Tensor, temperature: float = 1.0, class_dim: int = -1) -> torch.Tensor:
    """ỹ = softmax(f_t(x^α) / τ); tends to the one-hot hard label as τ → 0."""
    if not temperature > 0:
        raise MKEError(f"temperature must lie in (0, inf), got {temperature!r}")
    return torch.softmax(teacher_logits.detach() / temperature, dim=class_dim)


def pseudo_labels(teacher_logits: torch.Tensor, kind: str = "hard", temperature: float = 1.0,
                  class_dim: int = -1) -> torch.Tensor:
    """Hard (``kind="hard"``) or soft (``kind="soft"``) pseudo labels from teacher logits."""
    if kind == "hard":
        return hard_pseudo_labels(teacher_logits, class_dim)
    if kind == "soft":
        return soft_pseudo_labels(teacher_logits, temperature, class_dim)
    raise MKEError(f"kind must be one of 'hard', 'soft'; got {kind!r}")


# ---- perturbations T ---------------------------------------------------------------------------
def relative_gaussian(x: torch.Tensor, scale, eps: torch.Tensor) -> torch.Tensor:
    """x + scale · mean(|x|) · eps for given standard-normal ``eps`` of x's shape.

    The mean is over the last two axes (samples, features), so a stacked ensemble
    ``(S, n, d)`` with ``scale`` of shape ``(S, 1, 1)`` gets the per-member mean a single run
    would compute.  As in the official code, the gradient flows through the mean too: on hidden
    features (feature noise) that term is not zero; on inputs nothing needs a gradient.
    (Measured: only with it does feature noise b = 1 reproduce the notebook's ablation row.)
    """
    return x + scale * x.abs().mean(dim=(-2, -1), keepdim=True) * eps


def relative_gaussian_backward(x: torch.Tensor, scale, eps: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """d/dx of ``relative_gaussian`` applied to ``grad`` (the gradient w.r.t. its output):
    grad + scale · sign(x) / N · Σ(eps ⊙ grad), N the number of elements of the mean."""
    n = x.shape[-2] * x.shape[-1]
    coupling = (eps * grad).sum(dim=(-2, -1), keepdim=True) * (scale / n)
    return grad + x.sign() * coupling


def _relative_gaussian(x: torch.Tensor, scale, generator: torch.Generator | None) -> torch.Tensor:
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return relative_gaussian(x, scale, eps)


def input_noise(x: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """T(x) = x + a · mean(|x|) · ε, ε ~ N(0, I), resampled at every call (official TwoMoon ``a``).

    ``x`` is ``(n_samples, n_features)`` or ``(n_members, n_samples, n_features)``.
    """
    if scale < 0:
        raise MKEError(f"input noise scale must lie in [0, inf), got {scale!r}")
    return x if scale == 0 else _relative_gaussian(x, scale, generator)


def feature_noise(h: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """T(h) = h + b · mean(|h|) · ε on hidden features (official TwoMoon ``b``)."""
    if scale < 0:
        raise MKEError(f"feature noise scale must lie in [0, inf), got {scale!r}")
    return h if scale == 0 else _relative_gaussian(h, scale, generator)


# ---- losses, Eqs. (4) and (5) ----------------------------------------------------------------
def _reducer(reduction: str):
    _reduce(torch.zeros(()), reduction)  # an unknown reduction is an error here, before any loss is computed
    return lambda per_sample: _reduce(per_sample, reduction)


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "none":
        return per_sample
    raise MKEError(f"reduction must be one of 'mean', 'none'; got {reduction!r}")


def pseudo_label_loss(student_logits: torch.Tensor, targets: torch.Tensor, class_dim: int = -1,
                      reduction: str = "mean", ignore_index: int = -100) -> torch.Tensor:
    """L_pl, Eq. (4): cross entropy for hard targets (int), KL(ỹ ‖ f_s) for soft targets (float).

    ``reduction="none"`` returns one value per sample (the logits' shape without the class axis);
    hard targets equal to ``ignore_index`` (e.g. void pixels) contribute nothing.
    """
    log_p = torch.log_softmax(student_logits, dim=class_dim)
    if targets.dtype in (torch.int64, torch.int32, torch.uint8):
        t = targets.long()
        valid = t != ignore_index
        nll = -log_p.gather(class_dim, t.clamp(min=0).unsqueeze(class_dim)).squeeze(class_dim)
        nll = nll * valid
        if reduction == "mean":
            return nll.sum() / valid.sum().clamp(min=1)
        return _reduce(nll, reduction)
    if targets.shape != student_logits.shape:
        raise MKEError(f"soft targets must have the logits' shape {tuple(student_logits.shape)}, "
                         f"got {tuple(targets.shape)}")
    kl = (torch.xlogy(targets, targets) - targets * log_p).sum(dim=class_dim)
    return _reduce(kl, reduction)


def pseudo_label_loss_and_grad(student_logits: torch.Tensor, targets: torch.Tensor, class_dim: int = -1):
    """Per-sample L_pl (``reduction="none"``) and its gradient w.r.t. the logits, without autograd:
    softmax − one-hot for hard targets, softmax · Σỹ − ỹ for soft ones (KL). Used by the batched
    ensemble's analytic backward pass; a test pins both to ``pseudo_label_loss`` under autograd."""
    log_p = torch.log_softmax(student_logits, dim=class_dim)
    if targets.is_floating_point():
        loss = (torch.xlogy(targets, targets) - targets * log_p).sum(dim=class_dim)
        grad = log_p.exp() * targets.sum(dim=class_dim, keepdim=True) - targets
        return loss, grad
    index = targets.long().unsqueeze(class_dim)
    loss = -log_p.gather(class_dim, index).squeeze(class_dim)
    grad = log_p.exp().scatter_add_(class_dim, index, torch.full_like(index, -1, dtype=log_p.dtype))
    return loss, grad


def consistency_loss(student_logits: torch.Tensor, perturbed_logits: torch.Tensor, class_dim: int = -1,
                     reduction: str = "mean") -> torch.Tensor:
    """L_reg, Eq. (5) with l_reg = squared L2 between f_s(x) and f_s(T(x)) as probabilities.

    Eq. (5) sums over D_u while Eq. (4) averages; this function averages too, so γ here equals
    the paper's γ times M.  Zero when the perturbation changes nothing.
    """
    p = torch.softmax(student_logits, dim=class_dim)
    q = torch.softmax(perturbed_logits, dim=class_dim)
    return _reduce(((p - q) ** 2).sum(dim=class_dim), reduction)


def mke_loss(student_logits: torch.Tensor, perturbed_logits: torch.Tensor, targets: torch.Tensor,
             gamma: float, class_dim: int = -1, reduction: str = "mean", ignore_index: int = -100) -> torch.Tensor:
    """The student objective of Eq. (3), L_pl + γ · L_reg (L_reg over every sample or pixel), of given logits:
    ``student_loss`` with the consistency form."""
    logits = {False: student_logits, True: perturbed_logits}
    return student_loss(logits.__getitem__, targets, loss_form="consistency", gamma=gamma, class_dim=class_dim,
                        ignore_index=ignore_index, reduce=None if reduction == "mean" else _reducer(reduction))


def perturbed_pseudo_label_loss(perturbed_logits: torch.Tensor, targets: torch.Tensor, class_dim: int = -1,
                                reduction: str = "mean") -> torch.Tensor:
    """The official TwoMoon form: (1/M) Σ CE(ỹ_i, f_s(T(x_i))), the perturbation inside the CE."""
    return pseudo_label_loss(perturbed_logits, targets, class_dim, reduction)


# ---- the student objective of Algorithm 1 ----------------------------------------------------------
def student_loss(forward, targets: torch.Tensor, *, regularised: bool = True, loss_form: str = "consistency",
                 gamma: float = 1.0, class_dim: int = -1, ignore_index: int = -100, reduce=None) -> torch.Tensor:
    """The loss of one student step, the only place its terms are put together (``mke_loss`` calls it too).

    The real-data loop (``mke_experiments.train``) and the toy engine's autograd path call it; the toy engine's
    default TwoMoon path (``mke_theory.toy.ensemble``, perturbed_ce) writes the same L_pl(f_s(T(x))) out with its
    gradient (``pseudo_label_loss_and_grad``) for speed, and a test pins the two to each other.

    Parameters
    ----------
    forward : ``forward(perturbed) -> logits``: f_s(x) for ``False`` and f_s(T(x)) for ``True``, with
        the perturbation T drawn anew at each call (an ``nn.Module`` on perturbed inputs, or a batched
        ensemble whose T also acts on hidden features). Called once, or twice (clean first).
    targets : hard (int) or soft (float, the logits' shape) pseudo labels, Eq. (2).
    regularised : False gives plain cross entropy on clean inputs, L_pl(f_s(x)) (the teacher, the
        unregularised students).
    loss_form : ``"consistency"``, Eq. (3): L_pl(f_s(x)) + γ · L_reg(f_s(x), f_s(T(x))); or
        ``"perturbed_ce"``, the official TwoMoon form: L_pl(f_s(T(x))).
    gamma : γ of Eq. (3).
    reduce : None averages each term over every sample (and pixel; targets equal to
        ``ignore_index`` left out of L_pl); otherwise ``reduce(per_sample)`` is applied to each term's
        unreduced values, e.g. ``lambda v: v.mean(dim=1)`` for one loss per ensemble member ``(S,)``.
    """
    if loss_form not in LOSS_FORMS:
        raise MKEError(f"loss_form must be one of {', '.join(LOSS_FORMS)}; got {loss_form!r}")

    def term(per_sample, mean):  # one term of the loss, averaged or by ``reduce``
        return mean() if reduce is None else reduce(per_sample())

    def l_pl(logits):  # Eq. (4)
        return term(lambda: pseudo_label_loss(logits, targets, class_dim, "none", ignore_index),
                    lambda: pseudo_label_loss(logits, targets, class_dim, ignore_index=ignore_index))

    def l_reg(clean, perturbed):  # Eq. (5)
        return term(lambda: consistency_loss(clean, perturbed, class_dim, "none"),
                    lambda: consistency_loss(clean, perturbed, class_dim))

    if not regularised:
        return l_pl(forward(False))
    if loss_form == "perturbed_ce":
        return l_pl(forward(True))
    if gamma < 0:
        raise MKEError(f"gamma must lie in [0, inf), got {gamma!r}")
    clean = forward(False)
    perturbed = forward(True)
    loss = l_pl(clean)
    return loss if gamma == 0 else loss + gamma * l_reg(clean, perturbed)
