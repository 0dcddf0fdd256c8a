"""The perturbations T of regularised students and the training-time augmentation, in one place.

One contract for every T: ``perturb(inputs, generator) -> inputs``, where ``inputs`` is the tuple
of a batch's modality tensors (α first) and every random draw comes from ``generator`` on the
device the generator lives on (the training loop keeps it on the inputs' device and checkpoints
its state, so a resumed run draws what the uninterrupted one drew). Augmentation, which must move
the targets with the inputs, is ``augment(inputs, targets, generator) -> (inputs, targets)``.
A task picks its T with a factory below (``input_noise``, ``photometric``, ``audio_visual``) and
its augmentation with ``joint_scale_crop_flip``. Modality dropout acts on encoder features inside
a student's forward pass and is ``modality_dropout`` here.

Nothing in this module changes values depending on the device: on the CPU the draws are the
same numbers as the official code's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mke_theory import objective
from mke_theory.core.checks import check_range


def _rand(shape, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device)


def input_noise(scale: float):
    """T(x) = x + a · mean|x| · ε on every modality (``objective.input_noise``, the TwoMoon ``a``)."""
    check_range("mke.input_noise", scale, 0.0, None)

    def perturb(inputs: tuple, generator: torch.Generator) -> tuple:
        if scale == 0:
            return inputs
        return tuple(objective.input_noise(x, scale, generator) for x in inputs)

    return perturb


def photometric(depth_noise: float, gain: float = 0.2, shift: float = 0.2):
    """T for RGB-D segmentation: per-image brightness (±``shift``) and contrast (×1 ± ``gain``) jitter
    of the RGB stream (first input) and relative Gaussian noise of strength ``depth_noise`` on the
    others. Spatially aligned: f(x) and f(T(x)) compare pixel by pixel."""
    check_range("mke.input_noise", depth_noise, 0.0, None)
    noise = input_noise(depth_noise)

    def perturb(inputs: tuple, generator: torch.Generator) -> tuple:
        rgb = inputs[0]  # (B, 3, H, W)
        b = rgb.shape[0]
        g = (1 - gain) + 2 * gain * _rand((b, 1, 1, 1), generator)
        s = 2 * shift * _rand((b, 1, 1, 1), generator) - shift
        mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
        return ((rgb - mean) * g.to(rgb.device) + mean + s.to(rgb.device), *noise(inputs[1:], generator))

    return perturb


def spec_augment(x: torch.Tensor, freq_mask: int, time_mask: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one band of ``freq_mask`` mel bins and one span of ``time_mask`` frames per clip of a
    log-mel batch ``(B, C, M, T)`` (SpecAugment without time warping), vectorised over the batch."""
    b, m, t = x.shape[0], x.shape[-2], x.shape[-1]
    f0 = torch.randint(0, max(1, m - freq_mask), (b,), generator=generator, device=generator.device).to(x.device)
    t0 = torch.randint(0, max(1, t - time_mask), (b,), generator=generator, device=generator.device).to(x.device)
    bins = torch.arange(m, device=x.device)[None]  # (1, M)
    steps = torch.arange(t, device=x.device)[None]  # (1, T)
    in_band = (bins >= f0[:, None]) & (bins < f0[:, None] + freq_mask)  # (B, M)
    in_span = (steps >= t0[:, None]) & (steps < t0[:, None] + time_mask)  # (B, T)
    return x.masked_fill(in_band[:, None, :, None], 0.0).masked_fill(in_span[:, None, None, :], 0.0)


def frame_jitter(x: torch.Tensor, generator: torch.Generator, gain: float = 0.2) -> torch.Tensor:
    """Brightness ×(1 ± ``gain``) per clip of a frame batch ``(B, F, 3, S, S)`` in [0, 1], clamped."""
    g = (1 - gain) + 2 * gain * _rand((x.shape[0], 1, 1, 1, 1), generator)
    return (x * g.to(x.device)).clamp(0, 1)


def audio_visual(freq_mask: int, time_mask: int):
    """T for audio + video: SpecAugment on log-mel maps (4-d inputs) and frame jitter on frame stacks
    (5-d inputs); modality dropout lives in the student (``modality_dropout``)."""
    check_range("data.freq_mask", freq_mask, 0, None, integer=True)
    check_range("data.time_mask", time_mask, 0, None, integer=True)

    def perturb(inputs: tuple, generator: torch.Generator) -> tuple:
        out = []
        for x in inputs:
            if x.dim() == 4:  # (B, 1, M, T)
                x = spec_augment(x, freq_mask, time_mask, generator)
            elif x.dim() == 5:  # (B, F, 3, S, S)
                x = frame_jitter(x, generator)
            out.append(x)
        return tuple(out)

    return perturb


def joint_scale_crop_flip(crop: tuple[int, int], scale: tuple[float, float] = (0.75, 1.25)):
    """Augmentation for dense targets: one random scale, crop to ``crop`` (H, W) and horizontal flip
    per batch, the same for every input and the label map (nearest for hard labels, bilinear for
    soft labels ``(B, K, H, W)``)."""
    low, high = scale

    def augment(inputs: tuple, targets: torch.Tensor, generator: torch.Generator):
        s = low + (high - low) * _rand(1, generator).item()
        h, w = inputs[0].shape[-2:]
        size = (max(crop[0], round(h * s)), max(crop[1], round(w * s)))
        inputs = tuple(F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in inputs)
        if targets.is_floating_point():  # soft labels (B, K, H, W)
            targets = F.interpolate(targets, size=size, mode="bilinear", align_corners=False)
        else:
            targets = F.interpolate(targets[:, None].float(), size=size, mode="nearest")[:, 0].long()
        top = int(torch.randint(0, size[0] - crop[0] + 1, (1,), generator=generator, device=generator.device))
        left = int(torch.randint(0, size[1] - crop[1] + 1, (1,), generator=generator, device=generator.device))
        window = (..., slice(top, top + crop[0]), slice(left, left + crop[1]))
        inputs, targets = tuple(x[window] for x in inputs), targets[window]
        if _rand(1, generator).item() < 0.5:
            inputs, targets = tuple(x.flip(-1) for x in inputs), targets.flip(-1)
        return inputs, targets

    return augment


def modality_dropout(features: tuple[torch.Tensor, torch.Tensor], p: float,
                     generator: torch.Generator | list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero, per sample and with probability ``p``, the features of one of the two modalities
    (chosen with probability ½ each; never both). ``features`` are ``(B, ...)`` tensors of α and β,
    or ``(S, B, ...)`` of S stacked members with ``generator`` a list of S generators: member s draws
    from its own, the numbers it draws alone.

    Called inside a student's forward pass in training mode. The library's ``Student`` passes the
    generator(s) of the members being trained (``models.drawing``); ``generator=None`` draws from the
    global generator of the features' device, which the training loop seeds and checkpoints for
    networks trained one at a time (the segmentation student).
    """
    fa, fb = features
    if p == 0:
        return fa, fb
    if isinstance(generator, list):  # (S, B): member s's row from its own generator
        def draw():
            return torch.stack([torch.rand(fa.shape[1], generator=g, device=g.device) for g in generator])
    else:
        def draw():
            return torch.rand(fa.shape[0], generator=generator, device=fa.device if generator is None else
                              generator.device)
    drop = draw().to(fa.device) < p  # (B,) or (S, B)
    which = draw().to(fa.device) < 0.5  # True: drop α
    shape = drop.shape + (1,) * (fa.dim() - drop.dim())
    return fa * ~(drop & which).view(shape), fb * ~(drop & ~which).view(shape)
