"""Estimate each zoo model's training time on this machine from short runs, without training the zoo.

    .venv/bin/python bench/zoo_estimate.py --db data/db --iterations 60 --threads 2 --out bench/results/zoo_estimate.md

For every model of models.MODELS (or --models), in one invocation, one model after the other:
- netgen's nets and solver with params.yaml's settings for that model (train.overrides applied);
- `solver.step(--iterations)` with pycaffe after a few warm-up steps: seconds per training iteration
  (batch netgen.train_batch_size, the Data layer reading the LMDB, as `caffepipe train` runs it);
- the test net's forward pass over the whole test set once: seconds per test pass;
- multiply-adds per image (inspection/complexity.py).
The estimate of a whole training is max_iter x seconds per iteration + (max_iter / test_interval + 1) test
passes. It is an estimate: the machine is shared, so absolute numbers are inflated by whatever else runs;
rerun on a quiet machine for numbers to quote. The Markdown written to --out says so and holds the command.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from caffepipe.core.caffe_env import import_caffe  # noqa: E402
from caffepipe.inspection.complexity import complexity, layer_shapes_of  # noqa: E402
from caffepipe.pipeline.params import load_params  # noqa: E402
from caffepipe.training import models, netgen  # noqa: E402
from caffepipe.training.solver_settings import solver_settings  # noqa: E402

WARMUP_ITERATIONS = 5


def measure(caffe, params: dict, model: str, db: Path, iterations: int) -> dict:
    settings = solver_settings(params["train"], model)
    with tempfile.TemporaryDirectory(prefix=f"zoo-{model}-") as work:
        folder = Path(work)
        params = {**params, "netgen": {**params["netgen"], "models": [model]}}
        for name, text in netgen.generate(params, model, db, folder).items():
            (folder / name).write_text(text)
        solver = caffe.get_solver(str(folder / "solver.prototxt"))
        solver.step(WARMUP_ITERATIONS)
        start = time.perf_counter()
        solver.step(iterations)
        per_iteration = (time.perf_counter() - start) / iterations
        test_net = solver.test_nets[0]
        test_iter = netgen.test_iterations(netgen.read_test_count(db), params["netgen"]["test_batch_size"])
        start = time.perf_counter()
        for _ in range(test_iter):
            test_net.forward()
        per_test = time.perf_counter() - start
        deploy = caffe.Net(str(folder / "deploy.prototxt"), caffe.TEST)
        cost = complexity(layer_shapes_of(deploy))
    tests = settings["max_iter"] // settings["test_interval"] + 1
    return {"model": model, "parameters": cost["parameters"], "multiply_adds": cost["multiply_adds"],
            "it_per_s": 1 / per_iteration, "test_pass_s": per_test, "max_iter": settings["max_iter"],
            "estimate_s": settings["max_iter"] * per_iteration + tests * per_test}


def markdown(rows: list[dict], command: str, threads: int) -> str:
    lines = [
        "# Zoo: training time estimated from short runs", "",
        f"Command: `{command}`", "",
        f"Each model's own solver settings from params.yaml (`train.overrides`), {threads} BLAS threads, one model "
        "after the other in one invocation. ESTIMATES from a few dozen iterations on a shared, busy machine: "
        "the absolute numbers are inflated, the ratios between models hold better.", "",
        "| model | parameters | multiply-adds / image | it/s | s per test pass | max_iter | estimated training |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['model']} | {row['parameters']:,} | {row['multiply_adds']:,} | {row['it_per_s']:.1f} | "
                     f"{row['test_pass_s']:.1f} | {row['max_iter']:,} | {row['estimate_s'] / 60:.1f} min |")
    total = sum(row["estimate_s"] for row in rows)
    lines += ["", f"Sum of the estimated trainings: {total / 60:.1f} min.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=REPO / "data/db")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--models", nargs="*", default=list(models.MODELS))
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    caffe = import_caffe(threads=args.threads)
    params = load_params(args.params)
    rows = []
    for model in args.models:
        rows.append(measure(caffe, params, model, args.db, args.iterations))
        row = rows[-1]
        print(f"{model}: {row['it_per_s']:.1f} it/s, test pass {row['test_pass_s']:.1f} s, "
              f"{row['multiply_adds'] / 1e6:.2f} M multiply-adds, estimate {row['estimate_s'] / 60:.1f} min", flush=True)
    text = markdown(rows, " ".join(["python", *sys.argv]), args.threads)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
