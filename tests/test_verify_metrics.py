import numpy as np

from shipyard.verify import choose_metric, verify_outputs


def _logits(classes):
    out = np.zeros((len(classes), 4), dtype=np.float32)
    out[np.arange(len(classes)), classes] = 1.0
    return out


def test_accuracy_drop_is_counted_in_points_against_the_source():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    reference = {"logits": _logits(labels)}  # source: 100 %
    wrong_two = labels.copy()
    wrong_two[:2] = 3
    result = verify_outputs(
        "accuracy", reference, {"logits": _logits(wrong_two)}, labels, max_drop=1.0
    )
    assert result.reference_value == 100.0
    assert result.value == 80.0
    assert result.drop == 20.0
    assert not result.passed
    assert "budget 1" in result.reason
    assert verify_outputs("accuracy", reference, reference, labels, 1.0).passed


def test_agreement_and_cosine_without_labels():
    reference = {"out": np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)}
    candidate = {"out": np.array([[0.9, 0.1], [0.6, 0.4]], dtype=np.float32)}
    agreement = verify_outputs("agreement", reference, candidate, None, max_drop=10)
    assert agreement.value == 50.0 and not agreement.passed
    cosine = verify_outputs("cosine", reference, candidate, None, max_drop=50)
    assert 50 < cosine.value < 100
    assert cosine.outputs[0].max_abs > 0.5


def test_nan_outputs_never_pass():
    reference = {"out": np.ones((2, 3), dtype=np.float32)}
    broken = {"out": np.array([[1, 1, np.nan], [1, 1, 1]], dtype=np.float32)}
    result = verify_outputs("agreement", reference, broken, None, max_drop=100)
    assert not result.passed and "NaN" in result.reason


def test_metric_choice_follows_labels_and_task():
    assert choose_metric(None, "classification", True) == "accuracy"
    assert choose_metric(None, "classification", False) == "agreement"
    assert choose_metric(None, "embedding", False) == "cosine"
    assert choose_metric("cosine", "classification", True) == "cosine"
