"""What do BLAS threads buy when training? `caffepipe train` of one model with 1 and with 2 threads.

Issue #4 says that on these 2-core machines two threads train LeNet about 25% faster than one but burn half the
CPU time in the kernel; this measures it. Each run is a fresh `caffepipe train` (the pipeline's command) of
--iterations iterations on the full MNIST databases, alternating the thread counts, and records wall, user and
system seconds (children included). The 1-thread run is the baseline of the same invocation.

    .venv/bin/python bench/train_threads.py --db data/db --model lenet --iterations 1000 --repeats 3 \\
        --out bench/results/train_threads.md
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(command: list[str], cwd: Path) -> dict[str, float]:
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read()[-3000:]}")
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(max_iter=args.iterations, snapshot_iters=[], snapshot_interval=args.iterations,
                           test_interval=args.iterations)
    caffepipe = str(BIN / "caffepipe")
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="caffepipe-bench-threads-") as work:
        work = Path(work)
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        subprocess.run([caffepipe, "netgen", "--params", "params.yaml", "--model", args.model, "--db",
                        str(args.db.resolve()), "--out", "nets"], cwd=work, check=True, capture_output=True)
        for repeat in range(args.repeats):
            for threads in ((1, 2) if repeat % 2 == 0 else (2, 1)):
                out = work / f"train-{threads}-{repeat}"
                results[threads].append(run([caffepipe, "train", "--params", "params.yaml", "--model", args.model,
                                             "--nets", "nets", "--db", str(args.db.resolve()), "--out", str(out),
                                             "--threads", str(threads)], work))
                shutil.rmtree(out)
                print(threads, results[threads][-1], flush=True)

    def median(threads: int, key: str) -> float:
        return statistics.median(r[key] for r in results[threads])

    one, two = median(1, "wall_s"), median(2, "wall_s")
    lines = [f"# BLAS threads and training speed: {args.model}, {args.iterations} iterations", "",
             f"Command: `.venv/bin/python {' '.join(sys.argv)}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores; each a fresh `caffepipe train` on the full "
             f"MNIST databases, {args.repeats} runs per thread count, alternating. Medians.", "",
             "| threads | wall s | iterations/s | user s | system s | system share of CPU time |",
             "|---:|---:|---:|---:|---:|---:|"]
    for threads in (1, 2):
        user, system = median(threads, "user_s"), median(threads, "sys_s")
        lines.append(f"| {threads} | {median(threads, 'wall_s'):.1f} | {args.iterations / median(threads, 'wall_s'):.1f} | "
                     f"{user:.1f} | {system:.1f} | {system / (user + system):.0%} |")
    lines += ["", f"Two threads are {one / two - 1:+.0%} faster than one (wall time {two / one:.2f}× the 1-thread run).", ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
