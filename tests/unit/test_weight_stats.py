"""weight-stats' statistics on plain arrays, against numpy's own, and the sentences made from them."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from caffepipe.inspection import weight_stats as ws

FLOATS = st.floats(min_value=-10, max_value=10, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6), elements=FLOATS))
def test_blob_summary_is_numpys_mean_std_and_norm(values: np.ndarray) -> None:
    summary = ws.blob_summary(values)
    as64 = values.astype(np.float64)
    assert summary["count"] == values.size
    assert summary["mean"] == pytest.approx(np.mean(as64), rel=1e-12, abs=1e-12)
    assert summary["std"] == pytest.approx(np.std(as64), rel=1e-9, abs=1e-9)
    assert summary["norm"] == pytest.approx(np.linalg.norm(as64.ravel()), rel=1e-12, abs=1e-12)


def test_relative_change_is_the_norm_of_the_difference_over_the_previous_norm() -> None:
    rng = np.random.default_rng(0)
    before = rng.normal(size=(20, 1, 5, 5)).astype(np.float32)
    after = before + rng.normal(scale=0.1, size=before.shape).astype(np.float32)
    expected = np.linalg.norm((after.astype(np.float64) - before).ravel()) / np.linalg.norm(before.astype(np.float64).ravel())
    assert ws.relative_change(after, before) == pytest.approx(expected, rel=1e-12)
    assert ws.relative_change(before, before) == 0.0
    assert math.isnan(ws.relative_change(before, np.zeros_like(before)))


def test_a_dead_unit_is_zero_for_every_image() -> None:
    outputs = np.array([[0.0, 1.0, 0.0, 0.0],
                        [0.0, 0.0, 2.0, 0.0],
                        [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    assert ws.dead_fraction(outputs) == 0.5                      # units 0 and 3
    maps = np.zeros((2, 3, 2, 2), dtype=np.float32)              # conv-shaped: a unit is a channel at a position
    maps[1, 0, 0, 0] = 0.5
    assert ws.dead_fraction(maps) == 11 / 12


def test_weight_rows_for_two_snapshots_match_numpy() -> None:
    rng = np.random.default_rng(1)
    first = {"conv1": [rng.normal(size=(4, 1, 3, 3)), rng.normal(size=4)], "ip1": [rng.normal(size=(10, 36)), rng.normal(size=10)]}
    second = {layer: [blob * 1.5 + 0.01 for blob in blobs] for layer, blobs in first.items()}
    rows = pd.DataFrame(ws.weight_rows(10, first, None) + ws.weight_rows(510, second, (10, first)))
    assert list(rows[["layer", "blob"]].itertuples(index=False, name=None))[:4] == [
        ("conv1", "weights"), ("conv1", "biases"), ("ip1", "weights"), ("ip1", "biases")]
    assert rows.loc[rows["iteration"] == 10, "relative_change"].isna().all()
    later = rows[(rows["iteration"] == 510) & (rows["layer"] == "ip1") & (rows["blob"] == "weights")].iloc[0]
    w1, w0 = second["ip1"][0], first["ip1"][0]
    assert later["norm"] == pytest.approx(np.linalg.norm(w1))
    assert later["std"] == pytest.approx(np.std(w1))
    assert later["relative_change"] == pytest.approx(np.linalg.norm(w1 - w0) / np.linalg.norm(w0))
    assert later["change_per_1k"] == pytest.approx(later["relative_change"] * 1000 / 500)


def test_histograms_share_their_bins_across_snapshots_and_count_every_weight() -> None:
    rng = np.random.default_rng(2)
    small, large = rng.normal(scale=0.1, size=(30, 20)), rng.normal(scale=0.5, size=(30, 20))
    rows = pd.DataFrame(ws.histogram_rows({10: {"ip1": [small]}, 1000: {"ip1": [large]}}, bins=11))
    limit = max(np.abs(small).max(), np.abs(large).max())
    for iteration, weights in ((10, small), (1000, large)):
        frame = rows[rows["iteration"] == iteration]
        assert len(frame) == 11 and frame["count"].sum() == weights.size
        expected, edges = np.histogram(weights, bins=np.linspace(-limit, limit, 12))
        np.testing.assert_array_equal(frame["count"], expected)
        np.testing.assert_allclose(frame["left"], edges[:-1])


@pytest.mark.parametrize("count,wanted,positions", [(11, 3, [0, 5, 10]), (2, 3, [0, 1]), (5, 1, [4]), (9, 4, [0, 3, 5, 8])])
def test_histogram_snapshots_are_first_last_and_evenly_between(count: int, wanted: int, positions: list[int]) -> None:
    assert ws.histogram_positions(count, wanted) == positions


def test_activation_rows_measure_every_output_and_dead_units_only_for_relus() -> None:
    ip1 = np.array([[-1.0, 2.0], [-3.0, 4.0]], dtype=np.float32)
    relu1 = np.maximum(ip1, 0)
    rows = ws.activation_rows(100, [("ip1", "InnerProduct", "ip1", ip1), ("relu1", "ReLU", "ip1", relu1)])
    assert rows[0]["mean"] == pytest.approx(np.mean(ip1)) and rows[0]["std"] == pytest.approx(np.std(ip1))
    assert math.isnan(rows[0]["dead_fraction"])
    assert rows[1]["dead_fraction"] == 0.5 and rows[1]["mean"] == pytest.approx(1.5)


def test_settled_from_is_the_start_of_the_quiet_tail() -> None:
    iterations = [10, 100, 1000, 3000, 6000, 10000]
    assert ws.settled_from(iterations, [math.nan, 5.0, 0.5, 0.02, 0.005, 0.004], 0.01) == 3000
    assert ws.settled_from(iterations, [math.nan, 5.0, 0.5, 0.02, 0.005, 0.04], 0.01) is None
    assert ws.settled_from(iterations, [math.nan, 0.001, 0.001, 0.002, 0.005, 0.004], 0.01) == 10
    assert ws.settled_from(iterations, [math.nan, 5.0, 0.001, 0.05, 0.005, 0.004], 0.01) == 3000


def weights_table(changes: dict[str, list[float]], norms: list[float], iterations: list[int]) -> pd.DataFrame:
    rows = []
    for layer, per_1k in changes.items():
        for iteration, change, norm in zip(iterations, per_1k, norms):
            rows.append({"iteration": iteration, "layer": layer, "blob": "weights", "norm": norm, "change_per_1k": change,
                         "relative_change": change * 4})
            rows.append({"iteration": iteration, "layer": layer, "blob": "biases", "norm": 1.0, "change_per_1k": 9.0,
                         "relative_change": 9.0})
    return pd.DataFrame(rows)


def test_sentences_say_when_each_layer_stops_moving_or_that_it_still_moves() -> None:
    iterations = [10, 1000, 3000, 6000, 10000]
    table = weights_table({"conv1": [math.nan, 0.5, 0.2, 0.004, 0.003], "ip1": [math.nan, 0.5, 0.2, 0.1, 0.05]},
                          [2.0, 3.0, 3.5, 3.6, 3.6], iterations)
    conv1, ip1 = ws.weight_observations(table, threshold=0.01)
    assert conv1["layer"] == "conv1" and conv1["text"].startswith(
        "conv1's weights stop moving after iteration ~3,000: from there to iteration 10,000 they change by less than 1.0%")
    assert "went from 2 at iteration 10 to 3.6 (1.80x)" in conv1["text"]
    assert ip1["text"].startswith("ip1's weights still move at the end: they changed by 20% between iterations 6,000 "
                                  "and 10,000 (5.0% per 1,000 iterations)")


def test_dead_relu_sentence_compares_the_end_with_the_start() -> None:
    frame = pd.DataFrame([
        {"iteration": 10, "layer": "relu1", "type": "ReLU", "top": "ip1", "dead_fraction": 0.03},
        {"iteration": 10, "layer": "ip1", "type": "InnerProduct", "top": "ip1", "dead_fraction": math.nan},
        {"iteration": 10000, "layer": "relu1", "type": "ReLU", "top": "ip1", "dead_fraction": 0.124},
    ])
    (sentence,) = ws.dead_relu_observations(frame, images=100)
    assert sentence["text"] == ("relu1 (on ip1) has 12% dead units at the end (zero for all 100 test images at "
                                "iteration 10,000), against 3.0% at iteration 10.")
