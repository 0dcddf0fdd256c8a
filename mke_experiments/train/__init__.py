"""Training: ``fit`` (S ≥ 1 members on shared inputs) calling ``train_one_epoch`` and, per batch, ``train_step``
(``loop``); the optimiser (``optim``), checkpoints (``checkpoints``), stacked members (``stacking``), the loader
(``loader``), predictions (``predict``), device and process-group set-up (``runtime``)."""

from mke_experiments.train.checkpoints import CHECKPOINT_FORMAT, load_checkpoint  # noqa: F401
from mke_experiments.train.loop import (  # noqa: F401
    IGNORE,
    FitResult,
    Loss,
    Member,
    Selection,
    fit,
    steps_per_run,
    train_one_epoch,
    train_step,
)
from mke_experiments.train.optim import Optimizer  # noqa: F401
from mke_experiments.train.predict import predict, predict_logits  # noqa: F401
from mke_experiments.train.runtime import distributed, resolve_device  # noqa: F401
