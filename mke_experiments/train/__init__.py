"""Training: ``fit`` (S ≥ 1 members on shared inputs) calling ``train_one_epoch``; the loader, the optimiser,
checkpoints, device and process-group set-up."""

from mke_experiments.train.loop import (  # noqa: F401
    IGNORE,
    FitResult,
    Member,
    Selection,
    distributed,
    fit,
    load_checkpoint,
    predict,
    predict_logits,
    resolve_device,
    steps_per_run,
)
