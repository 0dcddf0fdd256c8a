"""The task registry: what a task is (``Task``) and ``register_task``. A task module registers
itself at import; ``mke_experiments.tasks`` imports every task module, so the CLI, ``mke-exp list``
and the smoke test see them all. Torch-free: building networks and perturbations is deferred to
the hooks, so listing tasks loads no deep-learning code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mke_experiments.config import ExperimentConfig, from_manifest
from mke_experiments.metrics import classification_metrics, selectable
from mke_theory.core.errors import MKEError


@dataclass(frozen=True)
class Task:
    """What the pipeline needs from a task.

    name : CLI name.
    description : one line for ``mke-exp list``.
    default_config : the preset (an ``ExperimentConfig`` whose ``data`` is the task's own config).
    load : ``load(config.data, data_dir) -> MultimodalSplit`` with a validation set; a split read
        from a prepared cache carries the cache's prepare settings as ``meta["prepared"]`` (an
        instance of the task's prepare config, read back from the manifest).
    prepare : ``prepare(raw_dir, out_dir, config.prepare, progress, workers) -> dict`` turning a download
        into a cache (``workers`` decoding processes, None: the usable cores), or None when the task needs
        no preparation.
    needs_data : whether ``run`` needs ``--data`` (mfeat ships its data; arrays and real sets do not).
    small : whether its networks are small MLPs that compute best on one torch thread (``mke_theory.console``).
    shapes : ``shapes(config) -> (α sample shape, β sample shape, classes, target shape)`` of the data a config
        describes, for ``mke-exp bench`` without ``--data``; None: the shapes come from the data only.
    reference : method -> the paper's published number of the primary metric (the tables' reference column).
    The remaining fields are hooks with defaults for classification of vectors, images and maps.
    """

    name: str
    description: str
    default_config: ExperimentConfig
    load: Callable
    prepare: Callable | None = None
    needs_data: bool = True
    evaluate: Callable = None  # (pred, labels, n_classes) -> {metric: value}; default accuracy, macro_f1
    primary: str = "accuracy"  # the metric that selects models and heads tables (as test_<primary>)
    build_teacher: Callable = None  # (split, ModelConfig) -> module α → logits; default from the shapes
    build_student: Callable = None  # (split, ModelConfig, regularised) -> module (α, β) → logits
    augment: Callable | None = None  # ExperimentConfig -> (inputs, targets, generator) -> (inputs, targets)
    perturb: Callable = None  # ExperimentConfig -> T: (inputs, generator) -> inputs; default input noise
    examples: int = 0  # test samples whose predictions are saved (RUNS/examples/) for qualitative figures
    scores: bool = False  # evaluate() gets class scores (n, K) instead of predicted classes
    extra_prepare: dict = None  # other data sets this task reads: name -> prepare(raw, out, prepare cfg, progress,
    # workers)
    ignores: tuple = ()  # config keys the task never reads: setting one is an error, not a silent no-op
    smoke: Callable | None = None  # (folder) -> (data_dir or None, overrides): tiny data for a seconds-long run
    small: bool = False
    shapes: Callable | None = None
    reference: dict | None = None

    def load_split(self, cfg: ExperimentConfig, data_dir=None, overrides=()) -> tuple[ExperimentConfig, object]:
        """(config, split): the split from ``data_dir`` and the config whose ``prepare`` settings are the
        ones the cache was made with (``config.from_manifest``), so a record never claims other ones."""
        split = self.load(cfg.data, data_dir)
        return from_manifest(cfg, split.meta.get("prepared"), overrides, source=f"the cache in {data_dir}"), split

    def __post_init__(self):
        selectable(self.primary)  # a primary metric model selection cannot compute is a registration error
        defaults = dict(evaluate=classification_metrics, build_teacher=_vector_teacher, build_student=_vector_student,
                        perturb=_input_noise)
        for key, value in defaults.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)


def _vector_teacher(split, cfg):
    from mke_experiments import models

    return models.build_teacher(split.alpha_shape, split.n_classes, cfg)


def _vector_student(split, cfg, regularised: bool):
    from mke_experiments import models

    return models.build_student(split.alpha_shape, split.beta_shape, split.n_classes, cfg, regularised)


def _input_noise(cfg: ExperimentConfig):
    from mke_experiments import perturbations

    return perturbations.input_noise(cfg.mke.input_noise)


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to the registry; a second task of the same name is an error."""
    if task.name in TASKS:
        raise MKEError(f"task {task.name!r} is registered twice")
    TASKS[task.name] = task
    return task


def get_preparer(name: str) -> tuple[Task, Callable]:
    """The task and the prepare function for ``mke-exp prepare NAME`` (a task or a data set a task reads)."""
    if name in TASKS:
        return TASKS[name], TASKS[name].prepare
    for task in TASKS.values():
        if task.extra_prepare and name in task.extra_prepare:
            return task, task.extra_prepare[name]
    extra = [n for t in TASKS.values() for n in (t.extra_prepare or {})]
    raise MKEError(f"unknown task or data set {name!r}; known: {', '.join(sorted([*TASKS, *extra]))}")


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise MKEError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def data_dir_or_error(data_dir: Path | None, task: str) -> Path:
    bundle = task == "arrays"  # the one task whose --data is a file the user writes, not a prepared cache
    if data_dir is None:
        if bundle:
            raise MKEError("task arrays needs --data FILE.npz, the npz bundle of your arrays "
                           "(see mke_experiments.tasks.arrays for its keys)")
        raise MKEError(f"task {task} needs --data DIR (made by: mke-exp prepare {task} --raw DIR --out DIR)")
    data_dir = Path(data_dir)
    if not data_dir.exists():
        if bundle:
            raise MKEError(f"{data_dir}: no such file; pass the path of your .npz bundle as --data FILE.npz")
        raise MKEError(f"{data_dir}: no such file or folder; make it with mke-exp prepare {task} --raw DIR --out DIR")
    return data_dir

