"""`caffepipe time`: per-layer forward/backward timings from the real `caffe time`, and inference throughput.

`caffe time -model data/nets/M/train.prototxt -iterations N` runs N forward-backward passes of the training
net (its Data layer reads one batch per pass from the database path written in the prototxt, relative to the
working directory: run it from the repository root, as the orchestrators do). Its log, kept in full in
`caffe_time.log`, ends with a table this module parses:

    I20261122 11:37:50.222165 10671 caffe.cpp:400]      conv1	forward: 0.215 ms.
    I20261122 11:37:50.222173 10671 caffe.cpp:403]      conv1	backward: 0.283333 ms.
    ...
    I20261122 11:37:50.222332 10671 caffe.cpp:408] Average Forward pass: 2.399 ms.
    I20261122 11:37:50.222339 10671 caffe.cpp:410] Average Backward pass: 2.36067 ms.
    I20261122 11:37:50.222347 10671 caffe.cpp:412] Average Forward-Backward: 4.66667 ms.

Then the deploy net (pycaffe, trained weights loaded) is timed at each batch size in `time.throughput_batch_sizes`.

Outputs, in --out:
- layers.csv: layer, forward_ms, backward_ms (averages per pass over the N iterations, in net order);
- layers.png: the same as a bar chart;
- totals.json: the average forward, backward and forward-backward pass of the whole net, the batch size,
  iterations and threads;
- throughput.json: per batch size, the median milliseconds per deploy-net forward pass and images/s;
- complexity.json: the deploy net's parameters and multiply-adds per image (forward and backward), in all and
  per layer, from its blob shapes (complexity.py);
- machine.json: the CPU and the theoretical peak FLOP rate of the cores the run used, with every factor and
  where it came from (cpu_peak.py), so the report never probes the machine it renders on;
- flop_rate.json: multiply-adds per batch, GFLOP/s and share of that peak of the whole forward, backward and
  forward-backward passes and of each Convolution / InnerProduct layer (flop_rate.py);
- caffe_time.log: Caffe's own log of the run.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from caffepipe.core import caffe_env

from caffepipe.core import figures
from caffepipe.core.atomic import atomic_output
from caffepipe.data.datum import check_data_layer_databases, redirect_leveldb_sources
from caffepipe.core.errors import CaffepipeError
from caffepipe.inspection.complexity import complexity, layer_shapes_of
from caffepipe.inspection.cpu_peak import machine_peak
from caffepipe.inspection.flop_rate import flop_rates
from caffepipe.pipeline.params import add_params_argument, load_params
from caffepipe.training.net_files import open_net, read_net
from caffepipe.training.nets_folder import DEPLOY_NET_FILE, TRAIN_NET_FILE

log = logging.getLogger(__name__)

# glog's prefix; Debian 12's glog writes the year (I20261122), older ones do not (I1122).
GLOG_PREFIX = re.compile(r"^[IWEF](?:\d{4})?\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ [^\]]+\] ?")
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
LAYER_LINE = re.compile(rf"^\s*(?P<layer>\S(?:.*\S)?)\s+(?P<pass>forward|backward): (?P<ms>{NUMBER}) ms\.\s*$")
TOTAL_LINES = {
    "forward_ms": re.compile(rf"^Average Forward pass: (?P<ms>{NUMBER}) ms\."),
    "backward_ms": re.compile(rf"^Average Backward pass: (?P<ms>{NUMBER}) ms\."),
    "forward_backward_ms": re.compile(rf"^Average Forward-Backward: (?P<ms>{NUMBER}) ms\."),
}
ITERATIONS_LINE = re.compile(r"^Testing for (?P<n>\d+) iterations\.")
TOP_SHAPE_LINE = re.compile(r"^Top shape: (?P<batch>\d+)\b")
PER_LAYER_HEADER = "Average time per layer:"

LAYERS_CSV_COLUMNS = ("layer", "forward_ms", "backward_ms")


@dataclass(frozen=True)
class LayerTime:
    layer: str
    forward_ms: float
    backward_ms: float


@dataclass(frozen=True)
class CaffeTime:
    """What one `caffe time` run reports."""
    layers: tuple[LayerTime, ...]
    forward_ms: float
    backward_ms: float
    forward_backward_ms: float
    iterations: int
    batch_size: int          # the first Top shape Caffe logs: the data layer's batch

    def totals(self) -> dict[str, float | int]:
        return {"forward_ms": self.forward_ms, "backward_ms": self.backward_ms,
                "forward_backward_ms": self.forward_backward_ms, "iterations": self.iterations,
                "batch_size": self.batch_size}


def glog_message(line: str) -> str:
    """The message of a glog line (the prefix removed); a line without the prefix is returned as it is."""
    return GLOG_PREFIX.sub("", line.rstrip("\n"), count=1)


def parse_caffe_time(lines: Iterable[str]) -> CaffeTime:
    """Parse the log of `caffe time`: per-layer averages (in net order) and the averages of whole passes."""
    forward: dict[str, float] = {}
    backward: dict[str, float] = {}
    totals: dict[str, float] = {}
    iterations = batch_size = None
    in_table = False
    for line in lines:
        message = glog_message(line)
        if batch_size is None and (match := TOP_SHAPE_LINE.match(message)):
            batch_size = int(match["batch"])
        if match := ITERATIONS_LINE.match(message):
            iterations = int(match["n"])
        if message.strip() == PER_LAYER_HEADER:
            in_table, forward, backward = True, {}, {}
            continue
        if in_table and (match := LAYER_LINE.match(message)):
            (forward if match["pass"] == "forward" else backward)[match["layer"]] = float(match["ms"])
            continue
        for key, pattern in TOTAL_LINES.items():
            if match := pattern.match(message):
                totals[key] = float(match["ms"])
                in_table = False
    missing = [key for key in TOTAL_LINES if key not in totals]
    if missing or not forward:
        what = "no per-layer table" if not forward else f"no {', '.join(missing)} line"
        raise CaffepipeError(f"the `caffe time` log has {what}; did the benchmark finish?")
    if set(forward) != set(backward):
        odd = sorted(set(forward) ^ set(backward))
        raise CaffepipeError(f"the `caffe time` log has forward and backward times for different layers: {', '.join(odd)}")
    if iterations is None or batch_size is None:
        raise CaffepipeError("the `caffe time` log names no iteration count or no batch shape; was it logged at INFO level?")
    layers = tuple(LayerTime(name, forward[name], backward[name]) for name in forward)
    return CaffeTime(layers=layers, iterations=iterations, batch_size=batch_size, **totals)


def layers_csv(result: CaffeTime) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LAYERS_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for layer in result.layers:
        writer.writerow(asdict(layer))
    return out.getvalue()


def run_caffe_time(model_file: Path, iterations: int, threads: int, log_path: Path) -> CaffeTime:
    """Run the real `caffe time` in the working directory, its log to log_path, and parse that log."""
    command = [str(caffe_env.caffe_tool("caffe")), "time", "-model", str(model_file), "-iterations", str(iterations)]
    env = caffe_env.caffe_subprocess_env(threads)     # glog at INFO on stderr: the per-layer table is INFO
    log.info("%s (threads=%d)", " ".join(command), threads)
    with log_path.open("w") as log_file:
        completed = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    text = log_path.read_text(errors="replace")
    if completed.returncode != 0:
        tail = "\n".join(text.splitlines()[-5:])
        raise CaffepipeError(f"`caffe time` on {model_file} exited {completed.returncode} (log: {log_path}):\n{tail}")
    return parse_caffe_time(text.splitlines())


def measure_throughput(net: Any, deploy: Path, batch_sizes: list[int], passes: int,
                       seed: int = 0) -> list[dict[str, float | int]]:
    """Median time of a forward pass of the deploy net (loaded from `deploy`) at each batch size, and images/s."""
    if "data" not in net.blobs:
        raise CaffepipeError(f"{deploy} has no input blob named 'data'")
    sample_shape = net.blobs["data"].data.shape[1:]
    rng = np.random.default_rng(seed)
    rows = []
    for batch_size in batch_sizes:
        net.blobs["data"].reshape(batch_size, *sample_shape)
        net.reshape()
        # Pixels as the deploy net expects them: [0, 255] already scaled, so [0, 1).
        net.blobs["data"].data[...] = rng.random((batch_size, *sample_shape), dtype=np.float32)
        net.forward()                                   # warm-up: first-touch allocations
        seconds = []
        for _ in range(passes):
            start = time.perf_counter()
            net.forward()
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        rows.append({"batch_size": batch_size, "passes": passes, "median_ms_per_batch": median * 1e3,
                     "min_ms_per_batch": min(seconds) * 1e3, "ms_per_image": median * 1e3 / batch_size,
                     "images_per_s": batch_size / median})
        log.info("deploy net, batch %d: %.3f ms per pass, %.0f images/s", batch_size, median * 1e3, batch_size / median)
    return rows


def plot_layers(result: CaffeTime, model: str, threads: int, path: Path) -> None:
    figures.apply_style()
    frame = pd.DataFrame([asdict(layer) for layer in result.layers])
    long = frame.melt(id_vars="layer", value_vars=["forward_ms", "backward_ms"], var_name="pass", value_name="ms")
    long["pass"] = long["pass"].str.removesuffix("_ms")
    fig, ax = figures.plt.subplots(figsize=(7, 0.45 * len(frame) + 1.6))
    figures.sns.barplot(data=long, y="layer", x="ms", hue="pass", orient="h", ax=ax)
    ax.set_xlabel("milliseconds per pass (average)")
    ax.set_ylabel("")
    ax.set_title(f"{model}: caffe time per layer\n(batch {result.batch_size}, {result.iterations} iterations, "
                 f"{threads} BLAS thread{'s' if threads != 1 else ''}, CPU)")
    ax.legend(title="", loc="lower right")
    figures.save_figure(fig, path)


def net_reading_copies(caffe: Any, net_path: Path, work: Path) -> Path:
    """netgen's training net, or when it reads a LevelDB, a copy in `work` that reads a copy of the database
    (datum.readable_database says why). Its databases are read first: `caffe time` would abort on a damaged one
    (a glog CHECK) without naming it."""
    from google.protobuf import text_format  # noqa: PLC0415

    net = read_net(caffe.proto.caffe_pb2, net_path)
    check_data_layer_databases(net)
    if not redirect_leveldb_sources(net, work):
        return net_path
    copy = work / net_path.name
    copy.write_text(text_format.MessageToString(net))
    return copy


def write_flop_rates(folder: Path, model: str, cost: dict, result: CaffeTime, machine: dict) -> None:
    """machine.json and flop_rate.json (the module docstring says what they hold)."""
    layer_ms = {layer.layer: (layer.forward_ms, layer.backward_ms) for layer in result.layers}
    rates = flop_rates(model, cost, layer_ms, result.totals(), result.batch_size, machine)
    (folder / "machine.json").write_text(json.dumps(machine, indent=2) + "\n")
    (folder / "flop_rate.json").write_text(json.dumps(rates, indent=2) + "\n")
    log.info("%s: forward-backward at %.1f%% of the %d-core peak (%.0f GFLOP/s)", model,
             100 * (rates["passes"]["forward_backward"]["share_of_peak"] or 0), machine["cores"], machine["peak_gflops"])


def run_time_stage(params: dict, model: str, nets: Path, weights: Path, out: Path, threads: int) -> CaffeTime:
    section = params["time"]
    train_net, deploy_net = nets / TRAIN_NET_FILE, nets / DEPLOY_NET_FILE
    for path, stage in ((train_net, "netgen"), (deploy_net, "netgen"), (weights, "train")):
        if not path.is_file():
            raise CaffepipeError(f"{path} not found; it is made by `caffepipe {stage}`")
    caffe = caffe_env.import_caffe(threads=threads)
    # The deploy net and the weights are checked (net_reading_copies checks the training net) before
    # `caffe time` spends its seconds: Caffe would abort on a bad file.
    deploy = open_net(caffe, deploy_net, weights)
    cost = {"model": model, **complexity(layer_shapes_of(deploy))}
    machine = machine_peak(threads, section["fma_units_per_core"])
    with atomic_output(out, directory=True) as temporary, tempfile.TemporaryDirectory(prefix="caffepipe-time-") as work:
        (temporary / "complexity.json").write_text(json.dumps(cost, indent=2) + "\n")
        timed_net = net_reading_copies(caffe, train_net, Path(work))
        result = run_caffe_time(timed_net, section["iterations"], threads, temporary / "caffe_time.log")
        (temporary / "layers.csv").write_text(layers_csv(result))
        totals = {"model": model, "threads": threads, **result.totals()}
        (temporary / "totals.json").write_text(json.dumps(totals, indent=2) + "\n")
        write_flop_rates(temporary, model, cost, result, machine)
        plot_layers(result, model, threads, temporary / "layers.png")
        rows = measure_throughput(deploy, deploy_net, list(section["throughput_batch_sizes"]), section["iterations"])
        throughput = {"model": model, "threads": threads, "net": "deploy", "batch_sizes": rows}
        (temporary / "throughput.json").write_text(json.dumps(throughput, indent=2) + "\n")
    log.info("%s: forward %.2f ms, backward %.2f ms per batch of %d; wrote %s", model, result.forward_ms,
             result.backward_ms, result.batch_size, out)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe time", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--model", required=True, help="model name (for labels)")
    parser.add_argument("--nets", required=True, type=Path, help="folder with train.prototxt and deploy.prototxt")
    parser.add_argument("--weights", required=True, type=Path, help="trained .caffemodel for the deploy net")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: params time.threads)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    threads = args.threads if args.threads is not None else params["time"]["threads"]
    run_time_stage(params, args.model, args.nets, args.weights, args.out, threads)
    return 0
