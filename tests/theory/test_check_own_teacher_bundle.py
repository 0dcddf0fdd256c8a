"""Issue 24's bug: ``mke-theory check --data`` on a bundle built as docs/own_teacher.md builds it (string labels,
the teacher's probabilities only, labeled validation data) exited with "val_labels hold(s) string labels but
pseudo_labels, teacher_val_pred integer ones", because the classes it derived from ``teacher_probs`` /
``teacher_val_probs`` (integers) were compared with the string ``val_labels``. The bundle is built the doc's way:
digits split into left / right halves, a scikit-learn teacher on α, ``teacher.predict_proba`` as the probabilities
(columns: ``teacher.classes_``, the sorted label strings)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from mke_theory.cli import cli

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def _doc_bundle(with_val_probs: bool) -> tuple[dict, np.ndarray]:
    """docs/own_teacher.md's bundle, smaller (300 samples of D_u, 120 validation samples), and the validation
    labels as class indices in the order of the sorted strings (the columns of ``teacher_probs``)."""
    images, digits = load_digits(return_X_y=True)
    images = images.reshape(-1, 8, 8)
    alpha = images[:, :, :4].reshape(len(images), -1)
    beta = images[:, :, 4:].reshape(len(images), -1)
    labels = NAMES[digits]
    order = np.random.default_rng(0).permutation(len(labels))
    labeled, unlabeled, val = order[:100], order[100:400], order[400:520]
    teacher = LogisticRegression(max_iter=2000).fit(alpha[labeled], labels[labeled])
    bundle = dict(unlabeled_alpha=alpha[unlabeled], unlabeled_beta=beta[unlabeled],
                  teacher_probs=teacher.predict_proba(alpha[unlabeled]),
                  val_alpha=alpha[val], val_beta=beta[val], val_labels=labels[val])
    if with_val_probs:
        bundle["teacher_val_probs"] = teacher.predict_proba(alpha[val])
    return bundle, np.searchsorted(teacher.classes_, labels[val])


@pytest.mark.parametrize("with_val_probs", [False, True], ids=["teacher_probs", "teacher_probs+teacher_val_probs"])
def test_check_reads_the_own_teacher_bundle_with_string_labels(tmp_path, with_val_probs):
    bundle, val_classes = _doc_bundle(with_val_probs)
    path = tmp_path / "bundle.npz"
    np.savez(path, **bundle)
    result = CliRunner().invoke(cli, ["check", "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_val"] == 120 and report["n_classes"] == 10 and report["verdict"] in ("helps", "unclear", "hurts")
    assert report["teacher_on_val"] == ("given" if with_val_probs else "α probe")
    if with_val_probs:  # the strings and the probabilities' columns name the same classes: the teacher's accuracy
        teacher_val = bundle["teacher_val_probs"].argmax(axis=1)
        assert report["accuracy"]["teacher"] == pytest.approx(np.mean(teacher_val == val_classes))
