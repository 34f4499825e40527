"""Net surgery for fine-tuning (training/finetune_nets.py), its pure part: which layers freeze, learn slower,
or are renamed, and the checks of the source weights."""
from __future__ import annotations

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.training.finetune_nets import plan_surgery, scaled_multipliers
from caffepipe.training.initial_weights import check_transferable

LENET = ["conv1", "conv2", "ip1", "ip2"]


def test_last_layer_freezes_every_layer_below_the_renamed_classifier() -> None:
    surgery = plan_surgery(LENET, "last_layer", base_lr_mult=0.1)
    assert (surgery.classifier, surgery.renamed) == ("ip2", "ip2_target")
    assert surgery.frozen == ("conv1", "conv2", "ip1")
    assert surgery.lr_scale["ip2"] == 1.0
    assert surgery.transferred == ("conv1", "conv2", "ip1")


def test_full_trains_the_transferred_layers_at_base_lr_mult() -> None:
    surgery = plan_surgery(LENET, "full", base_lr_mult=0.1)
    assert surgery.lr_scale == {"conv1": 0.1, "conv2": 0.1, "ip1": 0.1, "ip2": 1.0}
    assert surgery.frozen == ()


def test_scratch_transfers_nothing_and_trains_at_the_source_rates() -> None:
    surgery = plan_surgery(LENET, "scratch", base_lr_mult=0.1)
    assert surgery.transferred == ()
    assert set(surgery.lr_scale.values()) == {1.0}
    assert surgery.renamed == "ip2_target"


@pytest.mark.parametrize("layers", [[], ["ip1"]])
def test_a_source_with_no_layer_below_its_classifier_is_an_error(layers: list[str]) -> None:
    with pytest.raises(CaffepipeError, match="no layer left to transfer"):
        plan_surgery(layers, "full", 1.0)


def test_an_unknown_mode_is_an_error() -> None:
    with pytest.raises(CaffepipeError, match="unknown fine-tuning mode 'half'"):
        plan_surgery(LENET, "half", 1.0)


def test_multipliers_keep_the_ratio_of_weights_and_biases_and_fill_in_caffes_default() -> None:
    assert scaled_multipliers([1, 2], 2, 0.1) == pytest.approx([0.1, 0.2])
    assert scaled_multipliers([], 2, 0.0) == [0.0, 0.0]
    assert scaled_multipliers([3], 2, 1.0) == [3.0, 1.0]


def test_weights_that_do_not_fit_name_the_layer_and_both_shapes() -> None:
    net = {"conv1": [(20, 1, 5, 5), (20,)], "ip2_target": [(10, 500), (10,)]}
    weights = {"conv1": [(32, 3, 5, 5), (32,)], "ip2": [(10, 500), (10,)]}
    with pytest.raises(CaffepipeError, match=r"layer 'conv1' has blob shapes 32x3x5x5, 32, the net expects 20x1x5x5, 20"):
        check_transferable(weights, net, "w.caffemodel")


def test_weights_sharing_no_layer_with_the_net_are_an_error() -> None:
    with pytest.raises(CaffepipeError, match="nothing to transfer"):
        check_transferable({"fc": [(10, 4)]}, {"conv1": [(20, 1, 5, 5)]}, "w.caffemodel")


def test_the_renamed_classifier_is_left_out_of_the_transfer() -> None:
    net = {"conv1": [(20, 1, 5, 5)], "ip2_target": [(3, 500)]}
    weights = {"conv1": [(20, 1, 5, 5)], "ip2": [(10, 500)]}
    assert check_transferable(weights, net, "w.caffemodel") == ["conv1"]
