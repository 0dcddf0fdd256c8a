"""Your own teacher in the bundle (issue 16, 1a): ``pseudo_labels`` / ``teacher_probs`` on D_u train no
teacher; the students learn exactly those labels; the teacher's row comes from its test predictions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mke_experiments.cli import cli as exp_cli
from mke_experiments.config import resolve_config
from mke_experiments.protocol import SeedRun, run_seed, run_split, skipped_methods
from mke_experiments.tasks import get_task
from mke_experiments.testing.bundles import write_bundle
from mke_experiments.train import predict
from mke_theory.generators import gaussian_mixture

SPLIT = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
WRONG = (SPLIT.unlabeled_labels + 1) % 3  # deliberately wrong pseudo labels: a student that learns them is wrong


def _load(tmp_path, overrides=(), epochs=40, **changes):
    task = get_task("arrays")
    cfg = resolve_config(task, overrides, epochs)
    path = write_bundle(tmp_path / "bundle.npz", SPLIT, **changes)
    return task.load_split(cfg, path, overrides)


def test_students_learn_the_given_pseudo_labels_and_no_teacher_is_trained(tmp_path):
    cfg, split = _load(tmp_path, pseudo_labels=WRONG, labeled_alpha=None, labels=None)
    assert split.n_labeled == 0  # D_l is optional with an external teacher
    result = run_seed(cfg, split, 0, methods=("teacher", "um_student", "mm_student"), device=torch.device("cpu"))
    assert "teacher" not in result.models  # nothing trained as the teacher
    assert [r["method"] for r in result.records] == ["um_student", "mm_student"]  # no test predictions: no row
    np.testing.assert_array_equal(result.pseudo_labels, WRONG)
    student = result.models["mm_student"]
    u = (torch.as_tensor(split.unlabeled_alpha), torch.as_tensor(split.unlabeled_beta))
    learned = predict(student, u, torch.device("cpu")).numpy()
    assert (learned == WRONG).mean() > 0.8  # it learned the given labels, not the truth
    assert (learned == split.unlabeled_labels).mean() < 0.2
    mm = next(r for r in result.records if r["method"] == "mm_student")
    assert mm["metrics"]["test_accuracy"] < 0.2
    assert mm["config"]["teacher"] == "external" and mm["metrics"]["pseudo_label_accuracy"] == 0.0


def test_teacher_row_is_scored_from_its_test_predictions_and_said_to_be_external(tmp_path):
    probs = np.eye(3)[SPLIT.test_labels] * 0.8 + 0.2 / 3
    probs[:15] = np.eye(3)[(SPLIT.test_labels[:15] + 1) % 3] * 0.8 + 0.2 / 3  # the first 15 wrong: 75 %
    cfg, split = _load(tmp_path, epochs=2, pseudo_labels=SPLIT.unlabeled_labels, teacher_test_probs=probs)
    records = run_split(cfg, split, [0, 1], methods=("teacher", "mm_student"), device="cpu", out=tmp_path / "runs")
    teachers = [r for r in records if r["method"] == "teacher"]
    assert len(teachers) == 2
    for r in teachers:
        assert r["metrics"]["test_accuracy"] == pytest.approx(0.75)
        assert r["config"]["teacher"] == "external" and "external" in r["hardware"] and r["history"] == []
    assert len({r["config_hash"] for r in records}) == 1
    assert list((tmp_path / "runs" / "checkpoints").glob("*teacher*")) == []  # never trained, nothing kept


def test_other_pseudo_labels_are_other_records(tmp_path):
    _, a = _load(tmp_path, pseudo_labels=SPLIT.unlabeled_labels)
    cfg, b = _load(tmp_path, pseudo_labels=WRONG)
    from mke_experiments.protocol import run_config

    assert a.split_id == b.split_id
    assert run_config(cfg, a)["teacher_output_id"] != run_config(cfg, b)["teacher_output_id"]


def test_soft_pseudo_labels_are_the_given_probabilities(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=len(SPLIT.unlabeled_labels))
    cfg, split = _load(tmp_path, overrides=("mke.pseudo_labels=soft",), teacher_probs=probs)
    run = SeedRun(cfg, split, 0, None, torch.device("cpu"))
    pl = run.external_pseudo_label()
    np.testing.assert_allclose(pl.targets.numpy(), probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pl.predicted, probs.argmax(axis=1))
    cfg_hard, split = _load(tmp_path, teacher_probs=probs)
    hard = SeedRun(cfg_hard, split, 0, None, torch.device("cpu")).external_pseudo_label()
    np.testing.assert_array_equal(hard.targets.numpy(), probs.argmax(axis=1))


def test_methods_that_need_what_the_bundle_lacks_are_skipped_with_a_reason(tmp_path):
    _, split = _load(tmp_path, pseudo_labels=WRONG, labeled_alpha=None, labels=None)
    why = skipped_methods(split, ("teacher", "noisy_student", "mm_student_confident", "mm_student"))
    assert set(why) == {"teacher", "noisy_student", "mm_student_confident"}
    assert "labeled_alpha" in why["noisy_student"] and "teacher_test_pred" in why["teacher"]


def test_garbage_test_data_change_no_student(tmp_path):
    cfg, split = _load(tmp_path, epochs=3, pseudo_labels=WRONG)
    rng = np.random.default_rng(1)
    dirty = dataclasses.replace(split, test_alpha=rng.normal(size=split.test_alpha.shape) * 5,
                                test_beta=rng.normal(size=split.test_beta.shape) * 5,
                                test_labels=rng.integers(0, 3, len(split.test_labels)))
    methods = ("um_student", "mm_student")
    clean = run_seed(cfg, split, 0, methods=methods, device=torch.device("cpu"))
    other = run_seed(cfg, dirty, 0, methods=methods, device=torch.device("cpu"))
    np.testing.assert_array_equal(clean.pseudo_labels, other.pseudo_labels)
    for m in methods:
        a, b = clean.models[m].state_dict(), other.models[m].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), m


def test_cli_says_the_teacher_is_external(tmp_path):
    path = write_bundle(tmp_path / "b.npz", SPLIT, pseudo_labels=WRONG, teacher_test_pred=SPLIT.test_labels,
                        labeled_alpha=None, labels=None)
    result = CliRunner().invoke(exp_cli, ["run", "arrays", "--data", str(path), "--epochs", "1", "--seeds", "0",
                                          "--device", "cpu", "--methods", "teacher,noisy_student,mm_student"])
    assert result.exit_code == 0, result.output
    assert "teacher: external predictions from the bundle" in result.output
    assert "noisy_student is skipped" in result.output
    assert "| teacher | 100.0" in result.output
    assert "teacher: external (its predictions from the bundle)" in result.output  # the table's caption says it too


def test_cli_without_teacher_test_predictions_and_several_seeds_prints_the_table(tmp_path):
    path = write_bundle(tmp_path / "b.npz", SPLIT, pseudo_labels=SPLIT.unlabeled_labels)
    result = CliRunner().invoke(exp_cli, ["run", "arrays", "--data", str(path), "--epochs", "1", "--seeds", "0,1",
                                          "--device", "cpu", "--methods", "teacher,mm_student"])
    assert result.exit_code == 0, result.output
    assert "teacher is skipped" in result.output and "| mm_student |" in result.output


def test_a_misspelt_teacher_output_trains_no_teacher(tmp_path, monkeypatch):
    # issue 23, 6: the old loader ignored ``teacher_prob`` and trained a teacher; now nothing is trained
    from mke_experiments.protocol import fit_mke
    from mke_theory.core.errors import MKEError

    path = write_bundle(tmp_path / "b.npz", SPLIT, teacher_prob=np.eye(3)[WRONG])
    result = CliRunner().invoke(exp_cli, ["run", "arrays", "--data", str(path), "--epochs", "1", "--seeds", "0",
                                          "--device", "cpu", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 1, result.output
    assert "unknown key(s) teacher_prob (did you mean teacher_probs?)" in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.json"))
    with np.load(path) as f:
        bundle = {k: f[k] for k in f.files}
    with pytest.raises(MKEError, match=r"pseudo_label \(did you mean pseudo_labels\?\)"):
        fit_mke(dict(bundle, pseudo_label=WRONG), device="cpu")
