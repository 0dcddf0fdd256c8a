"""Every metric by hand: accuracy/macro-F1, top-k and mAP, confusion matrix and mIoU."""

import numpy as np
import pytest

from mke_experiments.metrics import classification_metrics, confusion_matrix, miou, scores_metrics, segmentation_metrics
from mke_theory.core.split import IGNORE


def test_accuracy_and_macro_f1_by_hand():
    pred, labels = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0])
    m = classification_metrics(pred, labels, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: 0: P 1/2 R 1/2 → 1/2; 1: P 1 R 1/2 → 2/3; 2: P 2/3 R 1 → 4/5
    assert m["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 4 / 5) / 3)


def test_topk_and_map_by_hand():
    scores = np.array([[0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]])
    labels = np.array([0, 2, 1, 2])
    m = scores_metrics(scores, labels, 3)
    assert m["top1"] == pytest.approx(3 / 4)  # sample 1 is ranked second
    # AP: class 0: one positive ranked first → 1; class 1: positive (0.6) first → 1;
    # class 2: positives 0.4 (rank 1) and 0.3 (tied with 0.3 of sample 2 at rank 2–3): sklearn → (1 + 2/3) / 2
    assert m["map"] == pytest.approx((1 + 1 + (1 + 2 / 3) / 2) / 3)
    assert scores_metrics(scores, labels, 3)["top5"] == 1.0  # three classes: always in the top five
    multi = np.array([[1, 0, 1], [0, 1, 0], [0, 1, 0], [0, 0, 1]], float)  # multi-label rows work too
    assert scores_metrics(scores, multi, 3)["top1"] == pytest.approx(1.0)


CONFUSION = np.array([[3, 1, 0, 0],  # rows: true class 0..3, columns: predicted
                      [1, 2, 1, 0],
                      [0, 0, 4, 0],
                      [0, 0, 0, 0]])  # class 3 appears nowhere


def pixels_of(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, pred = np.nonzero(confusion)
    counts = confusion[truth, pred]
    return np.repeat(pred, counts), np.repeat(truth, counts)


def test_miou_on_a_hand_computed_confusion_matrix():
    pred, target = pixels_of(CONFUSION)
    pred, target = np.concatenate([pred, [1, 2, 3]]), np.concatenate([target, [255, 255, 255]])  # void
    matrix = confusion_matrix(pred.reshape(3, 5), target.reshape(3, 5), 4, ignore=255)
    np.testing.assert_array_equal(matrix, CONFUSION)
    mean, iou, accuracy = miou(matrix)
    # IoU = TP / (TP + FP + FN): 3 / (3+1+1), 2 / (2+1+2), 4 / (4+1+0); class 3 absent from both: NaN
    np.testing.assert_allclose(iou[:3], [3 / 5, 2 / 5, 4 / 5])
    assert np.isnan(iou[3])
    assert mean == pytest.approx((0.6 + 0.4 + 0.8) / 3) and accuracy == pytest.approx(9 / 12)

    only_predicted = CONFUSION.copy()
    only_predicted[2, 3] = 1  # a class predicted but absent from the truth scores 0 and counts
    mean, iou, _ = miou(only_predicted)  # class 2: TP 4, FP 1, FN 1
    np.testing.assert_allclose(iou, [3 / 5, 2 / 5, 4 / 6, 0])
    assert mean == pytest.approx((3 / 5 + 2 / 5 + 4 / 6 + 0) / 4)


def test_miou_sums_images_and_ignores_void_in_the_cached_labels():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 41, (3, 8, 8))  # 0 = void, 1..40 as in the cache
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 41, target.shape))
    whole = confusion_matrix(pred, target, 41, ignore=0)
    assert whole[0].sum() == 0 and whole.sum() == (target != 0).sum()
    np.testing.assert_array_equal(whole, sum(confusion_matrix(p, t, 41, ignore=0) for p, t in zip(pred, target)))
    mean, iou, accuracy = miou(whole, ignore=0)
    assert np.isnan(iou[0]) and mean == pytest.approx(np.nanmean(iou[1:]))
    labeled = target != 0
    assert accuracy == pytest.approx((pred[labeled] == target[labeled]).mean())  # predicting void is an error
    forty = np.maximum(pred, 1)  # a 40-logit model never predicts void
    shifted = confusion_matrix(forty.astype(np.int16) - 1, target.astype(np.int16) - 1, 40, ignore=-1)  # 0..39
    np.testing.assert_array_equal(shifted, confusion_matrix(forty, target, 41, ignore=0)[1:, 1:])
    with pytest.raises(ValueError, match="outside 0..40"):
        confusion_matrix(np.full(4, 41), np.ones(4), 41)


def test_segmentation_metrics_leave_void_out_and_name_classes():
    labels = np.array([[0, 1, IGNORE], [1, 1, IGNORE]])
    pred = np.array([[0, 1, 0], [0, 1, 1]])  # predictions on void pixels change nothing
    m = segmentation_metrics(pred, labels, 2, class_names=("wall", "floor"))
    # class 0: TP 1, FP 1 → 1/2; class 1: TP 2, FN 1 → 2/3; 3 of 4 labelled pixels right
    assert m["iou_wall"] == pytest.approx(1 / 2) and m["iou_floor"] == pytest.approx(2 / 3)
    assert m["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2) and m["pixel_accuracy"] == pytest.approx(3 / 4)
    assert segmentation_metrics(np.where(labels == IGNORE, 1, pred), labels, 2)["miou"] == m["miou"]
