"""The real-data networks' one dropout (``models.stacked.Dropout``): inverted dropout drawn from the members'
own generators. It replaced ``mke_theory.objective.dropout``, which nothing called; these are its tests."""

import pytest
import torch

from mke_experiments.models.stacked import Dropout, drawing


def test_dropout_zeroes_at_rate_p_and_keeps_the_expectation():
    h = torch.ones(200, 100)
    layer = Dropout(0.3).train()
    with drawing(torch.Generator().manual_seed(0)):
        out = layer(h)
    assert (out == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert out.mean().item() == pytest.approx(1.0, abs=0.02)  # kept entries are scaled by 1 / (1 − p)
    assert out.unique().tolist() == [0.0, pytest.approx(1 / 0.7)]


def test_dropout_is_the_identity_in_evaluation_and_at_p_zero():
    h = torch.randn(5, 4)
    assert torch.equal(Dropout(0.5).eval()(h), h)
    with drawing(torch.Generator().manual_seed(0)):
        assert torch.equal(Dropout(0.0).train()(h), h)


def test_stacked_members_draw_their_own_masks():
    """Member s of a stack draws what member s alone draws: its slice equals the same seed's single run."""
    h = torch.ones(3, 50, 20)  # (S, B, d)
    layer = Dropout(0.5).train()
    with drawing([torch.Generator().manual_seed(s) for s in (4, 5, 6)]):
        stacked = layer(h)
    for s, seed in enumerate((4, 5, 6)):
        with drawing(torch.Generator().manual_seed(seed)):
            assert torch.equal(stacked[s], layer(h[s]))
    assert not torch.equal(stacked[0], stacked[1])
