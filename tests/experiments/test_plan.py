"""The plan of a run (``mke_experiments.protocol.plan.Plan``): decided once from (config, split, methods, seeds),
then read by the CLI, ``run_split`` and ``run_seeds`` instead of deciding again."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from click.testing import CliRunner

from mke_experiments.cli import cli
from mke_experiments.config import resolve_config
from mke_experiments.protocol import FallbackWarning, Plan, SkippedMethodWarning, total_steps
from mke_experiments.protocol import plan as plan_module
from mke_experiments.tasks import get_task
from mke_experiments.testing.bundles import write_bundle
from mke_theory.generators import gaussian_mixture

SPLIT = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)


def _arrays(tmp_path, overrides=(), **changes):
    task = get_task("arrays")
    cfg = resolve_config(task, overrides, 1)
    return task.load_split(cfg, write_bundle(tmp_path / "bundle.npz", SPLIT, **changes), overrides)


def test_without_du_true_labels_the_plan_skips_the_upper_bound_and_says_why(tmp_path):
    cfg, split = _arrays(tmp_path, unlabeled_labels=None)
    plan = Plan.of(cfg, split, ("teacher", "mm_student", "mm_supervised"), (0,))
    why = "the split has no unlabeled_labels (the true labels of D_u) to train it on"
    assert plan.skipped == {"mm_supervised": why}
    assert plan.trained == ("teacher", "mm_student") and not plan.external_teacher
    assert (SkippedMethodWarning, f"mm_supervised is skipped: {why}") in plan.fallbacks
    # the bundle has no validation set: train.selection=val keeps the last epoch, and the plan says so
    assert plan.val_missing and plan.selection == "last (no validation set)"
    assert (FallbackWarning, "train.selection=val but the split has no validation set: every model keeps its last "
                             "epoch") in plan.fallbacks


def test_an_external_teacher_without_test_predictions_is_skipped_and_never_trained(tmp_path):
    cfg, split = _arrays(tmp_path, pseudo_labels=SPLIT.unlabeled_labels)
    plan = Plan.of(cfg, split, ("teacher", "mm_student"), (0, 1))
    assert plan.external_teacher
    assert set(plan.skipped) == {"teacher"} and "teacher_test_pred" in plan.skipped["teacher"]
    assert plan.trained == ("mm_student",)
    per_epoch = -(-split.n_unlabeled // cfg.train.batch_size)
    assert plan.total_steps == 2 * per_epoch == total_steps(split, cfg, ("teacher", "mm_student"), 2)
    # with its test predictions the teacher has a row, but still trains nothing
    probs = np.eye(3)[SPLIT.test_labels]
    cfg, split = _arrays(tmp_path, pseudo_labels=SPLIT.unlabeled_labels, teacher_test_probs=probs)
    plan = Plan.of(cfg, split, ("teacher", "mm_student"), (0,))
    assert plan.skipped == {} and plan.trained == ("mm_student",) and plan.external_teacher


def test_seeds_of_small_vector_networks_train_stacked_in_one_group(tmp_path):
    cfg, split = _arrays(tmp_path)
    plan = Plan.of(cfg, split, ("teacher", "mm_student"), (0, 1, 2))
    assert plan.stacked and plan.groups == ((0, 1, 2),)
    alone = Plan.of(cfg, split, ("teacher", "mm_student"), (3,))
    assert not alone.stacked and alone.groups == ((3,),)


def test_run_split_refuses_the_plan_of_other_methods(tmp_path):
    from mke_experiments.protocol import run_split
    from mke_theory.core.errors import MKEError

    cfg, split = _arrays(tmp_path)
    plan = Plan.of(cfg, split, ("teacher",), (0,))
    with pytest.raises(MKEError, match="internal"):
        run_split(cfg, split, (0,), ("teacher", "mm_student"), device="cpu", plan=plan)


@pytest.fixture(scope="module")
def mfeat_run(tmp_path_factory, monkeypatch_module):
    """``mke-exp run mfeat`` (1 epoch, 2 seeds, the three kinds of targets), counting what it decides and the
    progress it reports: every Plan built, every skipped_methods and seeds_together call, every bar opened."""
    counts = dict(skipped=0, together=0)
    plans, bars = [], []
    real_skipped, real_together, real_of = plan_module.skipped_methods, plan_module.seeds_together, Plan.of

    def skipped(*args, **kwargs):
        counts["skipped"] += 1
        return real_skipped(*args, **kwargs)

    def together(*args, **kwargs):
        counts["together"] += 1
        return real_together(*args, **kwargs)

    def of(*args, **kwargs):
        plans.append(real_of(*args, **kwargs))
        return plans[-1]

    @contextlib.contextmanager
    def bar(length, label, file=None, **kwargs):
        bars.append(dict(length=length, updates=0))

        def update(n):
            bars[-1]["updates"] += n

        yield update

    monkeypatch_module.setattr(plan_module, "skipped_methods", skipped)
    monkeypatch_module.setattr(plan_module, "seeds_together", together)
    monkeypatch_module.setattr(Plan, "of", staticmethod(of))
    monkeypatch_module.setattr("mke_experiments.cli.progress_bar", bar)
    out = tmp_path_factory.mktemp("plan") / "runs"
    result = CliRunner().invoke(cli, ["run", "mfeat", "--epochs", "1", "--device", "cpu", "--n-seeds", "2",
                                      "--methods", "teacher,um_student,noisy_student,mm_student", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return dict(counts=counts, plans=plans, bars=bars)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_mke_exp_run_decides_its_plan_once(mfeat_run):
    assert len(mfeat_run["plans"]) == 1
    assert mfeat_run["counts"] == dict(skipped=1, together=1)  # were 4 and 1 (skipped_methods: CLI 2, run_split 1,
    # run_seeds 1 per group)
    (plan,) = mfeat_run["plans"]
    assert plan.stacked and plan.groups == ((0, 1),)


def test_the_progress_bar_is_as_long_as_the_plan_and_the_run(mfeat_run):
    (plan,), (bar,) = mfeat_run["plans"], mfeat_run["bars"]
    assert bar["length"] == plan.total_steps == bar["updates"] > 0
