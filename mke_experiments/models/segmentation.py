"""Segmentation networks on torchvision backbones: a DeepLabV3-style RGB teacher and a
two-stream RGB + depth student whose encoders' features are fused before one DeepLab head.

Backbones are torchvision ResNets (``model.backbone``); ResNet-50 runs at output stride 8 with
dilated convolutions as DeepLabV3 does, ResNet-18/34 at stride 32 (their basic blocks cannot be
dilated). ImageNet weights are a user option: ``model.pretrained=true`` (torchvision downloads
them) or ``model.weights=PATH`` (a local state dict); the tests never need them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mke_experiments.config import ModelConfig
from mke_experiments.perturbations import modality_dropout
from mke_theory.core.errors import MKEError


def resnet_encoder(in_channels: int, cfg: ModelConfig) -> nn.Module:
    """A torchvision ResNet up to layer4, taking ``in_channels`` inputs; ``out_dim`` channels out."""
    import torchvision

    build = getattr(torchvision.models, cfg.backbone)
    kwargs = dict(replace_stride_with_dilation=[False, True, True]) if cfg.backbone == "resnet50" else {}
    weights = "DEFAULT" if cfg.pretrained else None
    try:
        net = build(weights=weights, **kwargs)
    except Exception as e:  # noqa: BLE001  (a download that cannot happen offline)
        raise MKEError(f"could not load ImageNet weights for {cfg.backbone} ({e}); "
                         "pass a local file with --set model.weights=PATH instead") from None
    if cfg.weights:
        try:
            net.load_state_dict(torch.load(cfg.weights, map_location="cpu", weights_only=True), strict=False)
        except (OSError, RuntimeError) as e:
            raise MKEError(f"{cfg.weights}: not a usable {cfg.backbone} state dict ({e})") from None
    if in_channels != 3:  # depth: a fresh first convolution of the same shape, one input channel
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    encoder = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    encoder.out_dim = net.fc.in_features
    return encoder


def deeplab_head(in_channels: int, n_classes: int, dropout: float) -> nn.Module:
    from torchvision.models.segmentation.deeplabv3 import ASPP

    return nn.Sequential(ASPP(in_channels, [12, 24, 36], out_channels=128), nn.Dropout2d(dropout),
                         nn.Conv2d(128, n_classes, 1))


class SegTeacher(nn.Module):
    """RGB (B, 3, H, W) → logits (B, K, H, W): encoder, ASPP head, bilinear upsampling."""

    def __init__(self, n_classes: int, cfg: ModelConfig, dropout: float):
        super().__init__()
        self.encoder = resnet_encoder(3, cfg)
        self.head = deeplab_head(self.encoder.out_dim, n_classes, dropout)

    def forward(self, rgb):
        logits = self.head(self.encoder(rgb))  # (B, K, H/s, W/s)
        return F.interpolate(logits, size=rgb.shape[-2:], mode="bilinear", align_corners=False)


class SegStudent(nn.Module):
    """RGB (B, 3, H, W) and depth (B, C_d, H, W) → logits: two encoders, features summed (fusion),
    one head. Modality dropout zeroes one stream's features per training sample with probability p."""

    def __init__(self, n_classes: int, depth_channels: int, cfg: ModelConfig, dropout: float,
                 modality_dropout: float):
        super().__init__()
        self.rgb = resnet_encoder(3, cfg)
        self.depth = resnet_encoder(depth_channels, cfg)
        self.head = deeplab_head(self.rgb.out_dim, n_classes, dropout)
        self.modality_dropout = modality_dropout

    def forward(self, rgb, depth):
        fr, fd = self.rgb(rgb), self.depth(depth)  # (B, C, h, w) each
        if self.training:
            fr, fd = modality_dropout((fr, fd), self.modality_dropout)
        logits = self.head(fr + fd)
        return F.interpolate(logits, size=rgb.shape[-2:], mode="bilinear", align_corners=False)
