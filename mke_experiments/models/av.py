"""Audio-visual encoders on torchvision ResNet-18: log-mel spectrograms (B, 1, M, T) and frame
stacks (B, F, 3, S, S) → (B, 512) features, for the teacher (audio) and the fusion student."""

from __future__ import annotations

from torch import nn

from mke_experiments.config import ModelConfig
from mke_experiments.models import Student, Teacher
from mke_experiments.models.segmentation import resnet_encoder


class SpectrogramResNet(nn.Module):
    """(B, 1, n_mels, T) → (B, 512): ResNet with a one-channel first convolution, global average pool."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = resnet_encoder(1, cfg)
        self.out_dim = self.net.out_dim

    def forward(self, x):
        return self.net(x).mean(dim=(2, 3))


class FrameResNet(nn.Module):
    """(B, F, 3, S, S) → (B, 512): the same ResNet on every frame, mean over frames (temporal pooling)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = resnet_encoder(3, cfg)
        self.out_dim = self.net.out_dim

    def forward(self, x):
        b, f = x.shape[:2]
        return self.net(x.flatten(0, 1)).mean(dim=(2, 3)).view(b, f, -1).mean(dim=1)


def build_teacher(split, cfg: ModelConfig) -> Teacher:
    return Teacher(SpectrogramResNet(cfg), split.n_classes, cfg.dropout)


def build_student(split, cfg: ModelConfig, regularised: bool) -> Student:
    return Student(SpectrogramResNet(cfg), FrameResNet(cfg), split.n_classes, cfg.fusion,
                   dropout=cfg.dropout if regularised else 0.0,
                   modality_dropout=cfg.modality_dropout if regularised else 0.0)
