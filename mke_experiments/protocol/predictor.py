"""A trained student (or teacher) with everything the run fitted on the data: ready for raw inputs.

The networks of a run are trained on standardised features and encoded classes 0 … K−1. A
``Predictor`` carries both with the network: ``predict_proba(alpha, beta)`` standardises raw
inputs with the training statistics of the run, and ``predict`` maps the winning class back to
the bundle's own label values (integers or strings). Runs with ``--out`` save one per method and
seed under ``models/`` (vector tasks), and ``mke-exp predict RUN --data F.npz`` applies one.

A model file (``FORMAT`` 2) holds tensors and plain values only: the network's weights (its state dict), its
class's name and constructor arguments (``models.network_spec``), the standardisation, the classes and the run's
info. ``load`` reads it with ``torch.load(..., weights_only=True)`` and builds the network again from its name
(``models.build_network``): opening a model file, whoever sent it, never runs code. A network of your own class
is named when it is loaded (``model_class=``) or registered (``models.register_model``). Files of format 1 (a
pickled whole network, which could run any code when opened) are refused; ``convert_legacy`` converts one from a
source you trust.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mke_theory.core.errors import MKEError

FORMAT = 2  # 1: a pickled whole network (torch.load could run code); 2: state dict, network name and arguments


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
            x = _numbers(name, raw[name])
            x = x[:, None] if x.ndim == 1 else x
            if len(x) == 0:
                raise MKEError(f"{name} has no rows (shape {x.shape}); pass at least one sample to predict")
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
        """Write the model file (``FORMAT`` 2: tensors and plain values only, see the module docstring)."""
        from mke_experiments.models import network_spec
        from mke_theory.core.records import atomic_write

        state = dict(format=FORMAT, network=network_spec(self.model),
                     state={k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                     modalities=int(self.modalities), standardization=_plain(self.standardization, "standardization"),
                     classes=_plain(self.classes, "classes"), info=_plain(self.info, "info"))
        atomic_write(Path(path), lambda f: torch.save(state, f))

    @classmethod
    def load(cls, path, model_class=None) -> Predictor:
        """The predictor saved at ``path``, its network built again from the name and arguments the file stores
        (the library's networks, and classes registered with ``models.register_model``). ``model_class``: for a
        network of your own class that is not registered, a callable with no arguments that returns a fresh one
        (as ``fit_mke``'s ``student=``); the file's weights are loaded into it. Nothing in the file is executed."""
        from mke_experiments.models import build_network
        from mke_experiments.train.checkpoints import ObjectsInFile, load_plain

        try:
            state = load_plain(path)
        except FileNotFoundError:
            raise MKEError(f"{path}: no such model file") from None
        except ObjectsInFile as e:
            raise MKEError(f"{e}, so it is not opened, as that could run code (a model file of format 1, written "
                           f"before MKE stored only weights, or a file not written by this library); if you trust "
                           f"its source, convert it once with mke_experiments.protocol.predictor.convert_legacy("
                           f"{str(path)!r}, 'model.pt')") from None
        except Exception as e:  # torch raises several types on a damaged file
            raise MKEError(f"{path}: not a readable model file ({type(e).__name__})") from None
        keys = {"network", "state", "modalities", "standardization", "classes", "info"}
        if (not isinstance(state, dict) or state.get("format") != FORMAT or not keys <= set(state)
                or not isinstance(state["network"], dict) or state["modalities"] not in (1, 2)):
            raise MKEError(f"{path}: not a model file of this library (format {FORMAT})")
        try:
            with torch.random.fork_rng(devices=[]):  # building initialises weights: leave torch's generator alone
                model = build_network(state["network"], model_class, source=str(path))
            model.load_state_dict(state["state"])
        except MKEError:
            raise
        except Exception as e:  # a network of other arguments than the weights, or a file edited by hand
            text = str(e).splitlines()[0] if str(e) else repr(e)
            raise MKEError(f"{path}: its weights do not fit the network {state['network'].get('network')} "
                           f"built again from it ({type(e).__name__}: {text[:300]}); with model_class=, pass the "
                           f"class that was saved") from None
        return cls(model.eval(), state["modalities"], state["standardization"], state["classes"], state["info"])


def choose_model(run, method: str = "mm_student", seed: int | None = None, config_hash: str | None = None) -> Path:
    """The model file ``mke-exp predict RUN`` applies: RUN itself when it is a file; in a run folder, the file of
    ``method`` (a name, never a pattern) and ``seed`` (default: the lowest) under ``models/``, whose names are the
    records' (``records.run_stem``: ``<run>__<method>__seed<seed>__<config hash>``). Models of several runs (run
    names or config hashes) in one folder are an error listing them, unless ``config_hash`` (or a prefix of it)
    picks one: a file name's order never decides."""
    run = Path(run)
    if run.is_file():
        if seed is not None or config_hash is not None:
            raise MKEError(f"{run} is a model file, the one applied; --seed and --config-hash choose among the models "
                           f"of a run folder: pass the folder, or leave them out")
        return run
    found = [m for m in map(_model_name, sorted((run / "models").glob("*.pt"))) if m is not None]
    if not found:
        raise MKEError(f"{run}/models holds no model; models are saved by `mke-exp run ... --out` for tasks with "
                       f"vector inputs (arrays, mfeat)")
    mine = [m for m in found if m["method"] == method]
    if not mine:
        raise MKEError(f"{run}/models holds no model of method {method!r} (a name, not a pattern); its methods: "
                       f"{', '.join(sorted({m['method'] for m in found}))}; pass one of them as --method")
    if config_hash is not None:
        hashes = sorted({m["config_hash"] for m in mine})
        mine = [m for m in mine if m["config_hash"].startswith(config_hash)]
        if not mine:
            raise MKEError(f"{run} holds no {method} model of config hash {config_hash!r}; its config hashes: "
                           f"{', '.join(hashes)}")
    runs = sorted({(m["run"], m["config_hash"]) for m in mine})
    if len(runs) > 1:
        seeds = {r: ", ".join(str(m["seed"]) for m in mine if (m["run"], m["config_hash"]) == r) for r in runs}
        listed = "; ".join(f"{name} config {h} (seed(s) {seeds[name, h]})" for name, h in runs)
        raise MKEError(f"{run} holds {method} models of {len(runs)} runs: {listed}; choose one with --config-hash HASH "
                       f"(or pass its model file as RUN)")
    by_seed = {m["seed"]: m["path"] for m in mine}
    if seed is not None and seed not in by_seed:
        raise MKEError(f"{run} holds {method} for seed(s) {', '.join(map(str, sorted(by_seed)))}, not {seed}")
    return by_seed[min(by_seed) if seed is None else seed]


def _model_name(path: Path) -> dict | None:
    """The run name, method, seed and config hash in a model file's name (``records.run_stem``); None for a name
    of another form."""
    parts = path.stem.split("__")
    if len(parts) < 4 or not parts[-2].startswith("seed") or not parts[-2][4:].isdecimal():
        return None
    return dict(path=path, run=parts[0], method=parts[1], seed=int(parts[-2][4:]), config_hash=parts[-1])


def convert_legacy(path, out) -> Predictor:
    """Convert a model file of format 1 (a pickled whole network) at ``path`` into one of ``FORMAT`` 2 at ``out``;
    the converted predictor. Only for files you trust: reading format 1 unpickles the file, which runs whatever
    code it holds. A network of your own class is stored by name (``Predictor.load(out, model_class=...)``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise MKEError(f"{path}: no such model file") from None
    except Exception as e:
        raise MKEError(f"{path}: not a readable model file ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != 1 or not isinstance(state.get("model"), nn.Module):
        raise MKEError(f"{path}: not a model file of format 1 (a pickled network); nothing to convert")
    from mke_experiments.models import recover_spec

    recover_spec(state["model"])
    predictor = Predictor(state["model"].eval(), state["modalities"], state["standardization"], state["classes"],
                          state["info"])
    predictor.save(out)
    return predictor


def _numbers(name: str, values) -> np.ndarray:
    """``values`` as float64, or an ``MKEError`` naming the array: strings, complex numbers and other values that
    are not real numbers are refused (``np.asarray(..., float64)`` would parse strings and drop imaginary parts
    with only a warning), as are single numbers."""
    x = np.asarray(values)
    kind = x.dtype.kind
    if kind in "US":
        raise MKEError(f"{name} holds strings (dtype {x.dtype}), not numbers; pass the raw numeric features")
    if kind == "c":
        raise MKEError(f"{name} holds complex numbers (dtype {x.dtype}); the network takes real features: pass the "
                       f"part it was trained on (e.g. np.real({name}) or np.abs({name}))")
    if kind not in "biufO":
        raise MKEError(f"{name} holds values of dtype {x.dtype}, not numbers; pass the raw numeric features")
    if kind == "O":
        if any(isinstance(v, (str, bytes, complex, np.complexfloating)) for v in x.flat):
            raise MKEError(f"{name} holds values that are not real numbers (strings or complex numbers); pass the "
                           f"raw numeric features")
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError):
            raise MKEError(f"{name} holds values that are not numbers; pass the raw numeric features") from None
    if x.ndim == 0:
        raise MKEError(f"{name} is a single number; pass an array of shape (n, d), one row per sample")
    return x.astype(np.float64, copy=False)


def _plain(value, key: str):
    """``value`` (standardisation, classes, info) with numpy scalars and arrays as Python numbers and lists, the
    values a model file may hold; anything else is an error naming ``key``."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, key) for v in value]
    if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
        return {k: _plain(v, key) for k, v in value.items()}
    raise MKEError(f"the predictor's {key} holds a {type(value).__name__}; a model file holds numbers, strings, "
                   f"lists and dicts only")
