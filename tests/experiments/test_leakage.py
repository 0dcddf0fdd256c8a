"""Leakage canaries for every registered task, on the task's own smoke data.

Garbage in the test split must change nothing but test scores: every trained model's weights and
every epoch's loss and selection score stay bit-identical. Garbage true labels of D_u may change
only the supervised upper bound (and the pseudo-label diagnostics). Garbage D_u inputs leave the
teacher untouched: it learns from D_l alone (Eq. 1). A new task is guarded by adding its smoke hook.
"""

import dataclasses

import numpy as np
import pytest
import torch

from mke_experiments.config import resolve_config
from mke_experiments.protocol import METHODS, run_seed
from mke_experiments.tasks import TASKS, get_task
from mke_theory.core.split import IGNORE

FAST = ("train.epochs=1",)  # one epoch still computes (and compares) a selection score


def garbage_like(a: np.ndarray, rng: np.random.Generator, n_classes: int | None = None) -> np.ndarray:
    """Same shape and dtype, other values: random classes for labels, noise of another scale for inputs."""
    if n_classes is not None and not np.issubdtype(a.dtype, np.floating):
        out = rng.integers(0, n_classes, a.shape).astype(a.dtype)
        return np.where(a == IGNORE, a, out) if a.ndim > 1 else out  # keep void pixels void
    return (3.0 * rng.standard_normal(a.shape) + 1.0).astype(a.dtype)


def corrupted(split, rng, test=False, unlabeled_labels=False, unlabeled_inputs=False):
    k, changes = split.n_classes, {}
    if test:
        changes.update(test_alpha=garbage_like(split.test_alpha, rng), test_beta=garbage_like(split.test_beta, rng),
                       test_labels=garbage_like(split.test_labels, rng, k))
    if unlabeled_labels and split.unlabeled_labels is not None:
        changes["unlabeled_labels"] = garbage_like(split.unlabeled_labels, rng, k)
    if unlabeled_inputs:
        changes.update(unlabeled_alpha=garbage_like(split.unlabeled_alpha, rng),
                       unlabeled_beta=garbage_like(split.unlabeled_beta, rng))
    return dataclasses.replace(split, **changes)


def trained(result) -> dict:
    """method -> (weights, per-epoch history without test numbers, best epoch)."""
    records = {r["method"]: r for r in result.records}
    return {m: ({k: v.detach().clone() for k, v in model.state_dict().items()}, records[m]["history"],
                records[m]["best_epoch"]) for m, model in result.models.items()}


def assert_same_training(clean: dict, other: dict, methods) -> None:
    for m in methods:
        weights, history, best = clean[m]
        weights2, history2, best2 = other[m]
        assert history == history2, f"{m}: losses or selection scores changed"
        assert best == best2, f"{m}: another epoch was selected"
        changed = [k for k in weights if not torch.equal(weights[k], weights2[k])]
        assert not changed, f"{m}: weights changed ({changed[:3]})"


@pytest.fixture(scope="module", params=sorted(TASKS))
def task_run(request, tmp_path_factory):
    """A task's smoke split, config and its clean run (all default methods, one seed)."""
    name = request.param
    task = get_task(name)
    data, small = task.smoke(tmp_path_factory.mktemp(name))
    overrides = FAST + small
    cfg, split = task.load_split(resolve_config(task, overrides), data, overrides)
    clean = run_seed(cfg, split, 0, METHODS)
    return name, cfg, split, clean


def test_garbage_in_the_test_split_and_in_the_true_labels_of_d_u_changes_no_training(task_run):
    name, cfg, split, clean = task_run
    rng = np.random.default_rng(0)
    dirty_split = corrupted(split, rng, test=True, unlabeled_labels=True)
    dirty = run_seed(cfg, dirty_split, 0, METHODS)
    unaffected = [m for m in METHODS if m != "mm_supervised"]  # the upper bound learns D_u's true labels
    assert_same_training(trained(clean), trained(dirty), unaffected)
    # the canary is alive: the test data the runs were scored on really differ
    assert not np.array_equal(dirty_split.test_alpha, split.test_alpha)
    assert not np.array_equal(dirty_split.test_labels, split.test_labels)


def test_the_upper_bound_never_sees_the_test_split(task_run):
    name, cfg, split, clean = task_run
    if split.unlabeled_labels is None:
        pytest.skip("no true labels of D_u: no upper bound")
    dirty = run_seed(cfg, corrupted(split, np.random.default_rng(1), test=True), 0, ("teacher", "mm_supervised"))
    assert_same_training(trained(clean), trained(dirty), ("teacher", "mm_supervised"))


def test_the_teacher_never_sees_d_u(task_run):
    name, cfg, split, clean = task_run
    dirty = run_seed(cfg, corrupted(split, np.random.default_rng(2), unlabeled_inputs=True, unlabeled_labels=True),
                     0, ("teacher",))
    assert_same_training(trained(clean), trained(dirty), ("teacher",))
