"""Every T and augmentation: one contract (inputs, generator) -> inputs, reproducible from the generator."""

import pytest
import torch

from mke_experiments import perturbations as P


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def batch():
    torch.manual_seed(1)
    return (torch.rand(4, 3, 12, 16), torch.randn(4, 1, 12, 16))  # RGB-like and depth-like


def spec_augment_loop(x, freq_mask, time_mask, generator):
    """The per-clip loop the vectorised version replaced (the reference)."""
    x = x.clone()
    b, m, t = x.shape[0], x.shape[-2], x.shape[-1]
    f0 = torch.randint(0, max(1, m - freq_mask), (b,), generator=generator)
    t0 = torch.randint(0, max(1, t - time_mask), (b,), generator=generator)
    for i in range(b):
        x[i, :, f0[i]:f0[i] + freq_mask, :] = 0.0
        x[i, :, :, t0[i]:t0[i] + time_mask] = 0.0
    return x


@pytest.mark.parametrize("shape, freq_mask, time_mask", [((5, 1, 16, 40), 4, 9), ((3, 1, 8, 10), 8, 40),
                                                         ((2, 1, 6, 30), 0, 3)])
def test_vectorised_spec_augment_equals_the_per_clip_loop(shape, freq_mask, time_mask):
    x = torch.randn(shape)
    expected = spec_augment_loop(x, freq_mask, time_mask, gen(3))
    got = P.spec_augment(x, freq_mask, time_mask, gen(3))
    assert torch.equal(got, expected)
    assert (got == 0).any() or freq_mask == 0


def audio_video():
    torch.manual_seed(2)
    return (torch.randn(4, 1, 12, 16), torch.rand(4, 2, 3, 8, 8))  # log-mel (B, 1, M, T), frames (B, F, 3, S, S)


@pytest.mark.parametrize("make, inputs", [(lambda: P.input_noise(0.3), batch), (lambda: P.photometric(0.2), batch),
                                          (lambda: P.audio_visual(2, 3), audio_video)])
def test_each_perturbation_is_a_function_of_its_generator_and_leaves_the_inputs_alone(make, inputs):
    T, inputs = make(), inputs()
    before = tuple(x.clone() for x in inputs)
    a, b, c = T(inputs, gen(7)), T(inputs, gen(7)), T(inputs, gen(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # same generator state, same draw
    assert any(not torch.equal(x, y) for x, y in zip(a, c))  # another state, another draw
    assert all(torch.equal(x, y) for x, y in zip(inputs, before))  # never in place
    assert all(x.shape == y.shape and x.device == y.device for x, y in zip(a, inputs))


def test_input_noise_zero_is_the_identity_and_photometric_keeps_depth_noise_separate():
    inputs = batch()
    assert P.input_noise(0.0)(inputs, gen()) is inputs
    rgb, depth = P.photometric(0.0)(inputs, gen())
    assert torch.equal(depth, inputs[1]) and not torch.equal(rgb, inputs[0])


def test_joint_crop_flip_moves_labels_with_the_pixels():
    h, w = 20, 24
    image = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).expand(2, 1, h, w).contiguous()
    labels = image[:, 0].long()  # the label of a pixel is its own index: alignment is checkable
    augment = P.joint_scale_crop_flip((12, 16), scale=(1.0, 1.0))
    for seed in range(6):
        (x,), y = augment((image,), labels, gen(seed))
        assert x.shape == (2, 1, 12, 16) and y.shape == (2, 12, 16)
        assert torch.equal(x[:, 0].long(), y)


def test_modality_dropout_drops_one_modality_at_rate_p_and_never_both():
    fa, fb = torch.ones(4000, 5), torch.ones(4000, 3)
    a, b = P.modality_dropout((fa, fb), 0.3, gen(0))
    dropped_a, dropped_b = (a == 0).all(dim=1), (b == 0).all(dim=1)
    assert not (dropped_a & dropped_b).any()
    assert (dropped_a | dropped_b).float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert dropped_a.float().mean().item() == pytest.approx(0.15, abs=0.03)
    assert P.modality_dropout((fa, fb), 0.0, gen(0)) == (fa, fb)
    maps = P.modality_dropout((torch.ones(8, 2, 3, 3), torch.ones(8, 2, 3, 3)), 0.9, gen(1))  # (B, C, h, w)
    assert all(((m == 0).flatten(1).all(1) | (m == 1).flatten(1).all(1)).all() for m in maps)


def test_bad_strengths_are_user_errors():
    with pytest.raises(ValueError, match="mke.input_noise"):
        P.input_noise(-0.1)
    with pytest.raises(ValueError, match="data.freq_mask"):
        P.audio_visual(-1, 3)


@pytest.mark.gpu
def test_perturbations_draw_on_the_device_of_their_generator():
    device = torch.device("cuda")
    inputs = tuple(x.to(device) for x in batch())
    g = torch.Generator(device).manual_seed(0)
    for T in (P.input_noise(0.3), P.photometric(0.2)):
        assert all(x.device.type == "cuda" for x in T(inputs, g))
    audio = (torch.randn(2, 1, 8, 20, device=device), torch.rand(2, 2, 3, 8, 8, device=device))
    assert all(x.device.type == "cuda" for x in P.audio_visual(2, 3)(audio, g))
