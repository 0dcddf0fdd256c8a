"""Bad bundles (issue 23, cases 6, 7, 8): unknown keys, labels that are not D_l's classes, and check bundles
that are inconsistent. Each ends in one sentence naming the key; none trains a teacher or gives a verdict."""

from __future__ import annotations

import numpy as np

from mke_experiments.testing.bundles import write_bundle
from mke_theory.generators import gaussian_mixture

RUN = ("--epochs", "1", "--seeds", "0", "--device", "cpu", "--methods", "teacher,mm_student")
SPLIT = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
M, N_TEST = len(SPLIT.unlabeled_labels), len(SPLIT.test_labels)
NAMES = np.array(["cat", "cow", "dog"])


def _check(path, n=60, **changes):
    """A bundle for ``mke-theory check --data``: D_u of ``n`` rows, 3 classes, 60 labeled validation rows."""
    rng = np.random.default_rng(0)
    arrays = dict(unlabeled_alpha=rng.normal(size=(n, 2)), unlabeled_beta=rng.normal(size=(n, 1)),
                  pseudo_labels=np.arange(n) % 3, val_alpha=rng.normal(size=(60, 2)),
                  val_beta=rng.normal(size=(60, 1)), val_labels=np.arange(60) % 3)
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def make_files(tmp):
    f = {}
    bundle = lambda name, **changes: write_bundle(tmp / f"bundles_{name}.npz", SPLIT, **changes)  # noqa: E731
    probs = np.eye(3)[SPLIT.unlabeled_labels] * 0.7 + 0.1
    # ---- 6: keys the library does not know
    f["bundles_teacher_prob"] = bundle("teacher_prob", teacher_prob=probs)
    f["bundles_pseudo_label"] = bundle("pseudo_label", pseudo_label=SPLIT.unlabeled_labels)
    f["bundles_logits"] = bundle("logits", logits=np.log(probs))
    f["bundles_check_typo"] = _check(tmp / "bundles_check_typo.npz", teacher_val_prob=np.full((60, 3), 1 / 3))
    # ---- 7: labels that are not classes of D_l
    named = dict(labels=NAMES[SPLIT.labels], test_labels=NAMES[SPLIT.test_labels],
                 unlabeled_labels=NAMES[SPLIT.unlabeled_labels])
    f["bundles_test_class"] = bundle("test_class", **{**named, "test_labels": np.where(
        np.arange(N_TEST) < 5, "bird", named["test_labels"])})
    f["bundles_pseudo_class"] = bundle("pseudo_class", pseudo_labels=np.where(np.arange(M) < 3, 3,
                                                                              SPLIT.unlabeled_labels))
    f["bundles_test_pred_class"] = bundle("test_pred_class", **named, pseudo_labels=named["unlabeled_labels"],
                                          teacher_test_pred=np.where(np.arange(N_TEST) < 2, "Dog",
                                                                     named["test_labels"]))
    f["bundles_blank_label"] = bundle("blank_label", **{**named, "labels": np.where(
        np.arange(30) < 1, "  ", named["labels"])})
    # ---- 8: check bundles that are inconsistent
    f["bundles_check_2_rows"] = _check(tmp / "bundles_check_2_rows.npz", n=2)
    f["bundles_check_val_k"] = _check(tmp / "bundles_check_val_k.npz", pseudo_labels=None,
                                      teacher_probs=np.full((60, 3), 1 / 3), teacher_val_probs=np.full((60, 2), 0.5))
    f["bundles_check_pseudo_range"] = _check(tmp / "bundles_check_pseudo_range.npz", pseudo_labels=np.arange(60) % 9)
    f["bundles_check_pred_range"] = _check(tmp / "bundles_check_pred_range.npz",
                                           teacher_val_pred=np.where(np.arange(60) < 4, 7, np.arange(60) % 3))
    f["bundles_check_probs_range"] = _check(tmp / "bundles_check_probs_range.npz", teacher_val_probs=np.full(
        (60, 3), 1 / 3), pseudo_labels=np.where(np.arange(60) < 1, 5, np.arange(60) % 3))
    f["bundles_check_argmax"] = _check(tmp / "bundles_check_argmax.npz",
                                       teacher_probs=np.eye(3)[(np.arange(60) + 1) % 3] * 0.7 + 0.1)
    f["bundles_check_noise_vector"] = _check(tmp / "bundles_check_noise_vector.npz", input_noise=np.array([0.1, 0.5]))
    return f


def _run(name):
    return ["run", "arrays", "--data", "{" + name + "}", *RUN]


def _theory(name):
    return ["check", "--data", "{" + name + "}"]


CASES = [
    # ---- 6: an unknown key is named with the closest known one; no teacher is trained instead
    ("bundles-run-teacher-prob", "exp", _run("bundles_teacher_prob"), "teacher_prob (did you mean teacher_probs?)"),
    ("bundles-run-pseudo-label", "exp", _run("bundles_pseudo_label"), "pseudo_label (did you mean pseudo_labels?)"),
    ("bundles-run-logits", "exp", _run("bundles_logits"), "logits"),
    ("bundles-check-typo", "theory", _theory("bundles_check_typo"),
     "teacher_val_prob (did you mean teacher_val_probs?)"),
    # ---- 7: every label is a class of D_l
    ("bundles-run-test-class", "exp", _run("bundles_test_class"), "test_labels hold(s) the value(s) 'bird'"),
    ("bundles-run-pseudo-class", "exp", _run("bundles_pseudo_class"), "pseudo_labels hold(s) the value(s) 3"),
    ("bundles-run-test-pred-class", "exp", _run("bundles_test_pred_class"),
     "teacher_test_pred hold(s) the value(s) 'Dog'"),
    ("bundles-run-blank-label", "exp", _run("bundles_blank_label"), "labels hold(s) an empty label"),
    # ---- 8: mke-theory check refuses inconsistent bundles
    ("bundles-check-2-rows", "theory", _theory("bundles_check_2_rows"), "at least 40"),
    ("bundles-check-val-k", "theory", _theory("bundles_check_val_k"), "teacher_val_probs has 2 columns"),
    ("bundles-check-pseudo-range", "theory", _theory("bundles_check_pseudo_range"),
     "pseudo_labels hold(s) the value(s) 3, 4"),
    ("bundles-check-pred-range", "theory", _theory("bundles_check_pred_range"),
     "teacher_val_pred hold(s) the value(s) 7"),
    ("bundles-check-probs-range", "theory", _theory("bundles_check_probs_range"),
     "pseudo_labels hold(s) the value(s) 5"),
    ("bundles-check-argmax", "theory", _theory("bundles_check_argmax"), "pseudo_labels disagree with teacher_probs"),
    ("bundles-check-noise-vector", "theory", _theory("bundles_check_noise_vector"), "input_noise must be a scalar"),
]
