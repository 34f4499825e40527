"""`caffepipe finetune`: transfer a trained model to a target dataset in three modes, over a sweep of
training-set sizes, and measure when the transfer pays off.

    caffepipe finetune --params params.yaml --source-nets data/nets --source-train data/train \\
        --db data/target/db --out data/finetune/runs --out-subsets data/finetune/subsets.json \\
        --out-runs data/finetune/runs.json --out-reports reports/finetune --threads 2

The source: params finetune.source_model, a model this pipeline trains (its deploy net in
--source-nets/<model>/deploy.prototxt, its weights in --source-train/<model>/final.caffemodel), or any
.caffemodel with its deploy prototxt (finetune.weights + finetune.deploy; the deploy net must take
1x28x28 inputs scaled by 1/256, as the pipeline's nets do). The target: the databases in --db (the target
dataset's, `caffepipe build-db` of finetune.dataset).

For each size of finetune.sizes, a class-balanced subset of the target's training images (data/subsets.py:
fixed by finetune.subset_seed, nested, the same for every mode). For each mode of finetune.modes and each
size, one after the other, a training run (finetune_nets.py says what each mode changes in the net):

--out (data/finetune/runs/, kept by the orchestrators: DVC persist):
    subsets/size-<N>/train_lmdb      the subset as its own LMDB (records copied byte for byte)
    <mode>-<N>/nets/                 the run's train, test and deploy nets and its solver (prototxt)
    <mode>-<N>/                      a `caffepipe train` folder: snapshots/, snapshots.json, final.caffemodel,
                                     caffe.log (train.py), and live/, the run's DVCLive series (live_metrics.py;
                                     `dvc plots show data/finetune/runs/<mode>-<N>/live/plots/metrics`)
--out-subsets                        {size: the chosen indices into the target's training database}
--out-runs                           every run: mode, size, its folder, final weights and fingerprint
--out-reports (reports/finetune/):
    metrics.json                     a DVC metric: {mode: {size: {accuracy, loss, iterations}}}
    accuracy_vs_size.csv             mode, size, accuracy, loss (a DVC plot)
    runs.csv                         mode, size, iterations, accuracy, loss, seconds (training time)
    curves.csv                       mode, iteration, accuracy, loss: the test passes of the smallest size
    weight_change.csv                mode, size, layer, relative_change: ||W - W_source|| / ||W_source|| of
                                     every source layer (last_layer: exactly 0 for every frozen one)

Why every run goes through `caffepipe train`'s machinery (train.train, in this process) rather than a trainer
of its own: snapshots at a schedule, exact resume after a kill -9, fingerprints, progress and the parsed log
come with it. The source weights enter through TrainingRequest.initial_weights: copied on a fresh start only
(a resume restores them from its snapshot) and part of the fingerprint, so new source weights start every
run again and an interrupted sweep continues where it stopped, bit for bit. A run that is complete is not
trained again; its outputs are re-read in seconds.

Every run tests on the whole target test set at max_iter; the runs of the smallest size also at every
finetune.test_interval from iteration 0, for the accuracy-over-iterations curve (testing the larger ones as
often would cost more than their training).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caffepipe.core.atomic import atomic_output, write_text_atomic
from caffepipe.core.errors import CaffepipeError
from caffepipe.data.datum import db_path, read_db
from caffepipe.data.subsets import balanced_subsets, write_subset
from caffepipe.pipeline.params import add_params_argument, load_params
from caffepipe.training.finetune_nets import (
    DataInput,
    Surgery,
    finetune_nets,
    param_layers_of,
    plan_surgery,
)
from caffepipe.training.initial_weights import caffemodel_shapes
from caffepipe.data.mean_image import MEAN_FILE
from caffepipe.training.models import INPUT_SCALE
from caffepipe.training.netgen import build_solver, read_db_info, read_test_count, subtracts_mean, test_iterations, to_prototxt
from caffepipe.training.nets_folder import DEPLOY_NET_FILE, NET_FILES, SOLVER_FILE
from caffepipe.training.parse_log import final_metrics, parse_caffe_log
from caffepipe.training.train import TrainingRequest, train

log = logging.getLogger(__name__)

# The solver keys of the finetune section, as train's section names them (train checks the solver against them).
LIVE_FOLDER = "live"      # in each run's folder: its DVCLive series, kept with its snapshots (the runs folder persists)
SOLVER_KEYS = ("base_lr", "momentum", "weight_decay", "lr_policy", "gamma", "power", "max_iter", "test_interval",
               "display", "snapshot_interval", "snapshot_iters", "random_seed")


@dataclass(frozen=True)
class Source:
    deploy: Path
    weights: Path


@dataclass(frozen=True)
class Run:
    mode: str
    size: int

    @property
    def name(self) -> str:
        return f"{self.mode}-{self.size}"


# ---- what to run -----------------------------------------------------------------------------------------

def source_of(finetune: dict[str, Any], models: list[str], nets_dir: Path, train_dir: Path) -> Source:
    """The source model's deploy net and weights: the user's own (finetune.weights + deploy) or a pipeline model's."""
    weights, deploy = finetune["weights"], finetune["deploy"]
    if (weights is None) != (deploy is None):
        raise CaffepipeError("finetune.weights and finetune.deploy go together: give both (a .caffemodel and the deploy "
                             "prototxt it was trained with), or neither to use finetune.source_model")
    if weights is not None:
        return Source(Path(deploy), Path(weights))
    model = finetune["source_model"]
    if model not in models:
        raise CaffepipeError(f"finetune.source_model {model!r} is not trained by this pipeline (netgen.models: "
                             f"{', '.join(models)}); add it there, or name weights and deploy")
    return Source(nets_dir / model / DEPLOY_NET_FILE, train_dir / model / "final.caffemodel")


def check_schedule(finetune: dict[str, Any]) -> None:
    if finetune["max_iter"] % finetune["test_interval"]:
        raise CaffepipeError(f"finetune.max_iter ({finetune['max_iter']}) must be a multiple of finetune.test_interval "
                             f"({finetune['test_interval']}), so that every run ends with a test pass")


def solver_params(finetune: dict[str, Any], curve: bool) -> dict[str, Any]:
    """train-style solver params of one run: the curve runs test every test_interval, the others at max_iter only."""
    params = {key: finetune[key] for key in SOLVER_KEYS}
    if not curve:
        params["test_interval"] = finetune["max_iter"]
    return params


# ---- preparing a run -------------------------------------------------------------------------------------

def read_prototxt(caffe_pb2: Any, path: Path) -> Any:
    from google.protobuf import text_format  # noqa: PLC0415

    try:
        return text_format.Parse(path.read_text(), caffe_pb2.NetParameter())
    except FileNotFoundError:
        raise CaffepipeError(f"{path}: no such deploy net; run `caffepipe netgen`, or fix finetune.deploy") from None
    except text_format.ParseError as error:
        raise CaffepipeError(f"{path} is not a valid net prototxt ({error})") from None


def write_run_nets(caffe_pb2: Any, nets: dict[str, Any], solver_values: dict[str, Any], test_iter: int,
                   curve: bool, folder: Path) -> None:
    """The run's nets folder, as netgen writes one (train.py reads it the same way)."""
    solver = build_solver(caffe_pb2, solver_values, train_net=str(folder / NET_FILES["train"]),
                          test_net=str(folder / NET_FILES["test"]), test_iter=test_iter, snapshot_prefix="finetune")
    solver.test_initialization = curve
    with atomic_output(folder, directory=True) as staging:
        for kind, net in nets.items():
            (staging / NET_FILES[kind]).write_text(to_prototxt(net))
        (staging / SOLVER_FILE).write_text(to_prototxt(solver))


def prepare_subsets(db: Path, out: Path, sizes: list[int], seed: int) -> tuple[dict[int, list[int]], int]:
    """Choose and write every size's subset; returns ({size: indices}, the target's number of classes)."""
    source = db_path(db, "train", "lmdb")
    if not source.is_dir():
        raise CaffepipeError(f"{source} is missing; the target databases need the lmdb backend (params build_db.backends)")
    _, labels = read_db(source, "lmdb")
    subsets = balanced_subsets(labels, sizes, seed, where=str(source))
    for size, indices in subsets.items():
        write_subset(source, indices, subset_folder(out, size))
    return subsets, int(labels.max()) + 1


def subset_folder(out: Path, size: int) -> Path:
    return out / "subsets" / f"size-{size}"


# ---- results -----------------------------------------------------------------------------------------------

def run_results(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(final metrics, test rows) of a run, from its caffe.log (parse_log.py)."""
    with open(folder / "caffe.log", errors="replace") as lines:
        parsed = parse_caffe_log(lines)
    return final_metrics(parsed), parsed.test


def caffemodel_arrays(caffe_pb2: Any, path: Path) -> dict[str, list[np.ndarray]]:
    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    return {layer.name: [np.asarray(blob.data, dtype=np.float32) for blob in layer.blobs]
            for layer in net.layer if len(layer.blobs)}


def relative_change(after: list[np.ndarray], before: list[np.ndarray]) -> float:
    """||after - before|| / ||before|| over all of a layer's blobs, in float64."""
    difference = sum(float(np.sum((a.astype(np.float64) - b.astype(np.float64)) ** 2)) for a, b in zip(after, before))
    norm = sum(float(np.sum(b.astype(np.float64) ** 2)) for b in before)
    return math.sqrt(difference) / math.sqrt(norm) if norm else math.inf


def weight_changes(source: dict[str, list[np.ndarray]], tuned: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """Each source layer's relative change in the tuned weights (the renamed classifier has no counterpart)."""
    return {name: relative_change(tuned[name], blobs) for name, blobs in source.items() if name in tuned}


def csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_reports(out: Path, results: list[dict[str, Any]], curves: list[dict[str, Any]],
                  changes: list[dict[str, Any]]) -> None:
    metrics: dict[str, dict[str, Any]] = {}
    for row in results:
        metrics.setdefault(row["mode"], {})[str(row["size"])] = {
            "accuracy": row["accuracy"], "loss": row["loss"], "iterations": row["iterations"]}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(out / "accuracy_vs_size.csv", csv_text(results, ["mode", "size", "accuracy", "loss"]))
    write_text_atomic(out / "runs.csv", csv_text(results, ["mode", "size", "iterations", "accuracy", "loss", "seconds"]))
    write_text_atomic(out / "curves.csv", csv_text(curves, ["mode", "iteration", "accuracy", "loss"]))
    write_text_atomic(out / "weight_change.csv", csv_text(changes, ["mode", "size", "layer", "relative_change"]))


# ---- the sweep ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sweep:
    caffe_pb2: Any
    source: Source
    deploy: Any                 # the source's deploy NetParameter
    param_layers: list[str]
    blobs: dict[str, int]
    classes: int
    db: Path
    out: Path
    finetune: dict[str, Any]
    threads: int

    def surgery(self, mode: str) -> Surgery:
        return plan_surgery(self.param_layers, mode, self.finetune["base_lr_mult"])

    def mean_file(self) -> str | None:
        """The target's mean image, which its nets subtract as netgen's do for the same dataset (CIFAR-10)."""
        return str(self.db / MEAN_FILE) if subtracts_mean(read_db_info(self.db)) else None

    def run_folder(self, run: Run) -> Path:
        return self.out / run.name

    def prepare(self, run: Run, curve: bool) -> dict[str, Any]:
        """Write the run's nets; returns its solver params."""
        test_count = read_test_count(self.db)
        nets = finetune_nets(self.caffe_pb2, self.deploy, self.source.deploy, self.surgery(run.mode), self.classes,
                             self.blobs,
                             train=DataInput(str(db_path(subset_folder(self.out, run.size), "train", "lmdb")),
                                             self.finetune["batch_size"]),
                             test=DataInput(str(db_path(self.db, "test", "lmdb")), self.finetune["test_batch_size"]),
                             input_scale=INPUT_SCALE, mean_file=self.mean_file())
        values = solver_params(self.finetune, curve)
        write_run_nets(self.caffe_pb2, nets, values, test_iterations(test_count, self.finetune["test_batch_size"]),
                       curve, self.run_folder(run) / "nets")
        return values

    def train(self, run: Run, curve: bool) -> int:
        values = self.prepare(run, curve)
        folder = self.run_folder(run)
        weights = None if run.mode == "scratch" else self.source.weights
        request = TrainingRequest(model=run.name, nets=folder / "nets", db=self.db, out=folder, train_params=values,
                                  threads=self.threads, initial_weights=weights,
                                  more_dbs=(subset_folder(self.out, run.size),), live_dir=folder / LIVE_FOLDER)
        return train(request)


def sweep_runs(finetune: dict[str, Any]) -> list[Run]:
    """Every mode x size, smallest sizes first, so the cheap runs report first."""
    return [Run(mode, size) for size in sorted(finetune["sizes"]) for mode in finetune["modes"]]


def collect(sweep: Sweep, runs: list[Run]) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """(results, curves, weight changes, the runs manifest) of the finished runs."""
    smallest = min(run.size for run in runs)
    source_arrays = caffemodel_arrays(sweep.caffe_pb2, sweep.source.weights)
    results, curves, changes, manifest = [], [], [], []
    for run in runs:
        folder = sweep.run_folder(run)
        metrics, test_rows = run_results(folder)
        results.append({"mode": run.mode, "size": run.size, "iterations": metrics["iteration"],
                        "accuracy": metrics["test"].get("accuracy"), "loss": metrics["test"].get("loss"),
                        "seconds": metrics["seconds"]})
        if run.size == smallest:
            curves.extend({"mode": run.mode, "iteration": row["iteration"], "accuracy": row.get("accuracy"),
                           "loss": row.get("loss")} for row in test_rows)
        tuned = caffemodel_arrays(sweep.caffe_pb2, folder / "final.caffemodel")
        for layer, change in weight_changes(source_arrays, tuned).items():
            changes.append({"mode": run.mode, "size": run.size, "layer": layer, "relative_change": change})
        snapshots = json.loads((folder / "snapshots.json").read_text())
        manifest.append({"mode": run.mode, "size": run.size, "folder": str(folder),
                         "final": str(folder / "final.caffemodel"), "fingerprint": snapshots["fingerprint"],
                         "surgery": surgery_summary(sweep.surgery(run.mode))})
    return results, curves, changes, manifest


def surgery_summary(surgery: Surgery) -> dict[str, Any]:
    return {"classifier": surgery.classifier, "renamed": surgery.renamed, "transferred": list(surgery.transferred),
            "frozen": list(surgery.frozen)}


def open_sweep(caffe_pb2: Any, params: dict[str, Any], args: argparse.Namespace, threads: int) -> tuple[Sweep, dict]:
    """Check the source and the schedule (before anything is written), then choose and write the subsets."""
    finetune = params["finetune"]
    check_schedule(finetune)
    source = source_of(finetune, params["netgen"]["models"], args.source_nets, args.source_train)
    shapes = caffemodel_shapes(caffe_pb2, source.weights)
    deploy = read_prototxt(caffe_pb2, source.deploy)
    param_layers = param_layers_of(deploy, shapes)
    for mode in finetune["modes"]:
        plan_surgery(param_layers, mode, finetune["base_lr_mult"])    # a source it cannot fine-tune fails first
    subsets, classes = prepare_subsets(args.db, args.out, finetune["sizes"], finetune["subset_seed"])
    sweep = Sweep(caffe_pb2, source, deploy, param_layers, {name: len(shapes[name]) for name in param_layers},
                  classes=classes, db=args.db, out=args.out, finetune=finetune, threads=threads)
    return sweep, subsets


def finetune_all(caffe_pb2: Any, params: dict[str, Any], args: argparse.Namespace, threads: int) -> int:
    sweep, subsets = open_sweep(caffe_pb2, params, args, threads)
    finetune, classes = params["finetune"], sweep.classes
    write_text_atomic(args.out_subsets, json.dumps({"seed": finetune["subset_seed"],
                                                    "subsets": {str(size): indices for size, indices in subsets.items()}}) + "\n")
    runs = sweep_runs(finetune)
    smallest = min(run.size for run in runs)
    for number, run in enumerate(runs, start=1):
        log.info("fine-tuning run %d of %d: %s on %d target images", number, len(runs), run.mode, run.size)
        status = sweep.train(run, curve=run.size == smallest)
        if status:
            return status
    results, curves, changes, manifest = collect(sweep, runs)
    write_reports(args.out_reports, results, curves, changes)
    write_text_atomic(args.out_runs, json.dumps({"classes": classes, "source": {"deploy": str(sweep.source.deploy),
                                                 "weights": str(sweep.source.weights)}, "runs": manifest}, indent=2) + "\n")
    for row in results:
        log.info("%-10s %6d images: accuracy %.4f", row["mode"], row["size"], row["accuracy"])
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe finetune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--source-nets", required=True, type=Path, help="netgen's folders of the models (data/nets)")
    parser.add_argument("--source-train", required=True, type=Path, help="train's folders of the models (data/train)")
    parser.add_argument("--db", required=True, type=Path, help="the target dataset's databases (data/target/db)")
    parser.add_argument("--out", required=True, type=Path, help="the runs folder, kept across runs (data/finetune/runs)")
    parser.add_argument("--out-subsets", required=True, type=Path, help="the chosen subset indices (data/finetune/subsets.json)")
    parser.add_argument("--out-runs", required=True, type=Path, help="the manifest of every run (data/finetune/runs.json)")
    parser.add_argument("--out-reports", required=True, type=Path, help="metrics and tables (reports/finetune)")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: params finetune.threads)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    threads = args.threads if args.threads is not None else params["finetune"]["threads"]
    if threads < 1:
        raise CaffepipeError(f"--threads must be at least 1, not {threads}")
    # glog reads its flags when Caffe's library loads: INFO lines on, to stderr (train points it at each run's log).
    os.environ["GLOG_minloglevel"] = "0"
    os.environ["GLOG_logtostderr"] = "1"
    from caffepipe.core.caffe_env import import_caffe  # noqa: PLC0415

    import_caffe(threads=threads, quiet=False)
    from caffe.proto import caffe_pb2  # noqa: PLC0415

    return finetune_all(caffe_pb2, params, args, threads)
