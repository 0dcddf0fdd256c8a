"""Encoders per modality, the teacher (α → logits) and the fusion student ((α, β) → logits).

An encoder maps one modality's batch to ``(B, hidden)`` features and exposes ``out_dim``;
``build_encoder(shape, cfg)`` picks one from a sample's shape: vectors ``(d,)``, frame stacks
``(K, 3, H, W)`` and 2-d maps such as log-mel spectrograms ``(C, H, W)``. Device is never set here.

Small vector models also train as S stacked members at once (``train.fit``), built of the layers of
``models.stacked`` (``Linear``, ``Dropout``; the ``Student``'s modality dropout draws from ``drawing``'s
generators too); ``runs_stacked`` marks the networks here that may be stacked (``stackable``).

A saved model (``protocol.predictor``) holds no code: the networks here are registered (``register_model``), so
that each remembers the constructor arguments it was built with (``network_spec``) and is rebuilt from them by
name (``build_network``); a network of a class of yours is registered the same way, or named when it is loaded.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import torch
from torch import nn

from mke_experiments.config import ModelConfig
from mke_experiments.models import stacked
from mke_experiments.models.stacked import (  # noqa: F401 (re-exported: model files of format 1 name models.Linear)
    STACKABLE,
    Dropout,
    Linear,
    drawing,
    each_member,
    runs_stacked,
    stackable,
)
from mke_experiments.perturbations import modality_dropout
from mke_theory.core.errors import MKEError

NETWORKS: dict[str, type] = {}  # name -> a network class a model file may name (register_model)


class NotPlain(TypeError):
    """A constructor argument that is neither a plain value nor a network of a registered class."""


def network_name(cls: type) -> str:
    """The name a model file gives a network class: ``module.QualifiedName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_model(cls: type) -> type:
    """Let model files name the network class ``cls`` (a class decorator, or a call before the networks are built).

    Every network of exactly this class built from then on remembers its constructor arguments (``network_spec``),
    when they are plain values (numbers, strings, None, lists, tuples and dicts of them) or networks of registered
    classes; ``build_network`` builds it again from the name and those arguments, so a model file holds the
    weights and the arguments, never code. The networks of this module are registered. A class of yours that
    is not is still saved (by name, without arguments) and is named when the file is loaded
    (``Predictor.load(path, model_class=...)``).
    """
    name = network_name(cls)
    if NETWORKS.get(name) is cls:
        return cls
    init, signature = cls.__init__, inspect.signature(cls.__init__)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if type(self) is cls:  # a subclass is another network: it records its own arguments, or none
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()  # the defaults of today, so that a later change of a default cannot alter it
            try:
                self._mke_network = dict(network=name, args=_plain(list(bound.args[1:])),
                                         kwargs=_plain(dict(bound.kwargs)))
            except NotPlain:
                self._mke_network = None

    cls.__init__ = __init__
    NETWORKS[name] = cls
    return cls


def _plain(value):
    """``value`` as a model file may hold it: plain values, and networks as ``{"__network__": spec}``."""
    if isinstance(value, nn.Module):
        spec = value.__dict__.get("_mke_network")
        if spec is None:
            raise NotPlain(network_name(type(value)))
        return {"__network__": spec}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v) for k, v in value.items()}
    raise NotPlain(type(value).__name__)


def network_spec(model: nn.Module) -> dict:
    """What a model file stores of ``model``'s architecture: ``network`` (its class's name) and the ``args`` and
    ``kwargs`` it was built with; both None for a network that did not record them (a class that is not
    registered, or arguments that are not plain), which is then named when it is loaded."""
    spec = model.__dict__.get("_mke_network")
    return spec if spec is not None else dict(network=network_name(type(model)), args=None, kwargs=None)


def build_network(spec: dict, model_class=None, source: str = "the model file") -> nn.Module:
    """A fresh network from ``spec`` (``network_spec``): the registered class of its name, called with its
    arguments; or ``model_class()``, a callable with no arguments that returns a fresh network (as ``fit_mke``'s
    ``student=``), which the file cannot choose. ``source`` names the file in the errors."""
    if model_class is not None:
        return model_class()
    name, args, kwargs = spec["network"], spec.get("args"), spec.get("kwargs")
    if name not in NETWORKS or args is None:
        raise MKEError(f"{source} holds the weights of your own network {name}; name its class when you load it, "
                       f"from Python: Predictor.load(path, model_class={name.rsplit('.', 1)[-1]}) (a callable with no "
                       f"arguments that returns a fresh network, as fit_mke's student=), or register it before the "
                       f"networks are built (mke_experiments.models.register_model)")
    return NETWORKS[name](*_built(args, source), **_built(kwargs or {}, source))


def _built(value, source: str):
    """The constructor arguments of a spec, with the networks among them built (``build_network``)."""
    if isinstance(value, dict) and set(value) == {"__network__"}:
        return build_network(value["__network__"], source=source)
    if isinstance(value, (list, tuple)):
        return type(value)(_built(v, source) for v in value)
    if isinstance(value, dict):
        return {k: _built(v, source) for k, v in value.items()}
    return value



@register_model
@runs_stacked
class VectorEncoder(nn.Module):
    """(B, d) → (B, hidden): two linear layers with ReLU (stacked: (S, B, d) → (S, B, hidden))."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(Linear(in_dim, hidden), nn.ReLU(), Linear(hidden, hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, x):
        return self.net(x)


def _conv_stack(in_ch: int, width: int) -> nn.Sequential:
    layers, ch = [], in_ch
    for out in (width, 2 * width, 4 * width):  # three stride-2 stages
        layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        ch = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, 4·width)


@register_model
class MapEncoder(nn.Module):
    """(B, C, H, W) → (B, hidden): a small CNN for one image or a spectrogram."""

    def __init__(self, in_ch: int, width: int, hidden: int):
        super().__init__()
        self.cnn = _conv_stack(in_ch, width)
        self.proj = nn.Sequential(Linear(4 * width, hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, x):
        return self.proj(self.cnn(x))


@register_model
class FrameEncoder(nn.Module):
    """(B, K, 3, H, W) → (B, hidden): the same CNN on every frame, averaged over the K frames."""

    def __init__(self, in_ch: int, width: int, hidden: int):
        super().__init__()
        self.frame = MapEncoder(in_ch, width, hidden)
        self.out_dim = hidden

    def forward(self, x):
        b, k = x.shape[:2]
        features = self.frame(x.flatten(0, 1))  # (B·K, hidden)
        return features.view(b, k, -1).mean(dim=1)  # temporal mean pooling


def build_encoder(shape: tuple, cfg: ModelConfig) -> nn.Module:
    """The encoder for samples of ``shape`` (without the batch axis)."""
    if len(shape) == 1:
        return VectorEncoder(shape[0], cfg.hidden)
    if len(shape) == 3:
        return MapEncoder(shape[0], cfg.width, cfg.hidden)
    if len(shape) == 4:
        return FrameEncoder(shape[1], cfg.width, cfg.hidden)
    raise MKEError(f"no encoder for samples of shape {shape}; expected (d,), (C, H, W) or (K, C, H, W)")


@register_model
@runs_stacked
class Teacher(nn.Module):
    """f_t(x^α): encoder, dropout, linear head. Also the UM and NOISY students' network."""

    def __init__(self, encoder: nn.Module, n_classes: int, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(Dropout(dropout), Linear(encoder.out_dim, n_classes))

    def forward(self, alpha):
        return self.head(self.encoder(alpha))


@register_model
@runs_stacked
class Student(nn.Module):
    """f_s(x^α, x^β) with late (sum of per-modality heads) or mid-level (concatenated) fusion.

    Modality dropout zeroes, per training sample and with probability p, the features of one
    randomly chosen modality (never both), a perturbation T of the MM student; like ``Dropout`` it
    draws from the members' generators (``drawing``).
    """

    def __init__(self, encoder_alpha: nn.Module, encoder_beta: nn.Module, n_classes: int, fusion: str = "late",
                 dropout: float = 0.0, modality_dropout: float = 0.0):
        super().__init__()
        self.encoder_alpha, self.encoder_beta = encoder_alpha, encoder_beta
        self.fusion, self.modality_dropout = fusion, modality_dropout
        da, db = encoder_alpha.out_dim, encoder_beta.out_dim
        if fusion == "late":
            self.head_alpha = nn.Sequential(Dropout(dropout), Linear(da, n_classes))
            self.head_beta = nn.Sequential(Dropout(dropout), Linear(db, n_classes))
        elif fusion == "mid":
            self.head = nn.Sequential(Dropout(dropout), Linear(da + db, da), nn.ReLU(), Linear(da, n_classes))
        else:
            raise MKEError(f"fusion must be 'late' or 'mid', got {fusion!r}")

    def forward(self, alpha, beta):
        fa, fb = self.encoder_alpha(alpha), self.encoder_beta(beta)  # (B, da), (B, db); stacked (S, B, ·)
        if self.training and self.modality_dropout > 0:
            fa, fb = modality_dropout((fa, fb), self.modality_dropout, stacked.generators())
        if self.fusion == "late":
            return self.head_alpha(fa) + self.head_beta(fb)
        return self.head(torch.cat([fa, fb], dim=-1))


def build_teacher(alpha_shape: tuple, n_classes: int, cfg: ModelConfig, dropout: float | None = None) -> Teacher:
    return Teacher(build_encoder(alpha_shape, cfg), n_classes, cfg.dropout if dropout is None else dropout)


def build_student(alpha_shape: tuple, beta_shape: tuple, n_classes: int, cfg: ModelConfig,
                  regularised: bool = True) -> Student:
    """The MM student; without regularisation its dropout and modality dropout are off."""
    return Student(build_encoder(alpha_shape, cfg), build_encoder(beta_shape, cfg), n_classes, cfg.fusion,
                   dropout=cfg.dropout if regularised else 0.0,
                   modality_dropout=cfg.modality_dropout if regularised else 0.0)


def recover_spec(model: nn.Module) -> None:
    """Give a network of this module that was unpickled (a model file of format 1: its ``__init__`` never ran, so it
    recorded no arguments) the constructor arguments read off its layers, so that ``network_spec`` can store it
    (``predictor.convert_legacy``); its submodules first. Networks of other classes are left as they are."""
    for sub in model.children():
        recover_spec(sub)
    read = _ARGUMENTS_OF.get(type(model))
    if read is not None and model.__dict__.get("_mke_network") is None:
        try:
            model._mke_network = dict(network=network_name(type(model)), args=_plain(read(model)), kwargs={})
        except NotPlain:
            pass


def _student_arguments(m: Student) -> list:
    head = m.head_alpha if m.fusion == "late" else m.head
    return [m.encoder_alpha, m.encoder_beta, head[-1].out_features, m.fusion, head[0].p, m.modality_dropout]


_ARGUMENTS_OF = {  # class -> its constructor's arguments (all positional, in order) read off a built network
    VectorEncoder: lambda m: [m.net[0].in_features, m.out_dim],
    MapEncoder: lambda m: [m.cnn[0].in_channels, m.cnn[0].out_channels, m.out_dim],
    FrameEncoder: lambda m: [m.frame.cnn[0].in_channels, m.frame.cnn[0].out_channels, m.out_dim],
    Teacher: lambda m: [m.encoder, m.head[-1].out_features, m.head[0].p],
    Student: _student_arguments,
}
