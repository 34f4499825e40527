"""`caffepipe time`, `visualize` and `sobel` as the orchestrators run them: the real console command, the real
`caffe time` and pycaffe, on tiny nets and a tiny database, from a working directory the prototxt paths are
relative to."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from caffepipe.core import caffe_env
from tests.conftest import run_caffepipe
from tests.stage_outputs import stage_workdir

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """db/ (LMDB and LevelDB of synthetic digits), nets/<model>/ with train nets reading db/train_lmdb relative
    to this folder, and params.yaml with tiny settings."""
    caffe = caffe_env.import_caffe(threads=1)
    return stage_workdir(caffe, tmp_path_factory.mktemp("stages"), visualize={"sample_count": 2})


@pytest.mark.parametrize("model", ["lenet", "mlp"])
def test_time_writes_layer_table_chart_totals_and_throughput(workdir: Path, model: str) -> None:
    out = workdir / "reports/time" / model
    run_caffepipe("time", "--params", "params.yaml", "--model", model, "--nets", f"nets/{model}",
                  "--weights", f"nets/{model}/final.caffemodel", "--out", str(out), "--threads", "1", cwd=workdir)
    with (out / "layers.csv").open() as file:
        rows = list(csv.DictReader(file))
    expected = ["data", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"] if model == "lenet" else \
               ["data", "ip1", "relu1", "ip2", "relu2", "ip3", "loss"]
    assert [row["layer"] for row in rows] == expected
    assert all(float(row["forward_ms"]) >= 0 and float(row["backward_ms"]) >= 0 for row in rows)
    assert sum(float(row["forward_ms"]) + float(row["backward_ms"]) for row in rows) > 0
    totals = json.loads((out / "totals.json").read_text())
    assert totals["iterations"] == 2 and totals["batch_size"] == 8 and totals["threads"] == 1
    assert min(totals["forward_ms"], totals["backward_ms"], totals["forward_backward_ms"]) >= 0
    throughput = json.loads((out / "throughput.json").read_text())
    assert [row["batch_size"] for row in throughput["batch_sizes"]] == [1, 8]
    assert all(row["images_per_s"] > 0 for row in throughput["batch_sizes"])
    assert (out / "layers.png").read_bytes().startswith(PNG_MAGIC)
    assert "Average Forward-Backward" in (out / "caffe_time.log").read_text()
    check_flop_rates(out, model, rows, totals)


def check_flop_rates(out: Path, model: str, layer_rows: list[dict[str, str]], totals: dict) -> None:
    """machine.json holds this machine's peak for the 1 thread the run used; flop_rate.json's numbers follow from
    complexity.json's multiply-adds, the batch of 8 and `caffe time`'s own milliseconds."""
    machine = json.loads((out / "machine.json").read_text())
    assert machine["threads"] == 1 and machine["cores"] == 1
    assert machine["peak_gflops"] == pytest.approx(machine["clock_mhz"] / 1e3 * machine["flops_per_cycle_per_core"])
    assert machine["vector_floats"] in (4, 8, 16) and machine["clock_mhz"] > 0
    cost = json.loads((out / "complexity.json").read_text())
    rates = json.loads((out / "flop_rate.json").read_text())
    assert rates["peak_gflops"] == machine["peak_gflops"] and rates["batch_size"] == 8
    first, *later = [layer for layer in cost["layers"] if layer["multiply_adds"]]
    # the first learned layer reads the data: no input gradient; every later one computes it
    assert first["backward_multiply_adds"] == first["multiply_adds"]
    assert all(layer["backward_multiply_adds"] == 2 * layer["multiply_adds"] for layer in later)
    assert [layer["layer"] for layer in rates["layers"]] == [layer["name"] for layer in (first, *later)]
    forward = rates["passes"]["forward"]
    assert forward["multiply_adds"] == 8 * cost["multiply_adds"] and forward["ms"] == totals["forward_ms"]
    assert forward["gflops"] == pytest.approx(2 * forward["multiply_adds"] / totals["forward_ms"] / 1e6)
    assert forward["share_of_peak"] == pytest.approx(forward["gflops"] / machine["peak_gflops"])
    both = rates["passes"]["forward_backward"]
    assert both["ms"] == pytest.approx(totals["forward_ms"] + totals["backward_ms"]) and 0 < both["share_of_peak"] < 1
    milliseconds = {row["layer"]: float(row["backward_ms"]) for row in layer_rows}
    for layer in rates["layers"]:
        assert layer["backward_ms"] == milliseconds[layer["layer"]]
        if layer["backward_ms"] > 0:
            assert layer["backward_gflops"] == pytest.approx(2 * layer["backward_multiply_adds"] / layer["backward_ms"] / 1e6)


def test_time_names_the_stage_that_makes_a_missing_input(workdir: Path) -> None:
    result = run_caffepipe("time", "--params", "params.yaml", "--model", "lenet", "--nets", "nets/lenet",
                           "--weights", "nowhere/final.caffemodel", "--out", "out", "--threads", "1", cwd=workdir, check=False)
    assert result.returncode == 2
    assert "nowhere/final.caffemodel not found" in result.stderr and "caffepipe train" in result.stderr


@pytest.mark.parametrize("model,layers", [("lenet", ["conv1", "pool1", "conv2", "pool2"]), ("mlp", ["ip1", "ip2"])])
def test_visualize_draws_filters_and_every_feature_layer(workdir: Path, model: str, layers: list[str]) -> None:
    out = workdir / "reports/visualize" / model
    run_caffepipe("visualize", "--params", "params.yaml", "--model", model, "--nets", f"nets/{model}",
                  "--weights", f"nets/{model}/final.caffemodel", "--db", "db", "--out", str(out), cwd=workdir)
    index = json.loads((out / "index.json").read_text())
    assert [entry["file"] for entry in index["figures"]] == ["filters.png", *(f"features_{layer}.png" for layer in layers)]
    assert all(entry["caption"] for entry in index["figures"])
    assert len(index["samples"]) == 2
    for entry in index["figures"]:
        assert (out / entry["file"]).read_bytes().startswith(PNG_MAGIC)


def test_sobel_writes_its_figure_net_and_kernels(workdir: Path) -> None:
    out = workdir / "reports/sobel"
    run_caffepipe("sobel", "--params", "params.yaml", "--db", "db", "--out", str(out), cwd=workdir)
    index = json.loads((out / "index.json").read_text())
    assert index["kernels"]["sobel_x"] == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert (out / "sobel.png").read_bytes().startswith(PNG_MAGIC)
    assert "Convolution" in (out / "sobel.prototxt").read_text()


def test_sobel_names_build_db_when_the_database_is_missing(workdir: Path) -> None:
    result = run_caffepipe("sobel", "--params", "params.yaml", "--db", "nodb", "--out", "out", cwd=workdir, check=False)
    assert result.returncode == 2 and "caffepipe build-db" in result.stderr
