"""Caffe against PyTorch, training on the CPU: the same nets, batch, solver and thread count, side by side.

Issue #13's target: LeNet trains at >= 1.25x PyTorch's iterations per second at 2 threads. For each model
(LeNet and the MLP, LeNet-300-100) and each repeat, one invocation trains, in rotating order:
- every Caffe build given with --caffe-root LABEL=PREFIX (e.g. the patched build and the upstream one), with
  the pipeline's own nets (`caffepipe netgen`, so the LMDB Data layer reads the batches, as in the pipeline)
  through pycaffe's solver in-process, as `caffepipe train` does;
- PyTorch (eager mode): the same layers (PyTorch's default init: speed does not depend on it), batch 64,
  SGD with momentum 0.9, weight decay 5e-4, biases at twice the learning rate, cross-entropy loss; its
  batches come from the same training LMDB, decoded into memory (uint8) beforehand and scaled per batch, so
  PyTorch pays no database reads.
Each run is a fresh process with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS (Caffe) or torch.set_num_threads
(PyTorch) set to --threads. It first trains --warmup iterations untimed (allocation, first-touch, thread
start-up), then times --iterations iterations. Peak memory is the process's maximum resident set size.
The machine is shared: the load average before and after is recorded, and medians over the repeats are used.

    .venv/bin/python bench/train_vs_pytorch.py --db data/db --iterations 1000 --repeats 3 --threads 2 \\
        --caffe-root patched=$HOME/.cache/caffepipe/caffe-...-NEW --caffe-root upstream=$HOME/.cache/...-OLD \\
        --out bench/results/train_vs_pytorch.md

Without --caffe-root it measures the venv's Caffe (envs/setup.sh's record, or $CAFFEPIPE_CAFFE_ROOT).
PyTorch is a bench-only dependency: bench/requirements.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODELS = ("lenet", "mlp")
PYTORCH = "pytorch"


# ----------------------------------------------------------------------------------------------- workers

def train_caffe(nets: Path, iterations: int, warmup: int, threads: int) -> float:
    """Seconds for `iterations` solver steps of the pipeline's net, after `warmup` untimed ones."""
    from google.protobuf import text_format

    from caffepipe.core.caffe_env import import_caffe

    caffe = import_caffe(threads=threads)
    from caffe.proto import caffe_pb2

    solver = caffe_pb2.SolverParameter()
    text_format.Merge((nets / "solver.prototxt").read_text(), solver)
    solver.train_net = str(nets / "train.prototxt")
    del solver.test_net[:], solver.test_iter[:]   # training only, as PyTorch's loop
    solver.ClearField("test_interval")
    solver.max_iter = warmup + iterations
    solver.snapshot = 0
    solver.display = 0
    solver.snapshot_after_train = False
    solver_file = nets / "bench_solver.prototxt"
    solver_file.write_text(text_format.MessageToString(solver))
    sgd = caffe.get_solver(str(solver_file))
    sgd.step(warmup)
    start = time.perf_counter()
    sgd.step(iterations)
    return time.perf_counter() - start


def pytorch_model(model: str):  # noqa: ANN201 (torch is imported lazily)
    from torch import nn

    if model == "lenet":
        return nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, 2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2, 2),
                             nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def train_pytorch(model: str, train_db: Path, batch: int, iterations: int, warmup: int, threads: int) -> float:
    """Seconds for `iterations` SGD steps of the same net in PyTorch, after `warmup` untimed ones."""
    import numpy as np
    import torch

    from caffepipe.data.datum import read_db
    from caffepipe.training.models import INPUT_SCALE

    torch.set_num_threads(threads)
    torch.manual_seed(1701)
    images, labels = read_db(train_db, "lmdb")
    images = torch.from_numpy(np.ascontiguousarray(images.reshape(-1, 1, 28, 28)))  # uint8, as in the LMDB
    labels = torch.from_numpy(labels.astype(np.int64))
    net = pytorch_model(model)
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in net.named_parameters() if name.endswith("bias")]
    optimizer = torch.optim.SGD([{"params": weights, "lr": 0.01}, {"params": biases, "lr": 0.02}],
                                lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_function = torch.nn.CrossEntropyLoss()

    def step(iteration: int) -> None:
        first = (iteration * batch) % (len(images) - batch)
        optimizer.zero_grad(set_to_none=False)
        pixels = images[first:first + batch].to(torch.float32) * INPUT_SCALE
        loss = loss_function(net(pixels), labels[first:first + batch])
        loss.backward()
        optimizer.step()

    for iteration in range(warmup):
        step(iteration)
    start = time.perf_counter()
    for iteration in range(warmup, warmup + iterations):
        step(iteration)
    return time.perf_counter() - start


def worker(args: argparse.Namespace) -> int:
    if args.framework == PYTORCH:
        seconds = train_pytorch(args.model, args.db / "train_lmdb", args.batch, args.iterations, args.warmup,
                                args.threads)
    else:
        seconds = train_caffe(args.nets, args.iterations, args.warmup, args.threads)
    print(json.dumps({"seconds": seconds}))
    return 0


# ------------------------------------------------------------------------------------------- orchestration

def run_timed(runner: str, caffe_roots: dict[str, str], model: str, nets: Path,
                    args: argparse.Namespace) -> dict:
    """One worker process: its timed seconds, iterations/s and peak RSS (from wait4, which reaps it)."""
    from caffepipe.core.caffe_env import blas_environment

    env = {**os.environ, **blas_environment(args.threads), "GLOG_minloglevel": "2"}
    framework = PYTORCH if runner == PYTORCH else "caffe"
    if framework == "caffe":
        env["CAFFEPIPE_CAFFE_ROOT"] = caffe_roots[runner]
    command = [sys.executable, __file__, "worker", "--framework", framework, "--model", model, "--nets", str(nets),
               "--db", str(args.db), "--batch", str(args.batch), "--iterations", str(args.iterations),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{runner} {model} failed:\n{err.read()[-3000:]}")
        seconds = json.loads(out.read().strip().splitlines()[-1])["seconds"]
    return {"seconds": seconds, "it_s": args.iterations / seconds, "rss_mb": usage.ru_maxrss / 1024}


def generate_nets(work: Path, model: str, db: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run([str(BIN / "caffepipe"), "netgen", "--params", "params.yaml", "--model", model, "--db", str(db),
                    "--out", f"nets/{model}"], cwd=work, check=True, capture_output=True)
    return work / "nets" / model


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def rotated(runners: list[str], repeat: int) -> list[str]:
    shift = repeat % len(runners)
    return runners[shift:] + runners[:shift]


def report(results: dict, runners: list[str], args: argparse.Namespace, loads: tuple, wall: float) -> str:
    lines = [f"# Training speed: Caffe against PyTorch on the CPU, {args.threads} thread(s)", "",
             f"Command: `.venv/bin/python {' '.join(sys.argv)}`", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}. "
             f"Load average (1 min) {loads[0]:.2f} before, {loads[1]:.2f} after; the machine is shared with other "
             f"engineers' test runs, so runs were interleaved ({', '.join(runners)}, rotating) and repeated "
             f"{args.repeats}×; medians. {args.iterations} timed iterations after {args.warmup} warm-up ones, "
             f"batch {args.batch}. Whole invocation: {wall:.0f} s.", ""]
    for model in args.models:
        pytorch_rate = statistics.median(r["it_s"] for r in results[model][PYTORCH])
        lines += [f"## {model}", "", "| runner | wall s | it/s | peak RSS MB | it/s vs PyTorch | runs (it/s) |",
                  "|---|---:|---:|---:|---:|---|"]
        for runner in runners:
            runs = results[model][runner]
            rate = statistics.median(r["it_s"] for r in runs)
            each = ", ".join(f"{r['it_s']:.1f}" for r in runs)
            lines.append(f"| {runner} | {statistics.median(r['seconds'] for r in runs):.2f} | {rate:.1f} | "
                         f"{statistics.median(r['rss_mb'] for r in runs):.0f} | {rate / pytorch_rate:.2f}× | "
                         f"{each} |")
        lines.append("")
    return "\n".join(lines)


def compare(args: argparse.Namespace) -> int:
    caffe_roots = dict(item.split("=", 1) for item in args.caffe_root) or {"caffe": venv_caffe_root()}
    runners = [*caffe_roots, PYTORCH]
    results = {model: {runner: [] for runner in runners} for model in args.models}
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="caffepipe-bench-vs-pytorch-") as work:
        nets = {model: generate_nets(Path(work), model, args.db.resolve()) for model in args.models}
        for repeat in range(args.repeats):
            for model in args.models:
                for runner in rotated(runners, repeat):
                    result = run_timed(runner, caffe_roots, model, nets[model], args)
                    results[model][runner].append(result)
                    print(f"repeat {repeat} {model} {runner}: {result['it_s']:.1f} it/s, "
                          f"{result['rss_mb']:.0f} MB", flush=True)
    text = report(results, runners, args, (load_before, os.getloadavg()[0]), time.perf_counter() - start)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


def venv_caffe_root() -> str:
    from caffepipe.core.caffe_env import caffe_root

    return str(caffe_root())


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=("compare", "worker"), default="compare",
                        help="worker: one timed run in this process (used by compare)")
    parser.add_argument("--db", type=Path, required=True, help="a build-db folder (train_lmdb, info.json)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--caffe-root", action="append", default=[], metavar="LABEL=PREFIX",
                        help="a Caffe install prefix to measure, under a label; repeatable")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="PyTorch's batch; Caffe's is netgen's (64)")
    parser.add_argument("--out", type=Path)
    # worker-only
    parser.add_argument("--framework", choices=("caffe", PYTORCH))
    parser.add_argument("--model", choices=MODELS)
    parser.add_argument("--nets", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return worker(args) if args.mode == "worker" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
