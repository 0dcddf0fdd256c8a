"""Algorithm 1's pieces: reductions, invariants and reference values."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mke_theory import objective as obj
from mke_theory.testing import logits_strategy

SETTINGS = settings(max_examples=40, deadline=None)


def _t(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)


@SETTINGS
@given(logits_strategy(), st.floats(0.0, 5.0))
def test_gamma_zero_is_plain_pseudo_label_training(logits, gamma_other):
    z = _t(logits)
    targets = z.argmax(-1).roll(1)
    # a perturbation that changes the softmax (a constant shift would not: L_reg would be ~0 and γ untested)
    perturbed = z.roll(1, dims=-1) + torch.linspace(0.0, 3.0, z.shape[-1])
    assert torch.equal(obj.mke_loss(z, perturbed, targets, gamma=0.0), obj.pseudo_label_loss(z, targets))
    # and γ > 0 adds exactly γ times the consistency term
    expected = obj.pseudo_label_loss(z, targets) + gamma_other * obj.consistency_loss(z, perturbed)
    assert torch.allclose(obj.mke_loss(z, perturbed, targets, gamma=gamma_other), expected, atol=1e-6)
    reg = obj.consistency_loss(z, perturbed).item()
    if reg > 1e-4 and gamma_other > 0.1:  # the weight is visible: ignoring γ (or using 1) would fail here
        gap = (obj.mke_loss(z, perturbed, targets, gamma=gamma_other) - obj.pseudo_label_loss(z, targets)).item()
        assert gap == pytest.approx(gamma_other * reg, rel=1e-4)


@SETTINGS
@given(logits_strategy())
def test_no_perturbation_gives_zero_consistency_loss(logits):
    z = _t(logits)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(obj.input_noise(z, 0.0, g), z)
    assert torch.equal(obj.feature_noise(z, 0.0, g), z)
    assert obj.consistency_loss(z, z).item() == 0.0
    assert obj.consistency_loss(z, z + 3.0).item() < 1e-6  # softmax is shift-invariant


@SETTINGS
@given(logits_strategy(min_classes=2, max_classes=6))
def test_consistency_loss_is_nonnegative_symmetric_and_positive_when_probabilities_differ(logits):
    z = _t(logits)
    w = z.flip(-1)
    a, b = obj.consistency_loss(z, w), obj.consistency_loss(w, z)
    assert a.item() >= 0 and torch.allclose(a, b)
    differ = (torch.softmax(z, -1) - torch.softmax(w, -1)).abs().max() > 1e-3
    assert (a.item() > 0) == bool(differ) or not differ


@SETTINGS
@given(logits_strategy(), logits_strategy())
def test_kl_is_nonnegative_and_zero_at_the_target(a, b):
    za = _t(a)
    zb = _t(b[: len(a)]) if len(b) >= len(a) and b.shape[1] == a.shape[1] else za.flip(0)
    soft = obj.soft_pseudo_labels(zb, temperature=1.0)
    assert obj.pseudo_label_loss(za, soft).item() >= -1e-6
    assert obj.pseudo_label_loss(zb, soft).item() == pytest.approx(0.0, abs=1e-5)


def test_soft_labels_tend_to_hard_labels_as_temperature_goes_to_zero():
    rng = np.random.default_rng(0)
    teacher = _t(rng.normal(size=(64, 5)) * 3)
    student = _t(rng.normal(size=(64, 5)))
    hard = obj.hard_pseudo_labels(teacher)
    onehot = F.one_hot(hard, 5).float()
    gaps = [(obj.soft_pseudo_labels(teacher, t) - onehot).abs().max().item() for t in (1.0, 0.3, 0.1, 0.01)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-4
    # the KL to the soft labels becomes the cross entropy to the hard ones (entropy term → 0)
    kl = obj.pseudo_label_loss(student, obj.soft_pseudo_labels(teacher, 0.01))
    assert kl.item() == pytest.approx(obj.pseudo_label_loss(student, hard).item(), rel=1e-4)


def test_hard_loss_is_cross_entropy_and_respects_ignore_index():
    rng = np.random.default_rng(1)
    z = _t(rng.normal(size=(10, 4)))
    y = torch.as_tensor(rng.integers(0, 4, 10))
    assert torch.allclose(obj.pseudo_label_loss(z, y), F.cross_entropy(z, y))
    y_void = y.clone()
    y_void[:3] = -100
    assert torch.allclose(obj.pseudo_label_loss(z, y_void), F.cross_entropy(z[3:], y[3:]))
    # dense prediction: class axis 1 of (B, C, H, W)
    dense = _t(rng.normal(size=(2, 4, 3, 5)))
    target = torch.as_tensor(rng.integers(0, 4, (2, 3, 5)))
    assert torch.allclose(obj.pseudo_label_loss(dense, target, class_dim=1), F.cross_entropy(dense, target))


@SETTINGS
@given(logits_strategy(min_classes=2, max_classes=6), st.randoms(use_true_random=False))
def test_relabelling_classes_changes_nothing(logits, rnd):
    z = _t(logits)
    k = z.shape[1]
    perm = list(range(k))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    # continuous teacher logits: an argmax tie (whose winner depends on the class order) has probability 0
    teacher = _t(np.random.default_rng(rnd.randint(0, 2**31)).normal(size=tuple(z.shape)) * 3)
    hard, soft = obj.hard_pseudo_labels(teacher), obj.soft_pseudo_labels(teacher, 0.5)
    inverse = torch.argsort(perm)  # class c is called inverse[c] after relabelling
    z_p, teacher_p = z[:, perm], teacher[:, perm]
    assert torch.equal(obj.hard_pseudo_labels(teacher_p), inverse[hard])
    assert torch.allclose(obj.pseudo_label_loss(z_p, inverse[hard]), obj.pseudo_label_loss(z, hard), atol=1e-6)
    assert torch.allclose(obj.pseudo_label_loss(z_p, soft[:, perm]), obj.pseudo_label_loss(z, soft), atol=1e-5)
    assert torch.allclose(obj.consistency_loss(z_p, teacher_p), obj.consistency_loss(z, teacher), atol=1e-6)


def test_input_noise_scale_and_determinism():
    x = _t(np.random.default_rng(2).normal(size=(4000, 3)))
    a = 0.5
    noisy = obj.input_noise(x, a, torch.Generator().manual_seed(5))
    assert torch.equal(noisy, obj.input_noise(x, a, torch.Generator().manual_seed(5)))
    std = (noisy - x).std().item()
    assert std == pytest.approx(a * x.abs().mean().item(), rel=0.03)
    # a stacked ensemble (S, n, d) uses each member's own mean |x|
    stacked = torch.stack([x, 10 * x])
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).expand(2, *x.shape)
    out = obj.relative_gaussian(stacked, a, eps)
    assert torch.allclose(out[1] - stacked[1], 10 * (out[0] - stacked[0]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("call, name", [
    (lambda: obj.soft_pseudo_labels(torch.zeros(2, 2), temperature=0.0), "temperature"),
    (lambda: obj.input_noise(torch.zeros(2, 2), -1.0), "input noise"),
    (lambda: obj.mke_loss(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), -1.0), "gamma"),
    (lambda: obj.pseudo_labels(torch.zeros(2, 2), kind="fuzzy"), "kind"),
    (lambda: obj.pseudo_label_loss(torch.zeros(2, 3), torch.zeros(2, 2)), "soft targets"),
])
def test_bad_arguments_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_student_loss_composes_each_form_from_the_forward_function():
    torch.manual_seed(0)
    clean, perturbed = torch.randn(6, 3), torch.randn(6, 3)  # not a constant shift: L_reg is well above 0
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    calls = []

    def forward(is_perturbed):
        calls.append(is_perturbed)
        return perturbed if is_perturbed else clean

    pl_clean, pl_perturbed = obj.pseudo_label_loss(clean, targets), obj.pseudo_label_loss(perturbed, targets)
    reg = obj.consistency_loss(clean, perturbed)
    assert reg.item() > 0.05
    assert obj.student_loss(forward, targets, regularised=False).item() == pytest.approx(pl_clean.item())
    assert calls == [False]
    assert obj.student_loss(forward, targets, loss_form="perturbed_ce").item() == pytest.approx(pl_perturbed.item())
    assert calls[1:] == [True]
    for gamma in (0.0, 0.5, 2.0):  # γ weights L_reg exactly: a dropped or squared γ fails here
        got = obj.student_loss(forward, targets, loss_form="consistency", gamma=gamma).item()
        assert got == pytest.approx(pl_clean.item() + gamma * reg.item(), rel=1e-6)
    # per-member reduction (the ensemble's): each term reduced by `reduce`, then γ-weighted
    stacked = lambda p: torch.stack([forward(p), forward(p)])  # noqa: E731  (S=2, n, K)
    per_member = obj.student_loss(stacked, targets.expand(2, 6), gamma=2.0, reduce=lambda v: v.mean(dim=1))
    assert per_member.shape == (2,)
    np.testing.assert_allclose(per_member.numpy(), [pl_clean.item() + 2.0 * reg.item()] * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="loss_form"):
        obj.student_loss(forward, targets, loss_form="mse")


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("class_dim", [-1, 1])
def test_the_analytic_loss_gradient_equals_autograd(soft, class_dim):
    """pseudo_label_loss_and_grad (the ensemble's backward pass starts from it) against autograd of
    pseudo_label_loss: catches a sign, a missing Σỹ factor for soft targets, or the wrong class axis."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 4, generator=g, dtype=torch.float64)  # (S, n, K)
    targets = (torch.softmax(torch.randn(3, 7, 4, generator=g, dtype=torch.float64), -1) * 0.9 if soft
               else torch.randint(0, 4, (3, 7), generator=g))  # soft rows sum to 0.9: the Σỹ term matters
    if class_dim == 1:
        logits = logits.transpose(1, 2)
        targets = targets.transpose(1, 2) if soft else targets
    z = logits.clone().requires_grad_()
    expected = obj.pseudo_label_loss(z, targets, class_dim=class_dim, reduction="none")
    expected.sum().backward()
    loss, grad = obj.pseudo_label_loss_and_grad(logits, targets, class_dim=class_dim)
    torch.testing.assert_close(loss, expected.detach())
    torch.testing.assert_close(grad, z.grad)
