"""Per-layer `caffe time` of the pipeline's nets for several Caffe builds side by side: what each patch gave.

envs/caffe/*.patch each touch one kind of layer (convolution, max pooling), so the per-layer forward and
backward times of the patched build against the upstream build, measured in one invocation, interleaved
(rotating which build goes first) and repeated, show each patch's gain. Medians over the repeats.

    .venv/bin/python bench/caffe_layer_times.py --db data/db --threads 2 --repeats 5 \\
        --caffe-root upstream=$HOME/.cache/caffepipe/caffe-...-OLD --caffe-root patched=$HOME/.cache/...-NEW \\
        --out bench/results/caffe_layer_times.md
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_vs_pytorch import cpu_name, generate_nets, rotated  # noqa: E402 (bench scripts are not a package)

LAYER_LINE = re.compile(r"\]\s+(\S+)\s+(forward|backward): ([\d.]+) ms\.")
TOTAL_LINE = re.compile(r"Average Forward-Backward: ([\d.]+) ms\.")


def caffe_time(prefix: str, net: Path, iterations: int, threads: int) -> dict[str, float]:
    """`caffe time` of one net: {"conv1 forward": ms, ..., "forward-backward": ms}."""
    from caffepipe.core.caffe_env import blas_environment

    env = {**os.environ, **blas_environment(threads), "GLOG_logtostderr": "1"}
    result = subprocess.run([f"{prefix}/bin/caffe", "time", "-model", str(net), "-iterations", str(iterations)],
                            env=env, capture_output=True, text=True, check=True)
    times = {f"{m[1]} {m[2]}": float(m[3]) for m in LAYER_LINE.finditer(result.stderr)}
    times["forward-backward"] = float(TOTAL_LINE.search(result.stderr)[1])
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--models", nargs="+", default=["lenet", "mlp"])
    parser.add_argument("--caffe-root", action="append", required=True, metavar="LABEL=PREFIX")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    builds = dict(item.split("=", 1) for item in args.caffe_root)
    load_before = os.getloadavg()[0]
    results = {model: {label: [] for label in builds} for model in args.models}
    with tempfile.TemporaryDirectory(prefix="caffepipe-bench-layers-") as work:
        nets = {model: generate_nets(Path(work), model, args.db.resolve()) for model in args.models}
        for repeat in range(args.repeats):
            for model in args.models:
                for label in rotated(list(builds), repeat):
                    results[model][label].append(caffe_time(builds[label], nets[model] / "train.prototxt",
                                                            args.iterations, args.threads))
                    print(repeat, model, label, results[model][label][-1]["forward-backward"], flush=True)
    labels = list(builds)
    lines = [f"# Per-layer `caffe time`, {args.threads} BLAS thread(s), batch 64", "",
             f"Command: `.venv/bin/python {' '.join(sys.argv)}`", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores. Load average (1 min) {load_before:.2f} before, "
             f"{os.getloadavg()[0]:.2f} after (shared machine). {args.repeats} repeats, interleaved, "
             f"{args.iterations} iterations each; medians in ms.", ""]
    for model in args.models:
        # Rows every run printed (Caffe leaves out the backward of layers that have none in some runs).
        rows = [row for row in results[model][labels[0]][0]
                if all(row in run for label in labels for run in results[model][label])]
        lines += [f"## {model}", "", "| layer | " + " | ".join(labels) + f" | {labels[-1]} / {labels[0]} |",
                  "|---|" + "---:|" * (len(labels) + 1)]
        for row in rows:
            medians = [statistics.median(run[row] for run in results[model][label]) for label in labels]
            ratio = medians[-1] / medians[0] if medians[0] else float("nan")
            lines.append(f"| {row} | " + " | ".join(f"{m:.2f}" for m in medians) + f" | {ratio:.2f} |")
        lines.append("")
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
