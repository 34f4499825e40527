"""The Layer timings section's FLOP-rate tables and sentences, from `caffepipe time`'s files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.inspection.cpu_peak import peak_flops
from caffepipe.report.flop_rate_section import flop_rate_numbers, peak_sentences, rate_sentence
from tests.stage_outputs import STAND_IN_CPU, time_flop_reports


@pytest.fixture
def time_dir(tmp_path: Path) -> Path:
    for model in ("lenet", "mlp"):
        time_flop_reports(tmp_path / model, model)
    return tmp_path


def test_sentences_and_tables_come_from_the_stage_files(time_dir: Path) -> None:
    numbers = flop_rate_numbers(time_dir, ["lenet", "mlp"])
    # stage_outputs.time_flop_reports works these out: whole pass 2.04% of 96 GFLOP/s, conv1's forward 24%
    assert numbers["sentences"][0] == ("lenet reaches 2.0% of the 1-core peak over a forward-backward pass "
                                       "(2.0 of 96 GFLOP/s); its fastest layer pass, conv1's forward, 24.0%.")
    net = numbers["net"].set_index("model")
    assert net.loc["mlp", "forward-backward % of peak"] == pytest.approx(2.0425, abs=1e-4)
    assert net.loc["lenet", "forward M multiply-adds"] == pytest.approx(2.304)
    layers = numbers["layers"]["lenet"]
    assert list(layers["layer"]) == ["conv1"]
    assert layers.loc[0, "backward GFLOP/s"] == pytest.approx(15.36)
    assert layers.loc[0, "backward % of peak"] == pytest.approx(16.0)
    # both models ran on the same machine: one peak sentence names them both
    assert numbers["peaks"] == ["Peak of lenet, mlp: 1 core × 3,000 MHz × 8 floats × 2 flops per multiply-add × "
                                "2 FMA units = 96 GFLOP/s (Stand-in CPU; clock: /proc/cpuinfo cpu MHz; Intel with "
                                "AVX2 (Haswell or later): 2 FMA units per core)."]


def test_models_timed_on_different_machines_get_a_peak_each() -> None:
    one, two = peak_flops(STAND_IN_CPU, threads=1), peak_flops(STAND_IN_CPU, threads=2)
    sentences = peak_sentences({"lenet": one, "mlp": two, "gapnet": one})
    assert len(sentences) == 2
    assert sentences[0].startswith("Peak of lenet, gapnet: 1 core") and sentences[1].startswith("Peak of mlp: 2 cores")


def test_a_pass_without_time_has_no_rate_and_no_layer_pass_is_named() -> None:
    rate = {"cores": 2, "peak_gflops": 100.0, "layers": [],
            "passes": {"forward_backward": {"gflops": None, "share_of_peak": None}}}
    assert rate_sentence("mlp", rate) == "mlp's forward-backward pass took no measurable time, so it has no rate."


def test_a_time_folder_from_before_flop_rates_asks_for_a_rerun(time_dir: Path) -> None:
    (time_dir / "mlp" / "flop_rate.json").write_text(json.dumps({"model": "mlp"}))
    with pytest.raises(CaffepipeError, match="re-run `caffepipe time`"):
        flop_rate_numbers(time_dir, ["lenet", "mlp"])
    (time_dir / "mlp" / "flop_rate.json").unlink()
    with pytest.raises(CaffepipeError, match="flop_rate.json"):
        flop_rate_numbers(time_dir, ["lenet", "mlp"])
