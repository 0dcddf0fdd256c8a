"""Frozen dataclass configs, one per component, and ``--set a.b=v`` overrides.

A task owns its data config class and its defaults (a preset is a task's ``ExperimentConfig``);
overrides may only name fields that exist, and values are converted to the field's type.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from mke_theory.errors import MKEError


@dataclass(frozen=True)
class ModelConfig:
    hidden: int = 128  # width of the feature vector of every encoder
    dropout: float = 0.2  # dropout before the classifier head (a perturbation T of regularised students)
    width: int = 16  # channels of the first convolution of the image / spectrogram encoders
    fusion: str = "late"  # late: sum of per-modality heads; mid: concatenated features → head
    modality_dropout: float = 0.0  # per sample, drop α or β features with this probability (regularised only)
    pretrained: bool = False  # ImageNet weights for torchvision backbones (downloads them: needs a network)
    weights: str = ""  # or a local file of backbone weights (a torchvision ResNet state dict)
    backbone: str = "resnet18"  # torchvision ResNet of the segmentation networks: resnet18, resnet34, resnet50
    channels_last: bool = False  # memory format of image tensors (a speed option on GPUs)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adam"  # adam | sgd (momentum 0.9)
    selection: str = "val"  # val: best validation accuracy; agreement: label-free, teacher agreement; last
    amp: bool = True  # bfloat16 autocast on CUDA; ignored on CPU
    checkpoint: bool = True  # a checkpoint per epoch, resumed automatically


@dataclass(frozen=True)
class MKEConfig:
    pseudo_labels: str = "hard"  # hard: argmax; soft: softmax(logits / temperature)
    temperature: float = 1.0
    loss_form: str = "consistency"  # consistency: L_pl + γ·L_reg (Eq. 3); perturbed_ce: CE on f(T(x))
    gamma: float = 1.0
    input_noise: float = 0.5  # a: x + a·mean|x|·ε on every modality of regularised students
    confidence_threshold: float = 0.8  # mm_student_confident: L_pl only where the teacher's top probability ≥ this


@dataclass(frozen=True)
class ExperimentConfig:
    task: str
    data: Any  # the task's own frozen data config
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mke: MKEConfig = field(default_factory=MKEConfig)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, default=str)


CHOICES = {  # fields whose values come from a fixed set
    ("model", "fusion"): ("late", "mid"),
    ("model", "backbone"): ("resnet18", "resnet34", "resnet50"),
    ("train", "optimizer"): ("adam", "sgd"),
    ("train", "selection"): ("val", "agreement", "last"),
    ("mke", "pseudo_labels"): ("hard", "soft"),
    ("mke", "loss_form"): ("consistency", "perturbed_ce"),
}


def _convert(value: str, current, key: str):
    if isinstance(current, bool):
        lowered = value.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise MKEError(f"{key} takes true or false, got {value!r}")
    try:
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
    except ValueError:
        kind = "an integer" if isinstance(current, int) else "a number"
        raise MKEError(f"{key} takes {kind}, got {value!r}") from None
    if isinstance(current, tuple):
        return tuple(type(current[0])(v) if current else v for v in value.split(",") if v)
    if current is None or isinstance(current, str):
        return value
    raise MKEError(f"{key} cannot be set from the command line")


def apply_overrides(config, overrides) -> Any:
    """Return ``config`` with ``["train.epochs=5", "model.fusion=mid"]`` applied.

    Unknown keys and values of the wrong type raise ``ValueError`` naming the key.
    """
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise MKEError(f"--set takes KEY=VALUE (e.g. train.epochs=5), got {item!r}")
        config = _set(config, key.strip().split("."), value.strip(), key.strip())
    check(config)
    return config


def _set(node, path, value, key):
    names = [f.name for f in dataclasses.fields(node)]
    if path[0] not in names:
        raise MKEError(f"unknown config key {key!r}; {'.'.join(path[:0]) or 'top-level'} keys here: "
                         f"{', '.join(names)}")
    current = getattr(node, path[0])
    if len(path) == 1:
        if dataclasses.is_dataclass(current):
            first = dataclasses.fields(current)[0].name
            raise MKEError(f"{key} is a group; set one of its fields, e.g. {key}.{first}")
        return dataclasses.replace(node, **{path[0]: _convert(value, current, key)})
    if not dataclasses.is_dataclass(current):
        raise MKEError(f"unknown config key {key!r}: {path[0]} has no fields")
    return dataclasses.replace(node, **{path[0]: _set(current, path[1:], value, key)})


def check(config: ExperimentConfig) -> None:
    """Value checks shared by every task (the task checks its own data fields)."""
    for (group, name), allowed in CHOICES.items():
        value = getattr(getattr(config, group), name)
        if value not in allowed:
            raise MKEError(f"{group}.{name} must be one of {', '.join(allowed)}; got {value!r}")
    t, m, k = config.train, config.model, config.mke
    positive = {"train.epochs": t.epochs, "train.batch_size": t.batch_size, "train.lr": t.lr,
                "model.hidden": m.hidden, "model.width": m.width, "mke.temperature": k.temperature}
    for key, value in positive.items():
        if not value > 0:
            raise MKEError(f"{key} must be > 0, got {value}")
    if not 0 <= k.confidence_threshold <= 1:
        raise MKEError(f"mke.confidence_threshold must lie in [0, 1], got {k.confidence_threshold}")
    for key, value in {"model.dropout": m.dropout, "model.modality_dropout": m.modality_dropout}.items():
        if not 0 <= value < 1:
            raise MKEError(f"{key} must lie in [0, 1), got {value}")
    non_negative = {"mke.gamma": k.gamma, "mke.input_noise": k.input_noise, "train.weight_decay": t.weight_decay}
    for key, value in non_negative.items():
        if value < 0:
            raise MKEError(f"{key} must be >= 0, got {value}")
    validate = getattr(config.data, "validate", None)
    if validate is not None:
        validate()


def resolve_config(task, overrides=(), epochs: int | None = None) -> ExperimentConfig:
    """A task's preset with ``--set`` overrides (and ``--epochs``) applied and checked."""
    cfg = apply_overrides(task.default_config, overrides)
    if epochs is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
    return cfg
