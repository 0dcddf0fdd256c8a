"""``mke-theory check --data`` reads the one bundle format: D_u's unlabeled_alpha / unlabeled_beta, the
teacher's pseudo_labels (or the argmax of teacher_probs), labeled val_alpha / val_beta / val_labels and
the teacher's teacher_val_pred / teacher_val_probs; the former keys alpha / beta still name D_u."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from mke_experiments.cli import cli as exp_cli
from mke_experiments.testing.bundles import write_bundle
from mke_theory.cli import cli
from mke_theory.generators import gaussian_mixture

SPLIT = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=150, n_test=120, random_state=0)
PSEUDO = np.where(np.arange(150) % 5 == 0, (SPLIT.unlabeled_labels + 1) % 3, SPLIT.unlabeled_labels)
TEACHER_VAL = np.where(np.arange(60) % 4 == 0, (SPLIT.test_labels[:60] + 1) % 3, SPLIT.test_labels[:60])
VAL = dict(val_alpha=SPLIT.test_alpha[:60], val_beta=SPLIT.test_beta[:60], val_labels=SPLIT.test_labels[:60])


def _check(path):
    result = CliRunner().invoke(cli, ["check", "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    report.pop("seconds")
    return report, result.stderr


def test_the_run_bundle_and_the_old_keys_give_one_report(tmp_path):
    run_bundle = write_bundle(tmp_path / "run.npz", SPLIT, pseudo_labels=PSEUDO, teacher_val_pred=TEACHER_VAL, **VAL)
    old = tmp_path / "old.npz"
    np.savez(old, alpha=SPLIT.unlabeled_alpha, beta=SPLIT.unlabeled_beta, pseudo_labels=PSEUDO,
             teacher_val_pred=TEACHER_VAL, **VAL)
    new_report, new_err = _check(run_bundle)
    old_report, _ = _check(old)
    assert new_report == old_report and new_err == ""
    assert new_report["n_val"] == 60 and new_report["teacher_on_val"] == "given"


def test_teacher_probs_count_as_their_argmax(tmp_path):
    probs = np.eye(3)[PSEUDO] * 0.7 + 0.1
    val_probs = np.eye(3)[TEACHER_VAL] * 0.4 + 0.2
    a, _ = _check(write_bundle(tmp_path / "p.npz", SPLIT, pseudo_labels=PSEUDO, teacher_val_pred=TEACHER_VAL, **VAL))
    b, _ = _check(write_bundle(tmp_path / "q.npz", SPLIT, teacher_probs=probs, teacher_val_probs=val_probs, **VAL))
    assert a == b


def test_string_labels_check_like_their_indices(tmp_path):
    names = np.array(["cat", "cow", "dog"])
    a, _ = _check(write_bundle(tmp_path / "p.npz", SPLIT, pseudo_labels=PSEUDO, teacher_val_pred=TEACHER_VAL, **VAL))
    b, _ = _check(write_bundle(tmp_path / "s.npz", SPLIT, labels=names[SPLIT.labels],
                               test_labels=names[SPLIT.test_labels], unlabeled_labels=names[SPLIT.unlabeled_labels],
                               pseudo_labels=names[PSEUDO], teacher_val_pred=names[TEACHER_VAL],
                               **dict(VAL, val_labels=names[VAL["val_labels"]])))
    assert a == b


def test_one_file_serves_run_and_check(tmp_path):
    path = write_bundle(tmp_path / "b.npz", SPLIT, pseudo_labels=PSEUDO, teacher_val_pred=TEACHER_VAL, **VAL)
    run = CliRunner().invoke(exp_cli, ["run", "arrays", "--data", str(path), "--epochs", "1", "--seeds", "0",
                                       "--device", "cpu", "--methods", "mm_student"])
    assert run.exit_code == 0, run.output
    report, _ = _check(path)
    assert report["verdict"] in ("helps", "unclear", "hurts") and set(report) >= {"um", "mm", "predicted_gain"}


def test_a_run_bundle_without_teacher_output_says_what_check_needs(tmp_path):
    result = CliRunner().invoke(cli, ["check", "--data", str(write_bundle(tmp_path / "b.npz", SPLIT))])
    assert result.exit_code == 1
    assert "the check needs pseudo_labels (M,) or teacher_probs (M, K)" in result.output
    assert result.output.count("\n") == 1
