"""Labels of the arrays bundle (issue 16, 4): integer or string values are encoded once to 0 … K−1, the
mapping kept in the split and in every record; a gap in integer labels names the missing classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mke_experiments.config import resolve_config
from mke_experiments.protocol import run_seed
from mke_experiments.tasks import get_task
from mke_experiments.tasks.arrays import ArraysData, load, split_from_arrays
from mke_experiments.testing.bundles import write_bundle
from mke_theory.core.errors import MKEError
from mke_theory.generators import gaussian_mixture

LABEL_KEYS = ("labels", "test_labels", "unlabeled_labels")


def _split(n_classes=3):
    return gaussian_mixture(n_classes=n_classes, n_labeled=10 * n_classes, n_unlabeled=40 * n_classes,
                            n_test=20 * n_classes, random_state=0)


def _relabel(split, values):
    values = np.asarray(values)
    return {k: values[getattr(split, k)] for k in LABEL_KEYS}


def test_labels_1_to_10_are_10_classes_not_11(tmp_path):
    split = _split(10)
    loaded = load(ArraysData(), write_bundle(tmp_path / "b.npz", split, **_relabel(split, np.arange(1, 11))))
    assert loaded.n_classes == 10
    assert loaded.meta["classes"] == list(range(1, 11))
    np.testing.assert_array_equal(loaded.labels, split.labels)  # 1 → 0, …, 10 → 9


def test_a_gap_names_the_missing_classes_unless_allowed(tmp_path):
    split = _split(3)
    path = write_bundle(tmp_path / "gap.npz", split, **_relabel(split, [1, 2, 5]))
    with pytest.raises(MKEError, match=r"skip class\(es\) 3, 4 between 1 and 5.*allow_missing_classes"):
        load(ArraysData(), path)
    kept = load(ArraysData(allow_missing_classes=True), path)
    assert kept.n_classes == 5 and kept.meta["classes"] == [1, 2, 3, 4, 5]
    original = np.array([1, 2, 5])[split.test_labels]
    np.testing.assert_array_equal(np.asarray(kept.meta["classes"])[kept.test_labels], original)


def test_string_labels_round_trip_through_the_stored_mapping(tmp_path):
    split = _split(3)
    names = np.array(["dog", "cat", "cow"])
    arrays = _relabel(split, names)
    loaded = load(ArraysData(), write_bundle(tmp_path / "s.npz", split, **arrays))
    assert loaded.meta["classes"] == ["cat", "cow", "dog"]  # sorted: column order of teacher_probs
    for k in LABEL_KEYS:
        np.testing.assert_array_equal(np.asarray(loaded.meta["classes"])[getattr(loaded, k)], arrays[k])


def test_pseudo_labels_use_the_same_mapping_and_every_record_stores_it(tmp_path):
    split = _split(3)
    names = np.array(["dog", "cat", "cow"])
    path = write_bundle(tmp_path / "s.npz", split, **_relabel(split, names),
                        pseudo_labels=names[split.unlabeled_labels], teacher_test_pred=names[split.test_labels])
    task = get_task("arrays")
    cfg, loaded = task.load_split(resolve_config(task, (), 1), path)
    result = run_seed(cfg, loaded, 0, methods=("teacher", "mm_student"), device=torch.device("cpu"))
    np.testing.assert_array_equal(result.pseudo_labels, loaded.unlabeled_labels)
    assert {r["method"] for r in result.records} == {"teacher", "mm_student"}
    for r in result.records:
        assert r["config"]["classes"] == ["cat", "cow", "dog"]
    assert next(r for r in result.records if r["method"] == "teacher")["metrics"]["test_accuracy"] == 1.0


def test_mixed_string_and_integer_labels_are_one_sentence():
    split = _split(3)
    arrays = dict(labeled_alpha=split.labeled_alpha, labels=np.array(["a", "b", "c"])[split.labels],
                  unlabeled_alpha=split.unlabeled_alpha, unlabeled_beta=split.unlabeled_beta,
                  test_alpha=split.test_alpha, test_beta=split.test_beta, test_labels=split.test_labels)
    with pytest.raises(MKEError, match="labels hold.*string labels but test_labels integer"):
        split_from_arrays(arrays)


def test_the_allow_missing_classes_setting_reaches_the_loader(tmp_path):
    split = _split(3)
    path = write_bundle(tmp_path / "gap.npz", split, **_relabel(split, [0, 1, 3]))
    task = get_task("arrays")
    cfg = resolve_config(task, ("data.allow_missing_classes=true",), 1)
    assert task.load_split(cfg, path)[1].n_classes == 4
