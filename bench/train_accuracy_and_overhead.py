"""Does training reach its accuracy, and what does `caffepipe train` cost over `caffe train` by hand?

Targets (issue #4), on the full default params (10,000 iterations of each model):
- test accuracy at max_iter: LeNet >= 0.990, MLP >= 0.975;
- the pipeline's training wall time within 5% of the same solver run by hand with Caffe's `caffe train`.

For each model and repeat, in one invocation and alternating which goes first, it times
  pipeline: `caffepipe train --params P --model M --nets <netgen's> --db DB --out <fresh> --threads T`
  by hand:  `caffe train --solver <netgen's solver.prototxt, with absolute paths>`, OPENBLAS_NUM_THREADS=T
Two wall times are compared:
- training: from Caffe's "Solving <net>" line to its "Optimization Done." line, read from each run's log:
  the training loop itself, with the pipeline's per-iteration callback and its extra snapshots;
- command: the whole command, so also the start-up (Python, pycaffe's imports: about half a second, which
  the `caffe` binary does not pay), fingerprinting the data and writing the outputs.
With them come user and system CPU times and each run's final test outputs (caffepipe.training.parse_log). Both runs
train from the same solver and seed on the same data in the same order, so those outputs should be equal.

    .venv/bin/python bench/train_accuracy_and_overhead.py --db data/db --repeats lenet=2 mlp=4 \\
        --out bench/results/train_accuracy_and_overhead.json

--db is a folder build-db wrote (train_lmdb, test_lmdb, info.json) for the full MNIST; --work holds the runs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGETS = {"lenet": 0.990, "mlp": 0.975}
OVERHEAD_TARGET = 0.05


def timed(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> dict[str, float]:
    """Run a command; its wall, user and system seconds (children included)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}; see {log}")
    return {"wall_s": round(wall, 2), "user_s": round(usage.ru_utime, 2), "sys_s": round(usage.ru_stime, 2)}


def final_test(log: Path) -> dict[str, float]:
    from caffepipe.training.parse_log import final_metrics, parse_caffe_log

    with open(log, errors="replace") as handle:
        metrics = final_metrics(parse_caffe_log(handle))
    return {"iteration": metrics["iteration"], **metrics["test"]}


GLOG_STAMP = re.compile(r"^[IWEF](\d{8}|\d{4}) (\d{2}:\d{2}:\d{2}\.\d{6}) ")


def training_seconds(log: Path) -> float:
    """Seconds from Caffe's "Solving" line to its "Optimization Done." line (one run)."""
    start = end = None
    for line in log.read_text(errors="replace").splitlines():
        stamp = GLOG_STAMP.match(line)
        if stamp and ("] Solving " in line or "] Optimization Done." in line):
            date = stamp[1][-4:]  # a run does not cross New Year here; the year is not needed
            moment = datetime.datetime.strptime(f"{date} {stamp[2]}", "%m%d %H:%M:%S.%f")
            if "] Solving " in line:
                start = moment
            else:
                end = moment
    if start is None or end is None:
        raise SystemExit(f"{log}: no Solving / Optimization Done lines")
    return round((end - start).total_seconds(), 2)


def hand_solver(nets: Path, folder: Path) -> Path:
    """netgen's solver with absolute net paths and its snapshots in `folder`: the same training, by hand."""
    from caffepipe.core.caffe_env import import_caffe
    from google.protobuf import text_format

    import_caffe()
    from caffe.proto import caffe_pb2

    solver = text_format.Parse((nets / "solver.prototxt").read_text(), caffe_pb2.SolverParameter())
    solver.train_net = str((nets / "train.prototxt").resolve())
    solver.test_net[0] = str((nets / "test.prototxt").resolve())
    folder.mkdir(parents=True, exist_ok=True)
    solver.snapshot_prefix = str(folder / "hand")
    path = folder / "solver.prototxt"
    path.write_text(text_format.MessageToString(solver))
    return path


def run_model(model: str, params: Path, db: Path, work: Path, threads: int, repeat: int) -> dict:
    from caffepipe.core.caffe_env import blas_environment, caffe_tool

    # Both log everything, once, to stderr (the caffe binary would also write glog files to /tmp).
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "GLOG_minloglevel": "0", "GLOG_logtostderr": "1"}
    nets = work / "nets" / model
    subprocess.run([str(BIN / "caffepipe"), "netgen", "--params", str(params), "--model", model, "--db", str(db),
                    "--out", str(nets)], check=True, cwd=REPO, env=env)
    runs = {}
    order = ["pipeline", "hand"] if repeat % 2 == 0 else ["hand", "pipeline"]
    for kind in order:
        folder = work / f"{model}-{kind}-{repeat}"
        shutil.rmtree(folder, ignore_errors=True)
        if kind == "pipeline":
            command = [str(BIN / "caffepipe"), "train", "--params", str(params), "--model", model, "--nets", str(nets),
                       "--db", str(db), "--out", str(folder), "--threads", str(threads)]
            usage = timed(command, env, folder.with_suffix(".out"), REPO)
            log = folder / "caffe.log"
        else:
            command = [str(caffe_tool("caffe")), "train", "--solver", str(hand_solver(nets, folder))]
            log = folder / "caffe.log"
            usage = timed(command, {**env, **blas_environment(threads)}, log, REPO)
        runs[kind] = {"command": " ".join(command), "training_s": training_seconds(log), **usage,
                      "final_test": final_test(log)}
        print(f"{model} {kind} #{repeat}: {usage}, final test {runs[kind]['final_test']}", flush=True)
    return runs


def markdown(report: dict) -> str:
    """A readable summary of the JSON report."""
    lines = [f"# Training: accuracy and overhead against `caffe train` ({report['date']})", "",
             f"Command: `{report['command']}`", "",
             f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores; "
             f"{report['params']['threads']} BLAS threads; max_iter {report['params']['train']['max_iter']}.", "",
             "| model | runs | test accuracy (target) | training s: pipeline / by hand | overhead | "
             "command s: pipeline / by hand | overhead | same final test outputs |",
             "|---|---|---|---|---|---|---|---|"]
    for model, result in report["results"].items():
        training, command = result["training_s_median"], result["command_wall_s_median"]
        lines.append(f"| {model} | {len(result['runs'])} | {result['final_test_accuracy']:.4f} ({result['accuracy_target']}) | "
                     f"{training['pipeline']} / {training['hand']} | {result['training_overhead']:+.1%} | "
                     f"{command['pipeline']} / {command['hand']} | {result['command_overhead']:+.1%} | "
                     f"{'yes' if result['pipeline_equals_hand'] else 'NO'} |")
    lines += ["", "Medians over the runs; each run's times and CPU use are in the JSON beside this file.", ""]
    return "\n".join(lines)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(), "python": platform.python_version()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/caffepipe-bench-train"))
    parser.add_argument("--models", nargs="+", default=["lenet", "mlp"])
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: params train.threads)")
    parser.add_argument("--repeats", nargs="+", default=["1"],
                        help="runs of each kind per model: N for all, or MODEL=N (e.g. lenet=2 mlp=4)")
    parser.add_argument("--out", type=Path, required=True, help="the JSON to write")
    args = parser.parse_args()
    params = yaml.safe_load(args.params.read_text())
    threads = args.threads or params["train"]["threads"]
    db = args.db.resolve()
    results = {}
    started = datetime.datetime.now(datetime.timezone.utc)
    counts = {model: int(value) for model, _, value in (item.rpartition("=") for item in args.repeats)}
    for model in args.models:
        count = counts.get(model, counts.get("", 1))
        repeats = [run_model(model, args.params.resolve(), db, args.work / model, threads, repeat) for repeat in range(count)]

        def median(kind: str, key: str) -> float:
            return round(statistics.median(run[kind][key] for run in repeats), 2)

        accuracy = repeats[-1]["pipeline"]["final_test"]["accuracy"]
        training_overhead = median("pipeline", "training_s") / median("hand", "training_s") - 1
        command_overhead = median("pipeline", "wall_s") / median("hand", "wall_s") - 1
        results[model] = {
            "runs": repeats,
            "training_s_median": {"pipeline": median("pipeline", "training_s"), "hand": median("hand", "training_s")},
            "command_wall_s_median": {"pipeline": median("pipeline", "wall_s"), "hand": median("hand", "wall_s")},
            "training_overhead": round(training_overhead, 4),
            "command_overhead": round(command_overhead, 4),
            "training_overhead_within_target": training_overhead <= OVERHEAD_TARGET,
            "command_overhead_within_target": command_overhead <= OVERHEAD_TARGET,
            "final_test_accuracy": accuracy,
            "accuracy_target": TARGETS.get(model),
            "accuracy_reached": accuracy >= TARGETS.get(model, 0),
            "pipeline_equals_hand": all(run["pipeline"]["final_test"] == run["hand"]["final_test"] for run in repeats),
        }
    report = {
        "benchmark": "train_accuracy_and_overhead",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "params": {"train": params["train"], "netgen": params["netgen"], "threads": threads},
        "targets": {"accuracy": TARGETS, "overhead": OVERHEAD_TARGET},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(json.dumps({model: {key: value for key, value in result.items() if key != "runs"} for model, result in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
