"""The MKE protocol for any task: teacher → pseudo labels → students → run records.

The methods and what each trains on are the rows of ``mke_theory.core.methods`` (teacher, UM student,
NOISY student, MM student with and without regularisation, the MKE student on confident pseudo
labels only, and the supervised upper bound); ``SeedRun`` turns a row into a training run.

``plan``: what a run will do, decided once (``Plan``: skipped methods and why, the methods trained,
stacked seeds or seed by seed, the selection in words, the progress bar's length, the fallback warnings).
``seeds``: the protocol itself (``SeedRun``, ``PseudoLabels``, ``train_method``, ``run_seeds``, ``run_seed``,
``run_config``). ``files``: the run folder and resume (``RunFiles``). ``check``: the check bundle
(``check_arrays``). ``api``: ``fit_mke`` (its ``MKEResult``), ``run_split``, ``run``, ``run_table`` (the
table ``mke-exp run`` prints). ``predictor``: a trained network with its preprocessing (``Predictor``).
``sweep``: ``mke-exp sweep``, teacher and MM student at several sizes of D_l with the check at each (imported
from there, not here: it reads ``mke_theory.diagnose``).
"""

from mke_experiments.protocol.api import MKEResult, fit_mke, run, run_split, run_table
from mke_experiments.protocol.check import check_arrays, dense_labels, vector_inputs
from mke_experiments.protocol.files import RunFiles
from mke_experiments.protocol.plan import (
    EXPERIMENT_METHODS,
    METHODS,
    FallbackWarning,
    Plan,
    SkippedMethodWarning,
    external_teacher,
    seeds_together,
    selection_used,
    skipped_methods,
    total_steps,
    warn_fallbacks,
)
from mke_experiments.protocol.seeds import (
    PseudoLabels,
    SeedResult,
    SeedRun,
    run_config,
    run_seed,
    run_seeds,
    train_method,
)
from mke_experiments.train import predict_logits
from mke_experiments.train.runtime import distributed_init

__all__ = [
    "EXPERIMENT_METHODS", "METHODS", "FallbackWarning", "MKEResult", "Plan", "PseudoLabels", "RunFiles", "SeedResult",
    "SeedRun", "SkippedMethodWarning", "check_arrays", "dense_labels", "distributed_init", "external_teacher",
    "fit_mke", "predict_logits", "run_table", "run", "run_config", "run_seed", "run_seeds", "run_split",
    "seeds_together", "selection_used", "skipped_methods", "total_steps", "train_method", "vector_inputs",
    "warn_fallbacks",
]
