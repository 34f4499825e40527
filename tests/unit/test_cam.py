"""Class activation maps on arrays: the identity that makes them CAMs, upsampling, which nets, which images."""
from __future__ import annotations

import numpy as np
import pytest

from caffepipe.evaluation.cam import (LayerWiring, class_activation_maps, find_gap_head, linear_resampling,
                                      logits_from_maps, select_images, upsample)


def gap_classifier_logits(features: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """What a GAP net computes: average each channel, then the InnerProduct."""
    return features.mean(axis=(2, 3)) @ weights.T + bias


def test_mean_of_each_map_plus_bias_is_the_logit() -> None:
    rng = np.random.default_rng(3)
    features = rng.random((5, 16, 7, 7), dtype=np.float32)
    weights = rng.normal(size=(10, 16)).astype(np.float32)
    bias = rng.normal(size=10).astype(np.float32)
    maps = class_activation_maps(features, weights)
    assert maps.shape == (5, 10, 7, 7)
    np.testing.assert_allclose(logits_from_maps(maps, bias), gap_classifier_logits(features, weights, bias), atol=1e-5)
    # and a map is the weighted sum of the channels, class by class
    np.testing.assert_allclose(maps[2, 4], np.tensordot(weights[4], features[2], axes=1), rtol=1e-5)


def test_maps_refuse_weights_of_another_width() -> None:
    with pytest.raises(ValueError, match="channels"):
        class_activation_maps(np.zeros((1, 8, 2, 2)), np.zeros((10, 9)))


def test_upsampling_keeps_constant_maps_and_rows_sum_to_one() -> None:
    matrix = linear_resampling(7, 28)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    np.testing.assert_allclose(upsample(np.full((2, 3, 7, 7), 2.5), 28, 28), 2.5)
    ramp = np.tile(np.arange(7.0), (7, 1))
    wide = upsample(ramp, 28, 28)
    assert wide.shape == (28, 28)
    assert np.all(np.diff(wide, axis=1) >= 0) and wide[0, 0] == 0 and wide[0, -1] == 6


def wiring(*layers: tuple) -> list[LayerWiring]:
    return [LayerWiring(name, kind, tuple(bottoms), tuple(tops), bool(extra)) for name, kind, bottoms, tops, *extra in layers]


GAPNET = wiring(("data", "Input", [], ["data"]),
                ("conv5", "Convolution", ["data"], ["conv5"]),
                ("conv5_relu", "ReLU", ["conv5"], ["conv5"]),
                ("gap", "Pooling", ["conv5"], ["gap"], True),
                ("drop", "Dropout", ["gap"], ["gap"]),
                ("ip", "InnerProduct", ["gap"], ["ip"]),
                ("prob", "Softmax", ["ip"], ["prob"]))


def test_a_gap_net_is_found_through_dropout() -> None:
    head, reason = find_gap_head(GAPNET)
    assert reason == ""
    assert (head.features, head.pooling, head.classifier) == ("conv5", "gap", "ip")


@pytest.mark.parametrize("change, expected", [
    (lambda net: [*net[:5], wiring(("fc", "InnerProduct", ["gap"], ["fc"]))[0], *net[5:]], "2 InnerProduct"),
    (lambda net: [layer if layer.name != "gap" else LayerWiring("gap", "Pooling", ("conv5",), ("gap",), False)
                  for layer in net], "not a global average pooling"),
    (lambda net: [*net[:4], LayerWiring("relu", "ReLU", ("gap",), ("gap",)), *net[4:]], "changes the pooled"),
])
def test_other_nets_are_refused_with_the_reason(change, expected) -> None:
    head, reason = find_gap_head(change(GAPNET))
    assert head is None and expected in reason


def test_lenet_has_no_cam() -> None:
    lenet = wiring(("data", "Input", [], ["data"]), ("conv1", "Convolution", ["data"], ["conv1"]),
                   ("pool2", "Pooling", ["conv1"], ["pool2"]), ("ip1", "InnerProduct", ["pool2"], ["ip1"]),
                   ("ip2", "InnerProduct", ["ip1"], ["ip2"]))
    assert find_gap_head(lenet) == (None, "it has 2 InnerProduct layers; a CAM net has exactly one, after a global "
                                          "average pooling")


def test_images_are_the_first_right_and_the_most_confident_wrong_of_each_class() -> None:
    labels = np.array([0, 1, 0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.95, 0.05], [0.6, 0.4], [0.3, 0.7]])
    chosen = select_images(labels, probs, right_per_class=1, wrong_per_class=1)
    assert [(entry["index"], entry["correct"]) for entry in chosen] == [(0, True), (5, True), (3, False)]
    wrong = chosen[2]
    assert (wrong["label"], wrong["prediction"]) == (1, 0)
    assert wrong["p_prediction"] == pytest.approx(0.95) and wrong["p_label"] == pytest.approx(0.05)
    # class 1 has one right answer only
    assert [entry["index"] for entry in select_images(labels, probs, right_per_class=2, wrong_per_class=0)] == [0, 2, 5]
