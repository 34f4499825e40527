"""GFLOP/s and share of the peak from multiply-adds and `caffe time` milliseconds, worked out by hand."""
from __future__ import annotations

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.inspection.flop_rate import achieved_gflops, flop_rates, share_of_peak

# complexity.json's per-image counts for a two-layer net: conv1 reads the data (its backward is 1x), ip1 2x.
COST = {"multiply_adds": 1_000_000 + 500_000, "backward_multiply_adds": 1_000_000 + 1_000_000, "layers": [
    {"name": "data", "type": "Input", "multiply_adds": 0, "backward_multiply_adds": 0},
    {"name": "conv1", "type": "Convolution", "multiply_adds": 1_000_000, "backward_multiply_adds": 1_000_000},
    {"name": "pool1", "type": "Pooling", "multiply_adds": 0, "backward_multiply_adds": 0},
    {"name": "ip1", "type": "InnerProduct", "multiply_adds": 500_000, "backward_multiply_adds": 1_000_000},
]}
LAYER_MS = {"data": (0.1, 0.0), "conv1": (1.0, 2.0), "pool1": (0.5, 0.5), "ip1": (0.5, 0.0)}
# Caffe's "Average Forward-Backward" counts whole milliseconds: 4 here, where the two passes add up to 4.5
TOTALS = {"forward_ms": 2.0, "backward_ms": 2.5, "forward_backward_ms": 4.0}
MACHINE = {"peak_gflops": 200.0, "cores": 2}


def test_a_multiply_add_is_two_flops() -> None:
    assert achieved_gflops(1_000_000_000, 1000.0) == pytest.approx(2.0)
    assert achieved_gflops(64_000_000, 1.0) == pytest.approx(128.0)
    assert share_of_peak(50.0, 200.0) == 0.25


def test_no_measured_time_gives_no_rate_rather_than_infinity() -> None:
    assert achieved_gflops(1000, 0.0) is None and share_of_peak(None, 200.0) is None


def test_whole_passes_and_layers_per_batch() -> None:
    rates = flop_rates("net", COST, LAYER_MS, TOTALS, batch_size=10, machine=MACHINE)
    forward = rates["passes"]["forward"]
    # 1.5M x 10 images = 15M multiply-adds = 30M flops in 2 ms: 15 GFLOP/s, 7.5% of 200
    assert forward["multiply_adds"] == 15_000_000
    assert forward["gflops"] == pytest.approx(15.0) and forward["share_of_peak"] == pytest.approx(0.075)
    # backward 20M multiply-adds in 2.5 ms: 16 GFLOP/s; both: 35M in 2.0 + 2.5 ms
    assert rates["passes"]["backward"]["gflops"] == pytest.approx(16.0)
    assert rates["passes"]["forward_backward"]["gflops"] == pytest.approx(2 * 35e6 / 4.5e-3 / 1e9)
    assert [row["layer"] for row in rates["layers"]] == ["conv1", "ip1"]     # only layers with multiply-adds
    conv1, ip1 = rates["layers"]
    # conv1: 10M multiply-adds, 20 GFLOP/s forward in 1 ms, 10 backward in 2 ms
    assert conv1["forward_gflops"] == pytest.approx(20.0) and conv1["backward_gflops"] == pytest.approx(10.0)
    assert conv1["forward_share_of_peak"] == pytest.approx(0.1)
    assert ip1["backward_multiply_adds"] == 10_000_000 and ip1["backward_gflops"] is None
    assert rates["peak_gflops"] == 200.0 and rates["cores"] == 2


def test_a_layer_the_timed_net_lacks_is_an_error() -> None:
    with pytest.raises(CaffepipeError, match="layer ip1 of the deploy net is not in the timed training net"):
        flop_rates("net", COST, {name: ms for name, ms in LAYER_MS.items() if name != "ip1"}, TOTALS, 10, MACHINE)
