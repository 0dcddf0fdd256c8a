"""Fixtures shared by every test module."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny networks on tiny data: on a shared two-core machine torch's intra-op threads only add
    contention (measured: the leakage canaries took 8 min with the default threads, 42 s with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
