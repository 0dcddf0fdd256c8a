"""Segmentation networks on torchvision backbones: a DeepLab RGB teacher and a two-stream RGB + depth
student whose encoders' features are fused (summed) before one DeepLab head.

Backbones are torchvision ResNets (``model.backbone``); ResNet-50/101 run at output stride 8 with
dilated convolutions as DeepLabV3 does, ResNet-18/34 at stride 32 (their basic blocks cannot be
dilated). ImageNet weights are a user option: ``model.pretrained=true`` (torchvision downloads
them) or ``model.weights=PATH`` (a local state dict); the tests never need them.

The head (``model.seg_head``) is DeepLabV3's (ASPP on the last features, the default) or DeepLabV3+'s
(Chen et al. 2018: ASPP, then a decoder that fuses the upsampled ASPP output with the stride-4 features of
layer1 reduced to 48 channels, two 3×3 convolutions and the classifier). The student sums its two streams'
features at both levels, high (layer4) and low (layer1), and modality dropout drops one stream at both.
These classes take a ``ModelConfig``, not plain values, so they are not registered (``register_model``):
their runs keep records, not model files.
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
    dilated = cfg.backbone in ("resnet50", "resnet101")  # bottleneck blocks: output stride 8
    kwargs = dict(replace_stride_with_dilation=[False, True, True]) if dilated else {}
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
    encoder.low_dim = net.layer2[0].conv1.in_channels  # layer1's output channels (64 basic, 256 bottleneck)
    return encoder


LOW_LEVEL = 4  # the index of layer1 in resnet_encoder's Sequential: its output (stride 4) feeds DeepLabV3+'s decoder


def encode(encoder: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``resnet_encoder``'s features of ``x``: (low, high), layer1's (B, low_dim, H/4, W/4) and layer4's."""
    low = None
    for i, layer in enumerate(encoder):
        x = layer(x)
        if i == LOW_LEVEL:
            low = x
    return low, x


def deeplab_head(in_channels: int, n_classes: int, dropout: float) -> nn.Module:
    from torchvision.models.segmentation.deeplabv3 import ASPP

    return nn.Sequential(ASPP(in_channels, [12, 24, 36], out_channels=128), nn.Dropout2d(dropout),
                         nn.Conv2d(128, n_classes, 1))


def _conv_bn_relu(in_channels: int, out_channels: int, size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, size, padding=size // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+'s head: (high (B, C, h, w), low (B, C_low, H/4, W/4)) → logits (B, K, H/4, W/4).

    ASPP (rates 12, 24, 36, 256 channels) on the high-level features, upsampled to the low-level ones, which a
    1×1 convolution reduces to 48 channels first (so that they do not outweigh the ASPP's); the two are
    concatenated and fused by two 3×3 convolutions of 256 channels, then dropout and the 1×1 classifier, as in
    Chen et al. (2018), Table 2's best decoder.
    """

    def __init__(self, in_channels: int, low_channels: int, n_classes: int, dropout: float):
        super().__init__()
        from torchvision.models.segmentation.deeplabv3 import ASPP

        self.aspp = ASPP(in_channels, [12, 24, 36], out_channels=256)
        self.reduce = _conv_bn_relu(low_channels, 48, 1)
        self.fuse = nn.Sequential(_conv_bn_relu(256 + 48, 256, 3), _conv_bn_relu(256, 256, 3))
        self.classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(256, n_classes, 1))

    def forward(self, high, low):
        x = self.aspp(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([x, self.reduce(low)], dim=1)))


def _head(encoder: nn.Module, n_classes: int, cfg: ModelConfig, dropout: float) -> nn.Module:
    """The head ``cfg.seg_head`` names, on ``encoder``'s features."""
    if cfg.seg_head == "deeplabv3plus":
        return DeepLabV3PlusHead(encoder.out_dim, encoder.low_dim, n_classes, dropout)
    return deeplab_head(encoder.out_dim, n_classes, dropout)


class SegTeacher(nn.Module):
    """RGB (B, 3, H, W) → logits (B, K, H, W): encoder, DeepLab head (``model.seg_head``), bilinear upsampling."""

    def __init__(self, n_classes: int, cfg: ModelConfig, dropout: float):
        super().__init__()
        self.encoder = resnet_encoder(3, cfg)
        self.head = _head(self.encoder, n_classes, cfg, dropout)
        self.plus = cfg.seg_head == "deeplabv3plus"

    def forward(self, rgb):
        if self.plus:
            low, high = encode(self.encoder, rgb)
            logits = self.head(high, low)  # (B, K, H/4, W/4)
        else:
            logits = self.head(self.encoder(rgb))  # (B, K, H/s, W/s)
        return F.interpolate(logits, size=rgb.shape[-2:], mode="bilinear", align_corners=False)


class SegStudent(nn.Module):
    """RGB (B, 3, H, W) and depth (B, C_d, H, W) → logits: two encoders, features summed (fusion),
    one head. Modality dropout zeroes one stream's features per training sample with probability p.
    With DeepLabV3+ both levels are summed (layer4's into the ASPP, layer1's into the decoder) and a
    dropped stream is dropped at both."""

    def __init__(self, n_classes: int, depth_channels: int, cfg: ModelConfig, dropout: float,
                 modality_dropout: float):
        super().__init__()
        self.rgb = resnet_encoder(3, cfg)
        self.depth = resnet_encoder(depth_channels, cfg)
        self.head = _head(self.rgb, n_classes, cfg, dropout)
        self.modality_dropout = modality_dropout
        self.plus = cfg.seg_head == "deeplabv3plus"

    def forward(self, rgb, depth):
        if self.plus:
            return self._forward_plus(rgb, depth)
        fr, fd = self.rgb(rgb), self.depth(depth)  # (B, C, h, w) each
        if self.training:
            fr, fd = modality_dropout((fr, fd), self.modality_dropout)
        logits = self.head(fr + fd)
        return F.interpolate(logits, size=rgb.shape[-2:], mode="bilinear", align_corners=False)

    def _forward_plus(self, rgb, depth):
        (lr, hr), (ld, hd) = encode(self.rgb, rgb), encode(self.depth, depth)
        if self.training and self.modality_dropout > 0:  # one draw per sample, applied to both levels
            ones = hr.new_ones(hr.shape[0], 1, 1, 1)
            kr, kd = modality_dropout((ones, ones), self.modality_dropout)
            lr, hr, ld, hd = lr * kr, hr * kr, ld * kd, hd * kd
        logits = self.head(hr + hd, lr + ld)  # (B, K, H/4, W/4)
        return F.interpolate(logits, size=rgb.shape[-2:], mode="bilinear", align_corners=False)
