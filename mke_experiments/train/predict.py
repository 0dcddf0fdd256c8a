"""Predictions of a trained network, batch by batch, in evaluation mode."""

from __future__ import annotations

import torch
from torch import nn

from mke_experiments.train.loader import Batches, index_batches


def _batches(inputs: tuple, device, batch_size: int, workers: int):
    """The inputs in consecutive batches on ``device`` (``loader.Batches``)."""
    return Batches(inputs, device, workers)(index_batches(len(inputs[0]), batch_size))


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: tuple, device, batch_size: int = 64, workers: int = 0) -> torch.Tensor:
    """(n, K, ...) logits on CPU, evaluation mode, in batches (``workers`` loader processes for cache rows)."""
    model.eval()
    return torch.cat([model(*x).float().cpu() for x in _batches(inputs, device, batch_size, workers)])


@torch.no_grad()
def predict(model: nn.Module, inputs: tuple, device, batch_size: int = 64, confidence: bool = False,
            workers: int = 0):
    """(n, ...) predicted classes on CPU (argmax over the class axis 1), batch by batch.

    Unlike ``predict_logits`` it never holds all logits: dense predictions stay small. With
    ``confidence`` it returns ``(classes, top-class softmax probability as float16)``.
    """
    model.eval()
    classes, top = [], []
    for x in _batches(inputs, device, batch_size, workers):
        logits = model(*x)
        classes.append(logits.argmax(1).to(torch.int16).cpu())
        if confidence:
            top.append(torch.softmax(logits.float(), dim=1).amax(dim=1).half().cpu())
    return (torch.cat(classes), torch.cat(top)) if confidence else torch.cat(classes)
