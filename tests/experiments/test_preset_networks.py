"""The segmentation networks of the presets: DeepLabV3+ (``model.seg_head=deeplabv3plus``) on ResNet encoders, the
two-stream student's fusion at both levels, and the default DeepLabV3 networks unchanged by its arrival.

Tiny inputs (2×3×64×64) and ResNet-18 where the head's logic is tested; one ResNet-101 encoder (about 1 s to build).
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from mke_experiments.config import ModelConfig, apply_overrides, record_dict
from mke_experiments.models import segmentation
from mke_experiments.models.segmentation import DeepLabV3PlusHead, SegStudent, SegTeacher, encode, resnet_encoder
from mke_theory.core.errors import MKEError

PLUS = ModelConfig(backbone="resnet18", seg_head="deeplabv3plus")


def _inputs(b=2, h=64, w=64, depth_channels=1):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(b, 3, h, w, generator=gen), torch.randn(b, depth_channels, h, w, generator=gen)


def _keys(model) -> str:
    return hashlib.sha256(repr([(k, tuple(v.shape)) for k, v in model.state_dict().items()]).encode()).hexdigest()[:16]


def test_the_default_deeplabv3_networks_compute_what_they_computed_before_deeplabv3plus():
    """Recorded before the DeepLabV3+ change: same seed, same weights (same state dict keys, so older
    checkpoints still load), same output; a head built in another order or a changed forward breaks it."""
    torch.manual_seed(0)
    teacher = SegTeacher(5, ModelConfig(backbone="resnet18"), 0.1).eval()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = teacher(x)
    assert _keys(teacher) == "0a3a1a921d25901d"
    assert y.shape == (2, 5, 64, 64)
    assert float(y.double().sum()) == pytest.approx(-296.5018922993995, rel=1e-4)
    assert y[0, :, 32, 32].tolist() == pytest.approx(
        [-0.07722267508506775, -0.10615470260381699, 0.06278420984745026, 0.028750140219926834, 0.05932203680276871],
        rel=1e-4, abs=1e-6)
    assert y[1, :, 10, 50].tolist() == pytest.approx(
        [-0.08196593821048737, -0.09482893347740173, 0.05575870722532272, 0.06629470735788345, 0.03546014428138733],
        rel=1e-4, abs=1e-6)

    torch.manual_seed(0)
    student = SegStudent(5, 1, ModelConfig(backbone="resnet18"), 0.1, 0.0).eval()
    torch.manual_seed(2)
    d = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        s = student(x, d)
    assert _keys(student) == "5600e9cd26b4f388"
    assert float(s.double().sum()) == pytest.approx(775.8155355556837, rel=1e-4)
    assert s[0, :, 32, 32].tolist() == pytest.approx(
        [0.0063616749830543995, 0.1095970869064331, 0.15163125097751617, -0.1636863797903061, -0.06606437265872955],
        rel=1e-4, abs=1e-6)


def test_seg_head_enters_the_record_only_when_set():
    """A field added after records existed: the default keeps every existing config hash."""
    assert "seg_head" not in record_dict(ModelConfig())
    assert record_dict(PLUS)["seg_head"] == "deeplabv3plus"


def test_seg_head_and_resnet101_are_settable_and_a_bad_head_is_one_sentence():
    from mke_experiments.tasks import get_task

    cfg = apply_overrides(get_task("nyudv2").default_config, ["model.seg_head=deeplabv3plus",
                                                              "model.backbone=resnet101"])
    assert (cfg.model.seg_head, cfg.model.backbone) == ("deeplabv3plus", "resnet101")
    with pytest.raises(MKEError, match="model.seg_head must be one of deeplabv3, deeplabv3plus"):
        apply_overrides(cfg, ["model.seg_head=deeplabv4"])


@pytest.mark.parametrize("h, w", [(64, 64), (72, 88)])
def test_deeplabv3plus_teacher_and_student_return_logits_at_the_input_size(h, w):
    rgb, depth = _inputs(h=h, w=w, depth_channels=3)
    torch.manual_seed(0)
    teacher = SegTeacher(7, PLUS, 0.1).eval()
    student = SegStudent(7, 3, PLUS, 0.1, 0.2).eval()
    assert isinstance(teacher.head, DeepLabV3PlusHead) and isinstance(student.head, DeepLabV3PlusHead)
    with torch.no_grad():
        assert teacher(rgb).shape == (2, 7, h, w)
        assert student(rgb, depth).shape == (2, 7, h, w)


def test_the_encoder_returns_layer1_features_at_stride_4_and_resnet101_is_dilated_to_stride_8():
    torch.manual_seed(0)
    small = resnet_encoder(3, ModelConfig(backbone="resnet18")).eval()
    big = resnet_encoder(3, ModelConfig(backbone="resnet101")).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        low, high = encode(small, x)
        assert (low.shape, high.shape, small.low_dim) == ((1, 64, 16, 16), (1, 512, 2, 2), 64)
        assert torch.equal(high, small(x))  # the same features as the DeepLabV3 path
        low, high = encode(big, x)
    assert (low.shape, high.shape, big.low_dim, big.out_dim) == ((1, 256, 16, 16), (1, 2048, 8, 8), 256, 2048)


def _zeroing_low_level(monkeypatch, which=None):
    """Make ``encode`` return zero low-level features (of every encoder, or only of ``which``)."""
    real = segmentation.encode

    def encode_without_low(encoder, x):
        low, high = real(encoder, x)
        return (torch.zeros_like(low) if which is None or encoder is which else low), high

    monkeypatch.setattr(segmentation, "encode", encode_without_low)


def test_the_decoder_uses_the_low_level_features(monkeypatch):
    """A head that dropped the layer1 features (or a forward that never passed them) would not notice their loss."""
    rgb, depth = _inputs()
    torch.manual_seed(0)
    teacher = SegTeacher(5, PLUS, 0.0).eval()
    student = SegStudent(5, 1, PLUS, 0.0, 0.0).eval()
    with torch.no_grad():
        t, s = teacher(rgb), student(rgb, depth)
        _zeroing_low_level(monkeypatch)
        assert not torch.allclose(teacher(rgb), t, atol=1e-5)
        assert not torch.allclose(student(rgb, depth), s, atol=1e-5)
        head = teacher.head
        high, low = torch.randn(2, 512, 2, 2), torch.randn(2, 64, 16, 16)
        assert not torch.allclose(head(high, low), head(high, torch.zeros_like(low)), atol=1e-5)


def test_the_student_fuses_both_streams_at_both_levels(monkeypatch):
    rgb, depth = _inputs()
    torch.manual_seed(0)
    student = SegStudent(5, 1, PLUS, 0.0, 0.0).eval()
    with torch.no_grad():
        base = student(rgb, depth)
        assert not torch.allclose(student(rgb.flip(-1), depth), base, atol=1e-5)
        assert not torch.allclose(student(rgb, depth.flip(-1)), base, atol=1e-5)
        for stream in (student.rgb, student.depth):  # each stream's layer1 features reach the decoder
            with monkeypatch.context() as m:
                _zeroing_low_level(m, which=stream)
                assert not torch.allclose(student(rgb, depth), base, atol=1e-5)


def test_modality_dropout_drops_one_whole_stream_per_sample_at_both_levels():
    """With p near 1 every training sample loses one stream: its output then ignores that stream's input
    entirely (a dropout applied to layer4's features only would leave layer1's in); never both streams."""
    torch.manual_seed(0)
    student = SegStudent(5, 1, PLUS, 0.0, 0.99).train()
    for module in student.modules():  # batch statistics would mix the samples: keep only the student's own mode
        if module is not student:
            module.eval()
    rgb, depth = _inputs(b=8)
    other_rgb, other_depth = _inputs(b=8)[0].flip(-1), _inputs(b=8)[1].flip(-2)

    def run(a, b):
        torch.manual_seed(5)
        with torch.no_grad():
            return student(a, b)

    base = run(rgb, depth)
    rgb_ignored = [torch.equal(o, b) for o, b in zip(run(other_rgb, depth), base)]
    depth_ignored = [torch.equal(o, b) for o, b in zip(run(rgb, other_depth), base)]
    assert all(r != d for r, d in zip(rgb_ignored, depth_ignored)), (rgb_ignored, depth_ignored)
    assert any(rgb_ignored) and any(depth_ignored)
    student.eval()  # and none at evaluation
    with torch.no_grad():
        assert all(not torch.equal(o, b) for o, b in zip(student(other_rgb, depth), student(rgb, depth)))


@pytest.mark.gpu
def test_the_deeplabv3plus_student_trains_a_bf16_step_on_cuda():
    torch.manual_seed(0)
    student = SegStudent(5, 3, PLUS, 0.1, 0.5).cuda().train()
    rgb, depth = (x.cuda() for x in _inputs(b=4, depth_channels=3))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = student(rgb, depth)
    assert logits.shape == (4, 5, 64, 64) and torch.isfinite(logits).all()
    logits.float().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in student.head.parameters())
