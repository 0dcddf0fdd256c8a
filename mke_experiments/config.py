"""Frozen dataclass configs, one per component, and ``--set a.b=v`` overrides.

A task owns its data config classes and its defaults (a preset is a task's ``ExperimentConfig``):
``data`` holds what a run reads (split, classes, crops, strengths of T) and ``prepare`` what
``mke-exp prepare`` bakes into a cache (frame counts, sizes, mel bands). A run never trusts its
``prepare`` settings: they are read back from the cache's manifest, and an explicit ``--set
prepare.x=v`` that the cache contradicts is an error. Overrides may only name fields that exist;
values are converted to the field's type and checked against the limits declared once, on the
field (``limit``), which the command line reuses (``click_type``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from mke_theory.core.errors import MKEError
from mke_theory.core.methods import LOSS_FORMS

NAME_PATTERN = re.compile(r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*")  # ExperimentConfig.name: safe in a file name
# (and no "__", which separates the parts of the run's file names)


def check_name(name: str) -> str:
    """``name`` if it can name a run's records (``NAME_PATTERN``), else a one-sentence ``MKEError``."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise MKEError(f"name {name!r} names the record files, so it may hold only letters, digits and single - or _ "
                       "between them (e.g. breast-cancer)")
    return name


def limit(default, low=None, high=None, *, low_open: bool = False, high_open: bool = False, choices=None,
          record: bool = True):
    """A dataclass field with its allowed values declared once: a range (closed unless ``*_open``;
    numbers must be finite) or a tuple of ``choices``. ``record=False`` marks a field that says how a
    run is carried out, not what it computes (e.g. how often it checkpoints): it is left out of the
    record's config and hash (``record_dict``), so changing it never retrains or orphans a record.
    ``record="if_set"`` marks a field added after records existed whose default computes what the runs
    before it computed (e.g. early stopping, off): it enters the record only when set to another value,
    so the records of its default keep their config and hash."""
    return field(default=default, metadata=dict(low=low, high=high, low_open=low_open, high_open=high_open,
                                                choices=choices, record=record))


def record_dict(config) -> dict:
    """``dataclasses.asdict(config)`` without the fields declared ``record=False`` (and those declared
    ``record="if_set"`` at their default): what a record stores."""
    out = {}
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        record = spec.metadata.get("record", True)
        if not record or (record == "if_set" and value == spec.default):
            continue
        out[spec.name] = record_dict(value) if dataclasses.is_dataclass(value) else copy.deepcopy(value)
    return out


def check_field(key: str, value, spec: dataclasses.Field) -> None:
    """Raise ``MKEError`` naming ``key`` when ``value`` breaks the field's declared limits."""
    meta = spec.metadata
    if meta.get("choices") is not None:
        if value not in meta["choices"]:
            raise MKEError(f"{key} must be one of {', '.join(map(str, meta['choices']))}; got {value!r}")
        return
    low, high = meta.get("low"), meta.get("high")
    if low is None and high is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MKEError(f"{key} must be a finite number, got {value!r}")
    too_low = low is not None and (value <= low if meta["low_open"] else value < low)
    too_high = high is not None and (value >= high if meta["high_open"] else value > high)
    if too_low or too_high:
        left = "(" if meta["low_open"] else "["
        right = ")" if meta["high_open"] else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise MKEError(f"{key} must lie in {span}, got {value!r}")


def check_limits(node, prefix: str) -> None:
    """Every declared limit of a config dataclass (and of the dataclasses inside it)."""
    for spec in dataclasses.fields(node):
        value = getattr(node, spec.name)
        if dataclasses.is_dataclass(value):
            check_limits(value, f"{prefix}{spec.name}.")
        else:
            check_field(f"{prefix}{spec.name}", value, spec)


def click_type(config_class, name: str):
    """The click parameter type of a config field, from its declared limits (one home for a limit)."""
    import click

    spec = {f.name: f for f in dataclasses.fields(config_class)}[name]
    meta, integer = spec.metadata, isinstance(spec.default, int)
    if meta.get("choices") is not None:
        return click.Choice(list(meta["choices"]))
    kind = click.IntRange if integer else click.FloatRange
    kw = {} if integer else dict(min_open=meta["low_open"], max_open=meta["high_open"])
    return kind(meta.get("low"), meta.get("high"), **kw)


@dataclass(frozen=True)
class ModelConfig:
    hidden: int = limit(128, 1)  # width of the feature vector of every encoder
    dropout: float = limit(0.2, 0, 1, high_open=True)  # before the classifier head (a T of regularised students)
    width: int = limit(16, 1)  # channels of the first convolution of the small image / spectrogram encoders
    fusion: str = limit("late", choices=("late", "mid"))  # late: sum of per-modality heads; mid: concatenated features
    modality_dropout: float = limit(0.0, 0, 1, high_open=True)  # per sample, drop α or β features (regularised only)
    pretrained: bool = False  # ImageNet weights for torchvision backbones (downloads them: needs a network)
    weights: str = ""  # or a local file of backbone weights (a torchvision ResNet state dict)
    backbone: str = limit("resnet18", choices=("resnet18", "resnet34", "resnet50", "resnet101"))  # torchvision ResNet
    # (resnet50/101: dilated to output stride 8, as DeepLab does)
    seg_head: str = limit("deeplabv3", choices=("deeplabv3", "deeplabv3plus"), record="if_set")  # segmentation
    # head (nyudv2): ASPP alone, or DeepLabV3+ (ASPP + a decoder on the stride-4 features); added later, so the
    # records of the default keep their config hash


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = limit(50, 1)
    batch_size: int = limit(128, 2)  # batch norm cannot train on one sample
    lr: float = limit(1e-3, 0, low_open=True)
    weight_decay: float = limit(1e-4, 0)
    optimizer: str = limit("adam", choices=("adam", "sgd", "adamw"))  # adamw: Adam with decoupled weight decay
    momentum: float = limit(0.9, 0, 1, high_open=True, record="if_set")  # of sgd (added later: 0.9 was fixed)
    schedule: str = limit("none", choices=("none", "step", "cosine", "poly"), record="if_set")  # the learning
    # rate of each epoch, a function of the epoch alone (optim.learning_rate): step: lr·step_gamma^⌊epoch/step_size⌋
    # (torch's StepLR); cosine: lr·(1 + cos(π·epoch/epochs))/2; poly: lr·(1 − epoch/epochs)^poly_power
    step_size: int = limit(30, 1, record="if_set")  # schedule=step: epochs between two decays
    step_gamma: float = limit(0.1, 0, 1, low_open=True, record="if_set")  # schedule=step: factor of each decay
    poly_power: float = limit(0.9, 0, low_open=True, record="if_set")  # schedule=poly (DeepLab's 0.9)
    selection: str = limit("val", choices=("val", "agreement", "last"))  # val: best validation score; agreement:
    # label-free, agreement with the teacher on a held-out tenth of D_u; last: the last epoch
    amp: bool = True  # bfloat16 autocast on CUDA; ignored on CPU
    checkpoint: bool = True  # checkpoints (train.fit), resumed automatically
    checkpoint_every_s: float = limit(60.0, 0, record=False)  # write one once this many seconds passed since the
    # last (0: every epoch), and always after the last epoch: a kill loses at most this much training
    workers: int = limit(2, 0, record=False)  # data-loader processes for data read from a prepared cache (0: the
    # training process reads); in-memory data (mfeat, arrays, TwoMoon) is sliced directly and needs none
    prefetch: int = limit(4, 1, record=False)  # batches each loader process reads ahead
    early_stopping: int = limit(0, 0, record="if_set")  # patience: a member stops once its selection score has not
    # improved for this many epochs (0: off; needs model selection: train.selection=val or agreement)
    log_every: int = limit(0, 0, record=False)  # a line per member on stderr every this many epochs (0: none)


@dataclass(frozen=True)
class MKEConfig:
    pseudo_labels: str = limit("hard", choices=("hard", "soft"))  # hard: argmax; soft: softmax(logits / temperature)
    temperature: float = limit(1.0, 0, low_open=True)
    loss_form: str = limit("consistency", choices=LOSS_FORMS)  # Eq. (3), or CE on f(T(x))
    gamma: float = limit(1.0, 0)
    input_noise: float = limit(0.5, 0)  # a: x + a·mean|x|·ε on every modality of regularised students
    confidence_threshold: float = limit(0.8, 0, 1)  # mm_student_confident: L_pl only where the teacher's top
    # probability reaches this (the library's choice; FixMatch uses 0.95 on images)


@dataclass(frozen=True)
class ExperimentConfig:
    task: str
    data: Any  # the task's run-time data config
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mke: MKEConfig = field(default_factory=MKEConfig)
    prepare: Any = None  # the task's prepare-time config (None: the task reads its data directly)
    name: str = limit("", record=False)  # what records and tables call the run's data (mke-exp run --name),
    # "": the task's name. A label, not what a run computes: records keep it as their ``task`` (and file
    # names), while their config still says ``task`` (which task trained them) and keeps its hash

    def __post_init__(self):
        if self.name:
            check_name(self.name)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, default=str)


class FileSetting(str):
    """One setting of a config file (``config_files``) as a ``--set`` item (``"train.lr=0.01"``) that also
    carries its ``key``, the value YAML gave (``raw``: a number, a bool, a list...), the file (``source``,
    named in every error about it) and the file's ``fill_in`` (key -> why the user must set it). Code that
    reads ``--set`` items as text reads it as one; ``apply_overrides`` applies ``raw``."""

    def __new__(cls, key: str, raw, source: str, fill_in=None):
        self = super().__new__(cls, f"{key}={_text(raw)}")
        self.key, self.raw, self.source, self.fill_in = key, raw, source, dict(fill_in or {})
        return self

    def __getnewargs__(self):
        return self.key, self.raw, self.source, self.fill_in


def _text(value) -> str:
    """A YAML value as ``--set`` would spell it (``True`` -> ``true``, ``[1, 2]`` -> ``1,2``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(_text, value))
    return "" if value is None else str(value)


def _kind(current) -> str:
    return ("true or false" if isinstance(current, bool) else "an integer" if isinstance(current, int) else
            "a number" if isinstance(current, float) else "a comma-separated list" if isinstance(current, tuple)
            else "a string")


def _from_file(value, current, key: str):
    """A value of a config file (YAML typed: bool, int, float, str, list, None) converted as ``--set`` converts
    its text, so a file's values get the same checks and sentences; a list or nothing where one value belongs
    is named as such."""
    if isinstance(value, (list, tuple)) and not isinstance(current, tuple):
        raise MKEError(f"{key} takes {_kind(current)}, got a list {value!r}")
    if value is None and not isinstance(current, str):
        raise MKEError(f"{key} takes {_kind(current)}, got no value")
    return _convert(_text(value), current, key)


def _convert(value: str, current, key: str):
    if not isinstance(value, str):  # from a config file
        return _from_file(value, current, key)
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


COMMAND_KEYS = ("task",)  # top-level fields the command line sets, never --set: `run arrays --set task=mfeat`
# trained on the arrays and wrote the records as mfeat's


def apply_overrides(config, overrides) -> Any:
    """Return ``config`` with ``["train.epochs=5", "model.fusion=mid"]`` applied.

    Unknown keys, the task (``COMMAND_KEYS``: the command names it) and values of the wrong type raise
    ``MKEError`` naming the key.
    """
    for item in overrides:
        if isinstance(item, FileSetting):  # the file's typed value; an error names the file
            try:
                config = _set(config, item.key.split("."), item.raw, item.key)
                _check_set(config, item.key)  # its limits now, while the error can name the file
            except MKEError as e:
                raise MKEError(f"{item.source}: {e}") from None
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise MKEError(f"--set takes KEY=VALUE (e.g. train.epochs=5), got {item!r}")
        if key.strip() in COMMAND_KEYS:
            raise MKEError(f"--set {item.strip()}: the task is the command's argument (mke-exp run TASK), not a "
                           "--set key; to call the records something else use --name")
        config = _set(config, key.strip().split("."), value.strip(), key.strip())
    check(config)
    return config


def _check_set(config, key: str) -> None:
    """The declared limits of the one field ``key`` names (``_set`` put it there)."""
    *groups, name = key.split(".")
    node = _get(config, groups)
    check_field(key, getattr(node, name), {f.name: f for f in dataclasses.fields(node)}[name])


def _set(node, path, value, key):
    names = [f.name for f in dataclasses.fields(node)]
    if path[0] not in names:
        parts = key.split(".")
        group = ".".join(parts[: len(parts) - len(path)])  # the part of the key walked so far
        raise MKEError(f"unknown config key {key!r}; {f'keys of {group}' if group else 'top-level keys'}: "
                       f"{', '.join(names)}")
    current = getattr(node, path[0])
    if len(path) == 1:
        if current is None and node is not None and path[0] in GROUPS:  # e.g. prepare of a task without one
            raise MKEError(f"unknown config key {key!r}: this task has no {key} settings")
        if dataclasses.is_dataclass(current):
            first = dataclasses.fields(current)[0].name
            raise MKEError(f"{key} is a group; set one of its fields, e.g. {key}.{first}")
        return dataclasses.replace(node, **{path[0]: _convert(value, current, key)})
    if current is None:  # e.g. prepare of a task that reads its data directly
        raise MKEError(f"unknown config key {key!r}: this task has no {path[0]} settings")
    if not dataclasses.is_dataclass(current):
        raise MKEError(f"unknown config key {key!r}: {path[0]} has no fields")
    return dataclasses.replace(node, **{path[0]: _set(current, path[1:], value, key)})


GROUPS = ("data", "model", "train", "mke", "prepare")  # the groups of settings of an ExperimentConfig


def check(config: ExperimentConfig) -> None:
    """Every declared limit, the train group's cross-field rule, then each data config's own (``validate``)."""
    check_limits(config, "")
    if config.train.early_stopping and config.train.selection == "last":
        raise MKEError("train.early_stopping stops on the model-selection score, which train.selection=last does "
                       "not compute: use train.selection=val or agreement, or leave train.early_stopping at 0")
    check_train(config.train)
    for group in (config.data, config.prepare):
        validate = getattr(group, "validate", None)
        if validate is not None:
            validate()


SETTING_USED_BY = dict(momentum=("optimizer", "sgd"), step_size=("schedule", "step"),
                       step_gamma=("schedule", "step"), poly_power=("schedule", "poly"))  # field -> what reads it


def check_train(train: TrainConfig) -> None:
    """A setting that only one optimiser or schedule reads, set away from its default while another is chosen,
    is an ``MKEError``: it would change the record's config hash and nothing else."""
    for name, (chooser, choice) in SETTING_USED_BY.items():
        default = TrainConfig.__dataclass_fields__[name].default
        if getattr(train, name) != default and getattr(train, chooser) != choice:
            raise MKEError(f"train.{name} is read only with train.{chooser}={choice}, not "
                           f"train.{chooser}={getattr(train, chooser)}: set train.{chooser}={choice} or leave "
                           f"train.{name} at {default}")


def resolve_config(task, overrides=(), epochs: int | None = None) -> ExperimentConfig:
    """A task's preset with ``--set`` overrides (and ``--epochs``) applied and checked.

    ``overrides`` may start with a config file's settings (``FileSetting``, from
    ``config_files.config_settings``), which later ``--set`` items override. A key the task declares it
    ignores (``task.ignores``, e.g. ``model.backbone`` for a task of small networks) is an error: it would
    change the record's config hash and nothing else.
    """
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key in task.ignores:
            where = f"{item.source}: " if isinstance(item, FileSetting) else ""
            raise MKEError(f"{where}task {task.name} does not use {key}; leave it out (it would change the record, "
                           f"not the run)")
    cfg = apply_overrides(task.default_config, overrides)
    check_clip_size(task, cfg, overrides)
    if epochs is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
    return cfg


def unfilled(task, cfg: ExperimentConfig, overrides) -> list[str]:
    """One sentence per setting a config file asks the user to fill in (its ``fill_in``: key -> why) that
    ``cfg`` still holds at the task's default: the run goes on, not as the file intends (the CLI warns)."""
    files = {item.source: item.fill_in for item in overrides if isinstance(item, FileSetting)}
    return [f"{source} asks for {key}, which is not set: {why}; add --set {key}=..."
            for source, fill_in in files.items() for key, why in fill_in.items()
            if _get(cfg, str(key).split(".")) == _get(task.default_config, str(key).split("."))]


def _get(node, path):
    for name in path:
        node = getattr(node, name, None)
    return node


MAX_CLIP_VALUES = 2**26  # values of α and β together in one prepared clip: 64 MiB at one byte a value, ~600 times
# the largest default (VGGSound's 4 frames of 64² and 1001 × 64 log-mels); prepare.size=100000 would ask for TiB


def _bytes(n: int) -> str:
    """``n`` bytes in the largest binary unit that keeps a number of at least 1 (``112 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def check_clip_size(task, cfg: ExperimentConfig, overrides=()) -> None:
    """Refuse ``--set prepare.x=v`` settings that make one clip hold more than ``MAX_CLIP_VALUES`` values,
    with a sentence saying what a clip and a data set would cost (the cache stores at least a byte a value).

    The clip's shapes come from the task (``task.shapes``, which also sizes ``mke-exp bench``); only keys
    the user set are checked, the tasks' defaults being small. Runs before anything is read or allocated.
    """
    given = [item.strip() for item in overrides if item.strip().startswith("prepare.")]
    if not given or cfg.prepare is None or getattr(task, "shapes", None) is None:
        return
    alpha, beta = task.shapes(cfg)[:2]
    values = math.prod(alpha) + math.prod(beta)
    if values <= MAX_CLIP_VALUES:
        return
    raise MKEError(f"--set {' '.join(given)} makes one clip {values:,} values ({tuple(alpha)} and {tuple(beta)}): "
                   f"at least {_bytes(values)} per clip in the cache and {_bytes(4 * values)} as float32 in "
                   f"training, {_bytes(10_000 * values)} for 10,000 clips; a clip may hold at most "
                   f"{MAX_CLIP_VALUES:,} values, so choose smaller prepare settings")


def from_manifest(cfg: ExperimentConfig, prepared, overrides=(), source: str = "the cache") -> ExperimentConfig:
    """``cfg`` with its ``prepare`` settings replaced by those the cache was made with (``prepared``,
    the task's prepare config read back from the manifest), so that the record says what ran.

    A setting the user gave explicitly (``--set prepare.x=v``) that the cache contradicts is an
    ``MKEError`` naming both values and the fix.
    """
    if prepared is None or cfg.prepare is None:
        return cfg
    given = {item.partition("=")[0].strip()[len("prepare."):]: item for item in overrides
             if item.strip().startswith("prepare.")}  # the last item of a key: the one that won
    for name in sorted(given):
        want, have = getattr(cfg.prepare, name), getattr(prepared, name)
        if want != have:
            item = given[name]
            leave = (f"leave prepare.{name} out of {item.source}" if isinstance(item, FileSetting) else
                     f"leave out --set prepare.{name}")
            raise MKEError(f"{source} was prepared with prepare.{name}={have}, not {want}: {leave}, or prepare "
                           f"the cache again with --set prepare.{name}={want}")
    return dataclasses.replace(cfg, prepare=prepared)
