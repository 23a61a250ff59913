from __future__ import annotations

import numpy as np
import pytest

from convtrain.evaluate.metrics import (
    Predictions,
    compute_metrics,
    confused_pairs,
    softmax_if_logits,
    top_k_indices,
)


def _onehotish(labels: list[int], num_classes: int, confidence: float = 0.7) -> np.ndarray:
    probs = np.full((len(labels), num_classes), (1 - confidence) / (num_classes - 1))
    probs[np.arange(len(labels)), labels] = confidence
    return probs


def test_accuracy_mean_per_class_and_top_k_by_hand():
    classes = ("a", "b", "c")
    y_true = np.array([0, 0, 0, 0, 1, 2])
    # Class a: 3 of 4 right; b: wrong (second guess right); c: right.
    probs = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.7, 0.2, 0.1],
            [0.6, 0.3, 0.1],
            [0.1, 0.2, 0.7],
            [0.6, 0.3, 0.1],
            [0.2, 0.1, 0.7],
        ]
    )
    m = compute_metrics(Predictions(classes, y_true, probs), top_k=2)
    assert m.num_images == 6
    assert m.accuracy == pytest.approx(4 / 6)
    # Recall per class: 3/4, 0/1, 1/1 -> mean 7/12 (not the plain accuracy).
    assert m.mean_per_class_accuracy == pytest.approx((0.75 + 0.0 + 1.0) / 3)
    # Top-2 misses only image 3 (true a, ranked a last).
    assert m.top_k == 2
    assert m.top_k_accuracy == pytest.approx(5 / 6)
    assert m.confusion.tolist() == [[3, 0, 1], [1, 0, 0], [0, 0, 1]]
    assert m.per_class_accuracy.tolist() == [0.75, 0.0, 1.0]
    assert m.report["a"]["recall"] == pytest.approx(0.75)
    assert m.report["c"]["precision"] == pytest.approx(0.5)
    assert "support" in m.report_text and " b " in m.report_text


def test_top_k_is_capped_at_the_number_of_classes():
    probs = _onehotish([0, 1], 2)
    m = compute_metrics(Predictions(("x", "y"), np.array([1, 0]), probs), top_k=5)
    assert m.top_k == 2
    assert m.top_k_accuracy == 1.0
    assert m.accuracy == 0.0


def test_class_absent_from_the_split_is_left_out_of_the_mean_and_is_nan():
    probs = _onehotish([0, 0, 1], 3)
    m = compute_metrics(Predictions(("a", "b", "c"), np.array([0, 1, 1]), probs), top_k=1)
    assert m.mean_per_class_accuracy == pytest.approx((1.0 + 0.5) / 2)
    assert np.isnan(m.per_class_accuracy[2])
    assert m.support.tolist() == [1, 2, 0]
    # The report still lists every class.
    assert m.report["c"]["support"] == 0


def test_confused_pairs_worst_first_with_fraction_of_the_true_class():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = [1, 1, 0, 2, 1, 0, 1, 2, 2]
    m = compute_metrics(Predictions(("a", "b", "c"), y_true, _onehotish(y_pred, 3)), top_k=1)
    pairs = confused_pairs(m)
    assert [(p.true, p.predicted, p.count) for p in pairs] == [
        ("a", "b", 2),
        ("b", "c", 1),  # 1 of 2 images of b: 0.5
        ("c", "a", 1),  # 1 of 4 images of c: 0.25
        ("c", "b", 1),
    ]
    assert pairs[0].fraction == pytest.approx(2 / 3)
    assert pairs[1].fraction == pytest.approx(0.5)


def test_no_confusion_no_pairs():
    m = compute_metrics(Predictions(("a", "b"), np.array([0, 1]), _onehotish([0, 1], 2)), top_k=1)
    assert confused_pairs(m) == []
    assert m.accuracy == 1.0


def test_shape_mismatch_and_empty_split_are_refused():
    with pytest.raises(
        ValueError,
        match=r"expected probabilities of shape \(2, 3\) for 2 images and 3 classes, received \(2, 2\)",
    ):
        Predictions(("a", "b", "c"), np.array([0, 1]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="expected at least one image to evaluate, received none"):
        compute_metrics(Predictions(("a", "b"), np.zeros(0, dtype=int), np.zeros((0, 2))), top_k=1)


def test_softmax_only_for_logits():
    probs = np.array([[0.2, 0.8], [0.5, 0.5]])
    np.testing.assert_allclose(softmax_if_logits(probs), probs)
    logits = np.array([[0.0, np.log(3.0)], [-2.0, 5.0]])
    out = softmax_if_logits(logits)
    np.testing.assert_allclose(out[0], [0.25, 0.75])
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_top_k_indices_most_probable_first_ties_by_index():
    probs = np.array([[0.1, 0.4, 0.1, 0.4]])
    assert top_k_indices(probs, 3).tolist() == [[1, 3, 0]]
