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


# ---- issue 23, 7: Unicode labels are compared in NFC without surrounding spaces; no class grows the set --------


def _named(split, names, **changes):
    arrays = dict(labeled_alpha=split.labeled_alpha, unlabeled_alpha=split.unlabeled_alpha,
                  unlabeled_beta=split.unlabeled_beta, test_alpha=split.test_alpha, test_beta=split.test_beta,
                  **{k: np.asarray(names)[getattr(split, k)] for k in LABEL_KEYS})
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def test_nfd_and_padded_labels_are_the_classes_of_d_l():
    split = _split(3)
    nfc = ["caf\u00e9", "th\u00e9", "eau"]
    test = np.asarray(["cafe\u0301", "the\u0301 ", " eau"])[split.test_labels]  # NFD, a trailing and a leading space
    loaded = split_from_arrays(_named(split, nfc, test_labels=test))
    assert loaded.n_classes == 3 and loaded.meta["classes"] == sorted(nfc)
    np.testing.assert_array_equal(np.asarray(loaded.meta["classes"])[loaded.test_labels],
                                  np.asarray(nfc)[split.test_labels])


def test_a_label_d_l_lacks_is_named_with_its_escaped_form():
    split = _split(3)
    pseudo = np.asarray(["cat", "cow", "dog"])[split.unlabeled_labels].astype("<U8")
    pseudo[4] = "dog\u200b"  # a zero-width space: not whitespace, invisible on screen
    with pytest.raises(MKEError) as e:
        split_from_arrays(_named(split, ["cat", "cow", "dog"], pseudo_labels=pseudo))
    message = str(e.value)
    assert "pseudo_labels hold(s) the value(s) 'dog\\u200b', not class(es) of labels" in message
    assert "'cat', 'cow', 'dog'" in message and ". " not in message


def test_a_look_alike_is_shown_escaped():
    split = _split(3)
    test = np.asarray(["caf\u00e9", "th\u00e9", "eau"])[split.test_labels]
    test[0] = "caf\u0435"  # a Cyrillic e: NFC keeps it, the screen does not tell it from a Latin one
    with pytest.raises(MKEError, match=r"test_labels hold\(s\) the value\(s\) 'caf\u0435' = 'caf\\u0435', not"):
        split_from_arrays(_named(split, ["caf\u00e9", "th\u00e9", "eau"], test_labels=test))


@pytest.mark.parametrize("allow", [False, True])
def test_integer_teacher_predictions_of_a_class_d_l_lacks_are_refused(allow):
    split = _split(3)
    arrays = _named(split, [0, 1, 2], pseudo_labels=split.unlabeled_labels,
                    teacher_test_pred=np.where(np.arange(len(split.test_labels)) < 2, 3, split.test_labels))
    with pytest.raises(MKEError, match=r"teacher_test_pred hold\(s\) the value\(s\) 3, not class\(es\) of labels"):
        split_from_arrays(arrays, allow_missing_classes=allow)  # a gap may be allowed; a class beyond D_l's never


def test_without_d_l_the_labeled_sets_give_the_classes():
    split = _split(3)
    arrays = _named(split, ["a", "b", "c"], labeled_alpha=None, labels=None,
                    pseudo_labels=np.where(np.arange(len(split.unlabeled_labels)) < 1, "d",
                                           np.asarray(["a", "b", "c"])[split.unlabeled_labels]))
    with pytest.raises(MKEError, match=r"pseudo_labels hold\(s\) the value\(s\) 'd', not class\(es\) of test_labels "
                                       r"and unlabeled_labels"):
        split_from_arrays(arrays)
    arrays["pseudo_labels"] = np.asarray(["a", "b", "c"])[split.unlabeled_labels]
    assert split_from_arrays(arrays).meta["classes"] == ["a", "b", "c"]


def test_a_blank_label_is_refused():
    split = _split(3)
    labels = np.asarray(["a", "b", "c"])[split.labels].astype("<U3")
    labels[7] = " \t"
    with pytest.raises(MKEError, match=r"labels hold\(s\) an empty label \(row 7: ' \\t'\)"):
        split_from_arrays(_named(split, ["a", "b", "c"], labels=labels))


# ---- issue 23, 6: keys the bundle does not know ---------------------------------------------------------------


@pytest.mark.parametrize("key, words", [("teacher_prob", "teacher_prob (did you mean teacher_probs?)"),
                                        ("pseudo_label", "pseudo_label (did you mean pseudo_labels?)"),
                                        ("Teacher_Probs", "Teacher_Probs (did you mean"),
                                        ("soft_targets", "unknown key(s) soft_targets;")])
def test_a_key_meant_as_teacher_output_is_an_error(key, words):
    split = _split(3)
    arrays = _named(split, [0, 1, 2], **{key: np.full((len(split.unlabeled_labels), 3), 1 / 3)})
    with pytest.raises(MKEError) as e:
        split_from_arrays(arrays)
    assert words in str(e.value)


def test_other_extra_keys_are_ignored_with_a_warning_naming_them():
    split = _split(3)
    arrays = _named(split, [0, 1, 2], sample_ids=np.arange(30), class_names=np.array(["x", "y", "z"]))
    with pytest.warns(UserWarning, match="key.s. sample_ids, class_names are not bundle keys and are ignored"):
        loaded = split_from_arrays(arrays)
    assert loaded.n_classes == 3
