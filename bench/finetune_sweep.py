"""What does the default fine-tuning sweep cost, and what does it find?

Target (issue #10): the fine-tuning part of the default run adds at most 3 minutes on the project's 2-core
machines. Wall times there vary with the load others put on the machine, so the sweep is also measured
against a baseline timed in the same invocation, just before and just after it: `caffepipe train` of the
pipeline's LeNet for BASELINE_ITERATIONS iterations on the source data (the stage a user already waits for).
The ratio, sweep / mean baseline, stays comparable across loads and machines; the sweep's 3 minutes are
about 180 / (baseline seconds) baselines on an idle 2-core machine, see bench/results/finetune.md.

    .venv/bin/python bench/finetune_sweep.py --nets data/nets --train data/train --source-db data/db \\
        --target-db data/target/db --work /tmp/finetune-bench --out bench/results/finetune.md \\
        [--set finetune.sizes=[100,1000,10000,60000]]

--nets/--train: the pipeline's nets and trained models (the source); --source-db: the source task's databases
(for the baseline); --target-db: build-db's folder of the target dataset. The sweep runs with params.yaml's
finetune section (plus any --set), fresh, in --work; its per-run table is written into --out with the machine,
the command and the times.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BASELINE_ITERATIONS = 500
BUDGET_S = 180


def timed(command: list[str], cwd: Path, log: Path) -> float:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as output:
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, check=True,
                       env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    return time.perf_counter() - start


def params_with(overrides: list[str]) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for override in overrides:
        key, value = override.split("=", 1)
        section, name = key.split(".")
        params[section][name] = yaml.safe_load(value)
    return params


def baseline(work: Path, args: argparse.Namespace, number: int) -> float:
    """Wall seconds of `caffepipe train` of LeNet for BASELINE_ITERATIONS iterations, fresh."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"].update(max_iter=BASELINE_ITERATIONS, snapshot_iters=[], snapshot_interval=0,
                           test_interval=BASELINE_ITERATIONS)
    path = work / f"baseline-{number}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    nets, out = work / f"baseline-{number}/nets", work / f"baseline-{number}/train"
    subprocess.run([str(BIN / "caffepipe"), "netgen", "--params", str(path), "--model", "lenet", "--db",
                    str(args.source_db.resolve()), "--out", str(nets)], cwd=work, check=True, capture_output=True)
    return timed([str(BIN / "caffepipe"), "train", "--params", str(path), "--model", "lenet", "--nets", str(nets),
                  "--db", str(args.source_db.resolve()), "--out", str(out)], work, work / f"baseline-{number}.log")


def sweep(work: Path, args: argparse.Namespace) -> float:
    command = [str(BIN / "caffepipe"), "finetune", "--params", "params.yaml", "--source-nets", str(args.nets.resolve()),
               "--source-train", str(args.train.resolve()), "--db", str(args.target_db.resolve()),
               "--out", "finetune/runs", "--out-subsets", "finetune/subsets.json", "--out-runs", "finetune/runs.json",
               "--out-reports", "finetune/reports"]
    return timed(command, work, work / "finetune.log")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, {platform.platform()}; load average at the end {load}"


def report(args: argparse.Namespace, params: dict, seconds: float, baselines: list[float], work: Path) -> str:
    rows = list(csv.DictReader((work / "finetune/reports/runs.csv").open()))
    finetune = params["finetune"]
    mean = sum(baselines) / len(baselines)
    lines = [
        f"# Fine-tuning sweep ({datetime.date.today()})", "",
        f"Machine: {machine()}.", "",
        f"Command: `.venv/bin/python bench/finetune_sweep.py {' '.join(sys.argv[1:])}`", "",
        f"Source: `{args.train}/{finetune['source_model']}/final.caffemodel` (trained on {params['fetch']['dataset']}); "
        f"target: {finetune['dataset']}; {finetune['max_iter']} iterations of batch {finetune['batch_size']} per run, "
        f"base_lr {finetune['base_lr']}, full's base_lr_mult {finetune['base_lr_mult']}, "
        f"{finetune['threads']} BLAS threads; each run tested on the whole target test set.", "",
        "| mode | target images | iterations | test accuracy | test loss | training s |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {row['mode']} | {int(row['size']):,} | {row['iterations']} | {float(row['accuracy']):.4f} | "
          f"{float(row['loss']):.4f} | {float(row['seconds']):.1f} |" for row in rows),
        "",
        f"Whole sweep (`caffepipe finetune`, {len(rows)} runs, fresh): **{seconds:.1f} s** wall.",
        f"Baseline in the same invocation, `caffepipe train` of LeNet for {BASELINE_ITERATIONS} iterations: "
        f"{', '.join(f'{value:.1f} s' for value in baselines)} (before, after).",
        f"Ratio sweep / baseline: **{seconds / mean:.2f}**. The 3-minute budget is {BUDGET_S} s"
        f"{' (met)' if seconds <= BUDGET_S else ' (exceeded on this run)'}.", "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("nets", "train", "source-db", "target-db", "work", "out"):
        parser.add_argument(f"--{name}", required=True, type=Path)
    parser.add_argument("--set", action="append", default=[], help="section.key=value (YAML) over params.yaml")
    parser.add_argument("--append", action="store_true", help="append to --out instead of replacing it")
    args = parser.parse_args()
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    params = params_with(args.set)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    baselines = [baseline(work, args, 1)]
    seconds = sweep(work, args)
    baselines.append(baseline(work, args, 2))
    text = report(args, params, seconds, baselines, work)
    if args.append and args.out.exists():
        text = args.out.read_text() + "\n" + text
    args.out.write_text(text)
    (work / "summary.json").write_text(json.dumps({"sweep_s": seconds, "baselines_s": baselines}) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
