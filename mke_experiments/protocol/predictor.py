"""A trained student (or teacher) with everything the run fitted on the data: ready for raw inputs.

The networks of a run are trained on standardised features and encoded classes 0 … K−1. A
``Predictor`` carries both with the network: ``predict_proba(alpha, beta)`` standardises raw
inputs with the training statistics of the run, and ``predict`` maps the winning class back to
the bundle's own label values (integers or strings). Runs with ``--out`` save one per method and
seed under ``models/`` (vector tasks), and ``mke-exp predict RUN --data F.npz`` applies one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mke_theory.core.errors import MKEError

FORMAT = 1


@dataclass
class Predictor:
    """A network plus its preprocessing.

    model : the trained network (evaluation mode) taking ``modalities`` tensors (α, or α and β).
    standardization : modality -> ``{"scale", "mean", "std"}`` per feature, as the run fitted them
        (z = (x / scale − mean) / std); None when the run's inputs were not standardised.
    classes : the original label value of each class index (None: the indices are the labels).
    """

    model: nn.Module
    modalities: int
    standardization: dict | None = None
    classes: list | None = None
    info: dict = field(default_factory=dict)  # task, method, seed, config hash of the run

    def transform(self, alpha, beta=None) -> tuple[torch.Tensor, ...]:
        """The network's inputs from raw arrays: checked, standardised, float32 tensors."""
        if self.modalities == 2 and beta is None:
            raise MKEError(f"this {self.info.get('method', 'model')} takes two modalities: pass alpha and beta")
        raw = {"alpha": alpha, "beta": beta}
        out = []
        for name in ("alpha", "beta")[: self.modalities]:
            x = np.asarray(raw[name], dtype=np.float64)
            x = x[:, None] if x.ndim == 1 else x
            stats = (self.standardization or {}).get(name)
            if stats is not None:
                from mke_theory.core.split import zscore

                if x.ndim != 2 or x.shape[1] != len(stats["scale"]):
                    raise MKEError(f"{name} must be (n, {len(stats['scale'])}) like the run's training data, "
                                   f"got shape {x.shape}")
                x = zscore(x, stats["scale"], stats["mean"], stats["std"])
            if not np.all(np.isfinite(x)):
                raise MKEError(f"{name} holds NaN or infinite values (after standardisation); clean them first")
            out.append(torch.from_numpy(x.astype(np.float32)))
        if len({len(t) for t in out}) > 1:
            raise MKEError(f"alpha has {len(out[0])} rows but beta has {len(out[1])}; one per sample")
        return tuple(out)

    @torch.no_grad()
    def predict_proba(self, alpha, beta=None, batch_size: int = 1024) -> np.ndarray:
        """(n, K) class probabilities (softmax of the logits), columns in the order of ``classes``."""
        inputs = self.transform(alpha, beta)
        self.model.eval()
        device = next(self.model.parameters()).device
        probs = [torch.softmax(self.model(*(x[i:i + batch_size].to(device) for x in inputs)).float(), dim=1).cpu()
                 for i in range(0, len(inputs[0]), batch_size)]
        return torch.cat(probs).numpy()

    def predict(self, alpha, beta=None) -> np.ndarray:
        """(n,) predicted labels in the bundle's own values."""
        return self.labels(self.predict_proba(alpha, beta))

    def labels(self, probs: np.ndarray) -> np.ndarray:
        """The label value of each row's most probable class."""
        index = probs.argmax(axis=1)
        return index if self.classes is None else np.asarray(self.classes)[index]

    def save(self, path) -> None:
        from mke_theory.core.records import atomic_write

        state = dict(format=FORMAT, model=copy.deepcopy(self.model).cpu(), modalities=self.modalities,
                     standardization=self.standardization, classes=self.classes, info=self.info)
        atomic_write(Path(path), lambda f: torch.save(state, f))

    @classmethod
    def load(cls, path) -> Predictor:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except FileNotFoundError:
            raise MKEError(f"{path}: no such model file") from None
        except Exception as e:  # torch raises several types on a damaged file
            raise MKEError(f"{path}: not a readable model file ({type(e).__name__})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise MKEError(f"{path}: not a model file of this library (format {FORMAT})")
        return cls(state["model"].eval(), state["modalities"], state["standardization"], state["classes"],
                   state["info"])
