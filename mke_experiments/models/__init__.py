"""Encoders per modality, the teacher (α → logits) and the fusion student ((α, β) → logits).

An encoder maps one modality's batch to ``(B, hidden)`` features and exposes ``out_dim``;
``build_encoder(shape, cfg)`` picks one from a sample's shape: vectors ``(d,)``, frame stacks
``(K, 3, H, W)`` and 2-d maps such as log-mel spectrograms ``(C, H, W)``. Device is never set here.

Small vector models also train as S stacked members at once (``train.fit``), built of the layers of
``models.stacked`` (``Linear``, ``Dropout``; the ``Student``'s modality dropout draws from ``drawing``'s
generators too); ``runs_stacked`` marks the networks here that may be stacked (``stackable``).
"""

from __future__ import annotations

import torch
from torch import nn

from mke_experiments.config import ModelConfig
from mke_experiments.models import stacked
from mke_experiments.models.stacked import (  # noqa: F401 (re-exported: saved Predictors name models.Linear)
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


class MapEncoder(nn.Module):
    """(B, C, H, W) → (B, hidden): a small CNN for one image or a spectrogram."""

    def __init__(self, in_ch: int, width: int, hidden: int):
        super().__init__()
        self.cnn = _conv_stack(in_ch, width)
        self.proj = nn.Sequential(Linear(4 * width, hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, x):
        return self.proj(self.cnn(x))


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


@runs_stacked
class Teacher(nn.Module):
    """f_t(x^α): encoder, dropout, linear head. Also the UM and NOISY students' network."""

    def __init__(self, encoder: nn.Module, n_classes: int, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(Dropout(dropout), Linear(encoder.out_dim, n_classes))

    def forward(self, alpha):
        return self.head(self.encoder(alpha))


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
