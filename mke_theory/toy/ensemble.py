"""Many seeds (and several methods) of a small MLP trained at once with batched parameters.

Every member owns a slice of each parameter tensor ``(S, ...)``, its own ``torch.Generator``
(seeded with its seed, used first for the initialisation and then for the perturbations, as
``torch.manual_seed(seed)`` followed by a plain training loop would) and its own targets and
regulariser.  The loss is the sum of the members' losses, so every member's gradient, and with
an element-wise optimiser (SGD, Adam) every update, equals that of the same seed trained alone:
``MLPEnsemble(...).fit(x, y, seeds=[s0, s1])`` matches two separate fits numerically.

The network is the official TwoMoon MLP: ``in → h → h → K`` with ReLU; feature noise and
dropout act on the first hidden layer's activations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from mke_theory.core.checks import check_choice, check_range
from mke_theory.core.errors import MKEError
from mke_theory.objective import (
    LOSS_FORMS,
    pseudo_label_loss_and_grad,
    relative_gaussian,
    relative_gaussian_backward,
    student_loss,
)


@dataclass(frozen=True)
class Regularizer:
    """Strengths of the perturbations T of one student (official TwoMoon parameters a, b, p)."""

    input_noise: float = 0.0  # a: x + a·mean|x|·ε
    feature_noise: float = 0.0  # b: h + b·mean|h|·ε after the first hidden layer
    dropout: float = 0.0  # p: dropout after the first hidden layer

    def __post_init__(self):
        check_range("input_noise", self.input_noise, 0.0, None)
        check_range("feature_noise", self.feature_noise, 0.0, None)
        check_range("dropout", self.dropout, 0.0, 1.0, high_inclusive=False)

    @property
    def is_identity(self) -> bool:
        return self.input_noise == 0 and self.feature_noise == 0 and self.dropout == 0

    def as_dict(self) -> dict:
        return asdict(self)


RNG_MODES = ("library", "notebook")

# The regulariser ablation of the official notebook (a = 1, b = 1, p = 0.2).
REGULARIZERS = {
    "none": Regularizer(),
    "input_noise": Regularizer(input_noise=1.0),
    "feature_noise": Regularizer(feature_noise=1.0),
    "dropout": Regularizer(dropout=0.2),
    "all": Regularizer(input_noise=1.0, feature_noise=1.0, dropout=0.2),
}


def _linear_init(fan_in: int, fan_out: int, n: int, gens) -> tuple[torch.Tensor, torch.Tensor]:
    # torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight (out, in), then bias.
    bound = 1.0 / np.sqrt(fan_in)
    ws, bs = [], []
    for g in gens[:n]:
        ws.append(torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=g).T)  # (in, out)
        bs.append(torch.empty(fan_out).uniform_(-bound, bound, generator=g))
    return torch.stack(ws), torch.stack(bs)[:, None, :]  # (S, in, out), (S, 1, out)


class _SGD:
    """Full-batch SGD without momentum, the update of ``torch.optim.SGD`` (p ← p − lr·∇p)."""

    def __init__(self, params, lr):
        self.params, self.lr = params, lr

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p in self.params:
            p.add_(p.grad, alpha=-self.lr)


def _as_inputs(x, targets, S: int) -> tuple[torch.Tensor, torch.Tensor, bool, int]:
    """``fit``'s data as tensors, checked for S members: (x (n, d) or (S, n, d) float32, targets as (S, n) int64
    class indices or (S, n, K) float32 soft labels, whether they are soft, the number of classes K)."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    if x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[0] != S):
        raise MKEError(f"x must be (n, d) or ({S}, n, d), got shape {tuple(x.shape)}")
    n = x.shape[-2]
    y = torch.as_tensor(np.asarray(targets))
    soft = y.is_floating_point()
    if soft:
        y = y.float()
        y = y.expand(S, *y.shape[-2:]) if y.dim() == 2 else y
        if y.shape[:2] != (S, n):
            raise MKEError(f"soft targets must be (n, K) or ({S}, n, K), got {tuple(y.shape)}")
        n_classes = y.shape[-1]
    else:
        y = y.long()
        if tuple(y.shape) not in ((n,), (S, n)):
            raise MKEError(f"targets must be (n,) or ({S}, n) with n={n}, got {tuple(y.shape)}")
        y = y.expand(S, n)
        n_classes = max(int(y.max()) + 1, 2)
    return x, y, soft, n_classes


def _regularizer_list(regularizers, S: int) -> list[Regularizer]:
    """S regularisers: one ``Regularizer`` (or None: the identity) for every member, or a list of S."""
    if regularizers is None or isinstance(regularizers, Regularizer):
        regularizers = [regularizers or Regularizer()] * S
    if len(regularizers) != S:
        raise MKEError(f"regularizers must be one Regularizer or a list of {S}, got {len(regularizers)}")
    return regularizers


class MLPEnsemble:
    """S independently seeded MLP students trained in one batched loop (full-batch).

    Parameters
    ----------
    hidden : width h of both hidden layers (official: 32 for UM nets, 16 for the MM student).
    steps : optimisation steps (official: teacher 1000, students 2000).
    lr : learning rate (official: 0.01).
    optimizer : ``"sgd"`` (official, no momentum) or ``"adam"``.
    loss_form : ``"perturbed_ce"`` (official: CE on f(T(x))) or ``"consistency"``
        (CE on f(x) + γ · ‖softmax f(x) − softmax f(T(x))‖², Eq. 3).
    gamma : γ of the consistency form.
    device : torch device the members are trained on.
    rng : ``"library"`` (a member draws only the perturbations it uses) or ``"notebook"`` (it also draws
        the official forward pass's feature noise when b = 0, so that its random stream, and with it
        every number, is the notebook's for that seed).

    Attributes
    ----------
    params_ : list of (weight (S, in, out), bias (S, 1, out)) tensors after ``fit``.
    loss_history_ : (steps, S) array of each member's training loss.
    """

    def __init__(self, hidden: int = 32, steps: int = 2000, lr: float = 0.01, optimizer: str = "sgd",
                 loss_form: str = "perturbed_ce", gamma: float = 1.0, device: str = "cpu", rng: str = "library"):
        self.hidden = hidden
        self.steps = steps
        self.lr = lr
        self.optimizer = optimizer
        self.loss_form = loss_form
        self.gamma = gamma
        self.device = device
        self.rng = rng

    # ---- forward and backward ---------------------------------------------------------------
    def _forward(self, x, params, reg=None, gens=None, cache=None):
        """x: (n, d) shared or (S, n, d); returns logits (S, n, K).

        With ``reg`` the perturbations T are drawn (training); with ``cache`` (a dict) the
        intermediates the analytic backward pass needs are kept in it.
        """
        (w1, b1), (w2, b2), (w3, b3) = params
        S = w1.shape[0]
        if reg is not None and reg["active_input"].any():
            x = x.expand(S, *x.shape[-2:]) if x.dim() == 2 else x
            x = relative_gaussian(x, reg["input_noise"], self._draw_normal(x.shape[1:], gens, reg["active_input"]))
        z1 = torch.matmul(x, w1) + b1  # (S, n, h)
        h = torch.relu(z1)
        a1, eps = h, None
        if reg is not None and reg["draw_feature"].any():
            eps = self._draw_normal(h.shape[1:], gens, reg["draw_feature"])
            if reg["active_feature"].any():
                h = relative_gaussian(h, reg["feature_noise"], eps)
            else:  # drawn only to keep the notebook's random streams: b = 0 for every member
                eps = None
        keep = None
        if reg is not None and reg["active_dropout"].any():
            keep = self._draw_keep(h.shape[1:], gens, reg["dropout"])
            h = h * keep
        z2 = torch.baddbmm(b2, h, w2)
        a2 = torch.relu(z2)  # (S, n, h)
        if cache is not None:
            cache.update(x=x, z1=z1, a1=a1, eps=eps, keep=keep, h=h, z2=z2, a2=a2)
        return torch.baddbmm(b3, a2, w3)  # (S, n, K)

    @staticmethod
    def _backward(params, cache, grad_logits, reg):
        """Gradients of every parameter, in ``params`` order, from the gradient w.r.t. the logits:
        backpropagation through the three layers written out (no autograd graph: ~2x faster for
        these tiny layers; a test pins it to autograd for every regulariser)."""
        (w1, _), (w2, _), (w3, _) = params
        x, h, a2 = cache["x"], cache["h"], cache["a2"]
        g2 = torch.ops.aten.threshold_backward(torch.bmm(grad_logits, w3.transpose(1, 2)), cache["z2"], 0)
        g1 = torch.bmm(g2, w2.transpose(1, 2))  # w.r.t. the perturbed hidden features h
        if cache["keep"] is not None:
            g1 = g1 * cache["keep"]
        if cache["eps"] is not None:
            g1 = relative_gaussian_backward(cache["a1"], reg["feature_noise"], cache["eps"], g1)
        g1 = torch.ops.aten.threshold_backward(g1, cache["z1"], 0)
        inputs = x.expand(w1.shape[0], *x.shape[-2:]) if x.dim() == 2 else x
        grads = []
        for a, g in ((inputs, g1), (h, g2), (a2, grad_logits)):
            grads += [torch.bmm(a.transpose(1, 2), g), g.sum(dim=1, keepdim=True)]
        return grads

    # Every member draws from its own CPU generator, so that a member sees the noise its seed sees when
    # trained alone (on any device); the draws then move to the device of the activations.
    def _draw_normal(self, shape, gens, active):
        # Members with this perturbation switched off draw nothing, exactly as a single run would not.
        out = torch.zeros((len(gens), *shape))
        for s, (g, a) in enumerate(zip(gens, active.tolist())):
            if a:
                torch.randn(shape, generator=g, out=out[s])
        return out.to(self.device)

    def _draw_keep(self, shape, gens, p):
        # torch.nn.functional.dropout's own draw on the CPU: bernoulli(1 − p), then divided by 1 − p
        out = torch.ones((len(gens), *shape))
        for s, (g, ps) in enumerate(zip(gens, p.flatten().tolist())):
            if ps > 0:
                out[s].bernoulli_(1.0 - ps, generator=g).div_(1.0 - ps)
        return out.to(self.device)

    # ---- fit ---------------------------------------------------------------------------------
    def fit(self, x, targets, seeds, regularizers=None, progress=None) -> MLPEnsemble:
        """Train one member per seed.

        Parameters
        ----------
        x : (n, d) inputs shared by all members, or (S, n, d) one set per member.
        targets : (n,) or (S, n) int class indices, or (S, n, K) soft labels.
        seeds : S ints; member s is initialised and perturbed from ``torch.Generator().manual_seed(seeds[s])``.
            Repeats are allowed (the notebook's seed list repeats one): such members are identical.
        regularizers : one ``Regularizer`` for all members or a list of S.
        progress : optional callable ``progress(n_steps_done)`` called every step.
        """
        self._check_hyperparameters()
        seeds = [int(s) for s in seeds]
        S = len(seeds)
        if S == 0:
            raise MKEError("seeds must hold at least one seed")
        x, y, soft, n_classes = _as_inputs(x, targets, S)
        n, d = x.shape[-2:]
        regularizers = _regularizer_list(regularizers, S)

        dev = torch.device(self.device)
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        sizes = [d, self.hidden, self.hidden, n_classes]
        params = [_linear_init(i, o, S, gens) for i, o in zip(sizes[:-1], sizes[1:])]
        params = [(w.to(dev), b.to(dev)) for w, b in params]
        flat = [t for wb in params for t in wb]
        analytic = self.loss_form == "perturbed_ce"  # one forward pass; the consistency form uses autograd
        if not analytic:
            for t in flat:
                t.requires_grad_()
        # Plain SGD is written out: importing torch.optim costs ~1 s at start-up, more than a whole run.
        opt = _SGD(flat, self.lr) if self.optimizer == "sgd" else torch.optim.Adam(flat, lr=self.lr)
        reg = self._regularizer_tensors(regularizers, dev)
        x, y = x.to(dev), y.to(dev)
        y_classes_first = y.transpose(1, 2) if soft else y
        history = torch.empty((self.steps, S))
        for step in range(self.steps):
            if analytic:
                per_member = self._analytic_gradients(x, y_classes_first, params, flat, reg, gens)
            else:
                per_member = self._autograd_gradients(x, y, params, reg, gens, opt)
            opt.step()
            history[step] = per_member.detach()
            if progress is not None:
                progress(1)
        self.params_ = [(w.detach(), b.detach()) for w, b in params]
        self.n_classes_ = n_classes
        self.seeds_ = seeds
        self.loss_history_ = history.numpy()
        return self

    def _check_hyperparameters(self) -> None:
        """The constructor's arguments checked (at ``fit``, as scikit-learn does)."""
        check_range("hidden", self.hidden, 1, None, integer=True)
        check_range("steps", self.steps, 0, None, integer=True)
        check_range("lr", self.lr, 0.0, None, low_inclusive=False)
        check_choice("optimizer", self.optimizer, ("sgd", "adam"))
        check_choice("loss_form", self.loss_form, LOSS_FORMS)
        check_choice("rng", self.rng, RNG_MODES)
        check_range("gamma", self.gamma, 0.0, None)

    def _regularizer_tensors(self, regularizers, dev) -> dict:
        """Each member's perturbation strengths as (S, 1, 1) tensors on ``dev`` and (S,) bool masks of the
        members that apply (``active_*``) or draw (``draw_feature``) each perturbation."""
        col = lambda v: torch.tensor(v, dtype=torch.float32, device=dev)[:, None, None]  # noqa: E731
        reg = {
            "input_noise": col([r.input_noise for r in regularizers]),
            "feature_noise": col([r.feature_noise for r in regularizers]),
            "dropout": col([r.dropout for r in regularizers]),
        }
        reg["active_input"] = reg["input_noise"].flatten() > 0
        # rng="notebook": the official forward pass draws feature noise even when b = 0 (scaled by 0, it
        # changes no value but moves the member's random stream on), so every member draws it.
        reg["active_feature"] = reg["feature_noise"].flatten() > 0
        reg["draw_feature"] = reg["active_feature"] | (self.rng == "notebook")
        reg["active_dropout"] = reg["dropout"].flatten() > 0
        return reg

    def _analytic_gradients(self, x, y_classes_first, params, flat, reg, gens) -> torch.Tensor:
        """One step's loss L_pl(f_s(T(x))) (objective.student_loss, perturbed_ce) and its gradient, written out:
        sets ``.grad`` of every tensor in ``flat`` and returns the (S,) loss of each member."""
        n = x.shape[-2]
        cache = {}
        logits = self._forward(x, params, reg, gens, cache)
        # classes on axis 1 (a transposed view): torch's log-softmax is ~6x faster there for K = 2
        per_sample, grad = pseudo_label_loss_and_grad(logits.transpose(1, 2), y_classes_first, class_dim=1)
        per_member = per_sample.mean(dim=1)
        for t, g in zip(flat, self._backward(params, cache, grad.transpose(1, 2) / n, reg)):
            t.grad = g
        return per_member

    def _autograd_gradients(self, x, y, params, reg, gens, opt) -> torch.Tensor:
        """One step's loss by autograd, the student step of Algorithm 1 (objective.student_loss): f_s(T(x)) is
        (S, n, K); the parameters' gradients are set through ``opt`` and the (S,) loss of each member returned."""
        forward = lambda perturbed: self._forward(x, params, reg, gens) if perturbed else self._forward(x, params)  # noqa: E731
        per_sample_mean = lambda v: v.mean(dim=1)  # (S, n) -> (S,): one loss per member  # noqa: E731
        per_member = student_loss(forward, y, loss_form=self.loss_form, gamma=self.gamma, reduce=per_sample_mean)
        opt.zero_grad(set_to_none=True)
        per_member.sum().backward()  # members are independent: d(sum)/dθ_s = dL_s/dθ_s
        return per_member

    # ---- predict ----------------------------------------------------------------------------
    def decision_function(self, x) -> np.ndarray:
        """(S, n, K) logits of every member on clean inputs (evaluation mode, no perturbation)."""
        if not hasattr(self, "params_"):
            raise MKEError("this MLPEnsemble is not fitted yet: call fit first")
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.params_[0][0].device)
        with torch.no_grad():
            return self._forward(x, self.params_).cpu().numpy()

    def predict(self, x) -> np.ndarray:
        """(S, n) predicted classes of every member."""
        return self.decision_function(x).argmax(axis=-1)

    def score(self, x, labels) -> np.ndarray:
        """(S,) accuracy of every member on ``(x, labels)``."""
        return (self.predict(x) == np.asarray(labels)[None]).mean(axis=1)
