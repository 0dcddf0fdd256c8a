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


@pytest.fixture(autouse=True)
def back_to_one_thread(one_torch_thread):
    """A CLI called in-process sets torch's threads for its task (every core for the image and audio
    tasks, ``mke_theory.console``); the next test starts on one thread again."""
    yield
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
