"""``mke-theory check --data`` reads the run's bundle (issue 16, 3): D_u's unlabeled_alpha / unlabeled_beta,
the teacher's pseudo_labels (or argmax of teacher_probs) and unlabeled_labels; the old keys still work,
with one deprecation note naming the new ones."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from mke_experiments.cli import cli as exp_cli
from mke_experiments.testing.bundles import write_bundle
from mke_theory.cli import cli
from mke_theory.generators import gaussian_mixture

SPLIT = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
PSEUDO = np.where(np.arange(120) % 5 == 0, (SPLIT.unlabeled_labels + 1) % 3, SPLIT.unlabeled_labels)


def _check(path):
    result = CliRunner().invoke(cli, ["check", "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_check_on_the_run_bundle_equals_check_on_the_old_keys(tmp_path):
    run_bundle = write_bundle(tmp_path / "run.npz", SPLIT, pseudo_labels=PSEUDO)
    old = tmp_path / "old.npz"
    np.savez(old, alpha=SPLIT.unlabeled_alpha, beta=SPLIT.unlabeled_beta, pseudo_labels=PSEUDO,
             labels=SPLIT.unlabeled_labels)
    new_report, new_err = _check(run_bundle)
    old_report, old_err = _check(old)
    assert new_report == old_report
    assert new_err == ""
    assert old_err.count("\n") == 1 and "old check keys" in old_err and "unlabeled_alpha" in old_err


def test_teacher_probs_count_as_their_argmax(tmp_path):
    probs = np.eye(3)[PSEUDO] * 0.7 + 0.1
    a, _ = _check(write_bundle(tmp_path / "p.npz", SPLIT, pseudo_labels=PSEUDO))
    b, _ = _check(write_bundle(tmp_path / "q.npz", SPLIT, teacher_probs=probs))
    assert a == b


def test_string_labels_check_like_their_indices(tmp_path):
    names = np.array(["cat", "cow", "dog"])
    a, _ = _check(write_bundle(tmp_path / "p.npz", SPLIT, pseudo_labels=PSEUDO))
    b, _ = _check(write_bundle(tmp_path / "s.npz", SPLIT, labels=names[SPLIT.labels],
                               test_labels=names[SPLIT.test_labels], unlabeled_labels=names[SPLIT.unlabeled_labels],
                               pseudo_labels=names[PSEUDO]))
    assert a == b


def test_one_file_serves_run_and_check(tmp_path):
    path = write_bundle(tmp_path / "b.npz", SPLIT, pseudo_labels=PSEUDO)
    run = CliRunner().invoke(exp_cli, ["run", "arrays", "--data", str(path), "--epochs", "1", "--seeds", "0",
                                       "--device", "cpu", "--methods", "mm_student"])
    assert run.exit_code == 0, run.output
    report, _ = _check(path)
    assert set(report) >= {"um", "mm"}


def test_a_run_bundle_without_teacher_output_says_what_check_needs(tmp_path):
    result = CliRunner().invoke(cli, ["check", "--data", str(write_bundle(tmp_path / "b.npz", SPLIT))])
    assert result.exit_code == 1
    assert "check needs pseudo_labels (M,) or teacher_probs (M, K)" in result.output
    assert result.output.count("\n") == 1
