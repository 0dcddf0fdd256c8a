"""The batched ensemble equals separate runs, and a single member equals a plain torch loop."""

import numpy as np
import pytest
import torch
from torch import nn

from mke_theory.generators import twomoon
from mke_theory.toy.ensemble import REGULARIZERS, MLPEnsemble, Regularizer


@pytest.fixture(scope="module")
def split():
    return twomoon()


@pytest.mark.parametrize("optimizer, loss_form", [("sgd", "perturbed_ce"), ("adam", "perturbed_ce"),
                                                  ("sgd", "consistency")])
def test_batched_members_equal_separate_runs(split, optimizer, loss_form):
    seeds = [3, 7, 11, 19]
    regs = [REGULARIZERS["none"], REGULARIZERS["input_noise"], REGULARIZERS["all"], REGULARIZERS["dropout"]]
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, size=(len(seeds), split.n_unlabeled))  # one set of targets per member
    kw = dict(hidden=16, steps=150, lr=0.05, optimizer=optimizer, loss_form=loss_form, gamma=0.5)
    batched = MLPEnsemble(**kw).fit(split.unlabeled_multimodal, targets, seeds=seeds, regularizers=regs)
    logits = batched.decision_function(split.test_multimodal)
    for i, (seed, reg) in enumerate(zip(seeds, regs)):
        alone = MLPEnsemble(**kw).fit(split.unlabeled_multimodal, targets[i], seeds=[seed], regularizers=reg)
        np.testing.assert_allclose(logits[i], alone.decision_function(split.test_multimodal)[0], atol=1e-5)
        np.testing.assert_allclose(batched.loss_history_[:, i], alone.loss_history_[:, 0], rtol=1e-5, atol=1e-6)


def test_single_member_equals_a_plain_torch_training_loop(split):
    """Reference equivalence: nn.Linear layers, torch.optim.SGD and the global RNG, as the notebook."""
    seed, a, steps = 81, 1.0, 200
    x = torch.as_tensor(split.unlabeled_multimodal, dtype=torch.float32)
    y = torch.as_tensor(split.unlabeled_labels)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    for _ in range(steps):
        x_t = x + a * x.abs().mean() * torch.randn(x.shape)
        loss = nn.functional.cross_entropy(net(x_t), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ours = MLPEnsemble(hidden=16, steps=steps, lr=0.01).fit(x.numpy(), y.numpy(), seeds=[seed],
                                                            regularizers=Regularizer(input_noise=a))
    with torch.no_grad():
        expected = net(torch.as_tensor(split.test_multimodal, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(ours.decision_function(split.test_multimodal)[0], expected, atol=1e-5)


def test_soft_targets_and_per_member_inputs(split):
    soft = np.full((split.n_unlabeled, 2), 0.5, dtype=np.float32)
    soft[split.unlabeled_labels == 1] = [0.1, 0.9]
    soft[split.unlabeled_labels == 0] = [0.9, 0.1]
    model = MLPEnsemble(hidden=16, steps=300, lr=0.1).fit(split.unlabeled_multimodal, soft, seeds=[0, 1])
    assert model.score(split.test_multimodal, split.test_labels).min() > 0.8
    stacked = np.stack([split.unlabeled_multimodal, -split.unlabeled_multimodal])
    model2 = MLPEnsemble(hidden=8, steps=5).fit(stacked, split.unlabeled_labels, seeds=[0, 0])
    logits = model2.decision_function(split.test_multimodal)
    assert not np.allclose(logits[0], logits[1])  # same seed, different data: different members


def test_training_reduces_the_loss_and_fits_the_labels(split):
    model = MLPEnsemble(hidden=16, steps=2000, lr=0.01).fit(split.unlabeled_multimodal, split.unlabeled_labels,
                                                            seeds=[0, 1, 2])
    assert (model.loss_history_[-1] < model.loss_history_[0]).all()
    assert model.score(split.unlabeled_multimodal, split.unlabeled_labels).min() > 0.85


def test_bad_inputs_raise_clear_errors(split):
    with pytest.raises(ValueError, match="not fitted"):
        MLPEnsemble().predict(split.test_multimodal)
    with pytest.raises(ValueError, match="targets"):
        MLPEnsemble(steps=1).fit(split.unlabeled_multimodal, split.labels, seeds=[0])
    with pytest.raises(ValueError, match="seeds"):
        MLPEnsemble(steps=1).fit(split.unlabeled_multimodal, split.unlabeled_labels, seeds=[])
    with pytest.raises(ValueError, match="regularizers"):
        MLPEnsemble(steps=1).fit(split.unlabeled_multimodal, split.unlabeled_labels, seeds=[0, 1],
                                 regularizers=[Regularizer()])
    with pytest.raises(ValueError, match="optimizer"):
        MLPEnsemble(steps=1, optimizer="lbfgs").fit(split.unlabeled_multimodal, split.unlabeled_labels, seeds=[0])
    with pytest.raises(ValueError, match="dropout"):
        Regularizer(dropout=1.0)


@pytest.mark.parametrize("loss_form", ["consistency", "perturbed_ce"])
def test_the_same_batch_gives_the_same_loss_through_an_ensemble_member_and_an_nn_module(split, loss_form):
    """objective.student_loss is the one composition: a member of MLPEnsemble and an nn.Module with its
    weights and its noise (perturbations.input_noise on the same generator) give one loss value."""
    from mke_experiments import perturbations
    from mke_theory.objective import student_loss
    from mke_theory.toy.ensemble import _linear_init

    seed, gamma, a = 5, 0.7, 1.0
    x = torch.as_tensor(split.unlabeled_multimodal, dtype=torch.float32)
    y = torch.as_tensor((split.unlabeled_labels + np.arange(split.n_unlabeled) % 3 == 0) % 2)  # not the truth
    member = MLPEnsemble(hidden=16, steps=1, lr=0.01, loss_form=loss_form, gamma=gamma).fit(
        x.numpy(), y.numpy(), seeds=[seed], regularizers=Regularizer(input_noise=a))
    generator = torch.Generator().manual_seed(seed)  # initialisation first, then the noise: as the member
    layers = [_linear_init(i, o, 1, [generator]) for i, o in ((2, 16), (16, 16), (16, 2))]
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        for linear, (w, b) in zip(net[::2], layers):
            linear.weight.copy_(w[0].T)
            linear.bias.copy_(b[0, 0])
    perturb = perturbations.input_noise(a)
    forward = lambda perturbed: net(*(perturb((x,), generator) if perturbed else (x,)))  # noqa: E731
    loss = student_loss(forward, y, loss_form=loss_form, gamma=gamma)
    assert loss.item() == pytest.approx(float(member.loss_history_[0, 0]), rel=1e-6)


def test_cuda_members_draw_their_noise_on_the_cuda_device(split):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    kw = dict(hidden=16, steps=50, lr=0.05)
    reg = REGULARIZERS["all"]
    cpu = MLPEnsemble(**kw).fit(split.unlabeled_multimodal, split.unlabeled_labels, seeds=[1, 2], regularizers=reg)
    gpu = MLPEnsemble(**kw, device="cuda").fit(split.unlabeled_multimodal, split.unlabeled_labels, seeds=[1, 2],
                                               regularizers=reg)
    np.testing.assert_allclose(gpu.loss_history_, cpu.loss_history_, rtol=1e-4, atol=1e-5)


def plain_torch_student(x, y, seed, reg, steps, lr, optimizer, loss_form, gamma):
    """The official notebook's loop written out with nn.Linear, torch.optim and the global RNG: input noise
    a·mean|x|·ε, feature noise b·mean|h|·ε and torch's dropout after the first hidden layer; CE on f(T(x)),
    or CE on f(x) + γ·‖softmax f(x) − softmax f(T(x))‖² (Eq. 3)."""
    torch.manual_seed(seed)
    l1, l2, l3 = nn.Linear(x.shape[1], 16), nn.Linear(16, 16), nn.Linear(16, 2)
    params = [p for layer in (l1, l2, l3) for p in layer.parameters()]
    opt = torch.optim.SGD(params, lr=lr) if optimizer == "sgd" else torch.optim.Adam(params, lr=lr)

    def forward(perturbed):
        inputs = x + reg.input_noise * x.abs().mean() * torch.randn(x.shape) if perturbed and reg.input_noise else x
        h = torch.relu(l1(inputs))
        if perturbed and reg.feature_noise:  # the gradient flows through mean|h|, as in the notebook
            h = h + reg.feature_noise * h.abs().mean() * torch.randn(h.shape)
        if perturbed and reg.dropout:
            h = nn.functional.dropout(h, reg.dropout, training=True)
        return l3(torch.relu(l2(h)))

    losses = []
    for _ in range(steps):
        if loss_form == "perturbed_ce":
            loss = nn.functional.cross_entropy(forward(True), y)
        else:
            clean = forward(False)
            gap = (torch.softmax(clean, 1) - torch.softmax(forward(True), 1)).pow(2).sum(1).mean()
            loss = nn.functional.cross_entropy(clean, y) + gamma * gap
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses), (l1, l2, l3)


@pytest.mark.parametrize("reg_name", ["none", "input_noise", "feature_noise", "dropout", "all"])
@pytest.mark.parametrize("optimizer, loss_form", [("sgd", "perturbed_ce"), ("adam", "perturbed_ce"),
                                                  ("sgd", "consistency"), ("adam", "consistency")])
def test_every_regulariser_loss_form_and_optimiser_equals_the_plain_torch_loop(split, reg_name, optimizer, loss_form):
    """Catches: a dropped 1/(1-p), γ ignored, noise scaled by the wrong mean, a member drawing another stream."""
    seed, steps, lr, gamma = 14, 40, 0.05, 0.7
    reg = REGULARIZERS[reg_name]
    x = torch.as_tensor(split.unlabeled_multimodal, dtype=torch.float32)
    y = torch.as_tensor(split.unlabeled_labels)
    losses, _ = plain_torch_student(x, y, seed, reg, steps, lr, optimizer, loss_form, gamma)
    ours = MLPEnsemble(hidden=16, steps=steps, lr=lr, optimizer=optimizer, loss_form=loss_form, gamma=gamma).fit(
        x.numpy(), y.numpy(), seeds=[seed], regularizers=reg)
    np.testing.assert_allclose(ours.loss_history_[:, 0], losses, rtol=2e-5, atol=1e-6)
