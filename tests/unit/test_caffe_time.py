"""The `caffe time` log parser, on log lines written here in both glog prefix forms."""
from __future__ import annotations

import pytest

from caffepipe.inspection.time import CaffeTime, LayerTime, glog_message, layers_csv, parse_caffe_time
from caffepipe.core.errors import CaffepipeError


def caffe_time_log(year: bool = True, layers=(("data", 0.03, 0.0007), ("conv1", 0.215, 0.283333), ("loss", 0.01, 5e-05)),
                   totals=(2.399, 2.36067, 4.66667)) -> list[str]:
    """The lines `caffe time -iterations 3` logs for a small net, shaped exactly as caffe.cpp writes them."""
    date = "20261122" if year else "1122"

    def line(source: str, message: str) -> str:
        return f"I{date} 19:30:53.222147 10671 {source}] {message}"

    lines = [
        line("net.cpp:84", "Creating Layer data"),
        line("net.cpp:139", "Setting up data"),
        line("net.cpp:146", "Top shape: 64 1 28 28 (50176)"),
        line("net.cpp:146", "Top shape: 64 (64)"),
        line("net.cpp:146", "Top shape: 64 20 24 24 (737280)"),
        line("caffe.cpp:351", "Performing Forward"),
        line("caffe.cpp:356", "Initial loss: 2.25575"),
        line("caffe.cpp:365", "*** Benchmark begins ***"),
        line("caffe.cpp:366", "Testing for 3 iterations."),
        line("caffe.cpp:394", "Iteration: 1 forward-backward time: 5 ms."),
        line("caffe.cpp:397", "Average time per layer: "),
    ]
    for name, forward, backward in layers:
        lines.append(line("caffe.cpp:400", f"{name:>10}\tforward: {forward:g} ms."))
        lines.append(line("caffe.cpp:403", f"{name:>10}\tbackward: {backward:g} ms."))
    lines += [
        line("caffe.cpp:408", f"Average Forward pass: {totals[0]:g} ms."),
        line("caffe.cpp:410", f"Average Backward pass: {totals[1]:g} ms."),
        line("caffe.cpp:412", f"Average Forward-Backward: {totals[2]:g} ms."),
        line("caffe.cpp:414", "Total Time: 14 ms."),
        line("caffe.cpp:415", "*** Benchmark ends ***"),
    ]
    return lines


@pytest.mark.parametrize("year", [True, False], ids=["glog-with-year", "glog-without-year"])
def test_parses_per_layer_times_and_totals_in_net_order(year: bool) -> None:
    result = parse_caffe_time(caffe_time_log(year=year))
    assert result == CaffeTime(
        layers=(LayerTime("data", 0.03, 0.0007), LayerTime("conv1", 0.215, 0.283333), LayerTime("loss", 0.01, 5e-05)),
        forward_ms=2.399, backward_ms=2.36067, forward_backward_ms=4.66667, iterations=3, batch_size=64)


def test_glog_prefix_is_removed_in_both_forms_and_other_lines_pass_through() -> None:
    assert glog_message("I20261122 11:37:50.217981  9252 solver.cpp:414] Iteration 0") == "Iteration 0"
    assert glog_message("I1122 11:37:50.217981 9252 caffe.cpp:400]      conv1\tforward: 1 ms.") == "     conv1\tforward: 1 ms."
    assert glog_message("no prefix here\n") == "no prefix here"


def test_layer_names_with_dots_dashes_and_slashes_are_kept_whole() -> None:
    layers = (("inception/3x3-reduce", 1.5, 2.5), ("fc.7", 0.25, 0.5))
    result = parse_caffe_time(caffe_time_log(layers=layers))
    assert [layer.layer for layer in result.layers] == ["inception/3x3-reduce", "fc.7"]


def test_scientific_notation_and_integers_are_read() -> None:
    result = parse_caffe_time(caffe_time_log(layers=(("relu1", 1e-05, 2),), totals=(3, 4e-3, 1234.5)))
    assert result.layers == (LayerTime("relu1", 1e-05, 2.0),)
    assert (result.forward_ms, result.backward_ms, result.forward_backward_ms) == (3.0, 0.004, 1234.5)


def test_a_log_cut_before_the_totals_is_an_error() -> None:
    lines = caffe_time_log()
    truncated = [line for line in lines if "Average Forward-Backward" not in line and "Average Backward pass" not in line]
    with pytest.raises(CaffepipeError, match="forward_backward_ms"):
        parse_caffe_time(truncated)
    with pytest.raises(CaffepipeError, match="no per-layer table"):
        parse_caffe_time(lines[:8])


def test_a_layer_with_only_a_forward_time_is_an_error() -> None:
    lines = [line for line in caffe_time_log() if not line.endswith("conv1\tbackward: 0.283333 ms.")]
    with pytest.raises(CaffepipeError, match="conv1"):
        parse_caffe_time(lines)


def test_layers_csv_has_one_row_per_layer() -> None:
    text = layers_csv(parse_caffe_time(caffe_time_log()))
    assert text.splitlines() == ["layer,forward_ms,backward_ms", "data,0.03,0.0007", "conv1,0.215,0.283333", "loss,0.01,5e-05"]
