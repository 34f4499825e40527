"""How long do `dvc repro`, `dvc status` and `snakemake --cores 4` take when there is nothing to do?

Target (issue #6): a second `dvc repro` does nothing in under 3 s. Each command is timed `--repeats` times in a
repository where the whole pipeline has already run, next to a baseline measured in the same invocation: the
tool's bare start-up (`dvc --version`, `snakemake --version`), so the ratio says what the pipeline itself adds.

    .venv/bin/python bench/orchestration_noop.py --repo . --out bench/results/orchestration_noop.md

The repository must have run the pipeline under both tools first (`dvc repro` and `snakemake --cores 4`).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall_seconds(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    if command[:2] == ["dvc", "repro"] and "Running stage" in result.stdout:
        raise SystemExit(f"`dvc repro` ran stages; run the pipeline first:\n{result.stdout}")
    if command[0] == "snakemake" and "--cores" in command and "Nothing to be done" not in result.stdout + result.stderr:
        raise SystemExit(f"`snakemake` has jobs to run; run the pipeline first:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed


def measure(commands: dict[str, list[str]], cwd: Path, repeats: int) -> dict[str, list[float]]:
    # Interleave the commands so that a slow moment of the machine hits all of them alike.
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            times[name].append(wall_seconds(command, cwd))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    commands = {
        "dvc --version (baseline)": ["dvc", "--version"],
        "dvc repro (nothing to do)": ["dvc", "repro"],
        "dvc status": ["dvc", "status"],
        "snakemake --version (baseline)": ["snakemake", "--version"],
        "snakemake --cores 4 (nothing to do)": ["snakemake", "--cores", "4"],
    }
    times = measure(commands, args.repo.resolve(), args.repeats)
    dvc_base = statistics.median(times["dvc --version (baseline)"])
    smk_base = statistics.median(times["snakemake --version (baseline)"])
    lines = [
        "# Orchestration with nothing to do",
        "",
        f"Command: `.venv/bin/python bench/orchestration_noop.py --repo {args.repo} --repeats {args.repeats} --out {args.out}`",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; noisy, read the ratios.",
        "",
        "| command | median s | min s | max s | ratio to the tool's start-up |",
        "|---|---|---|---|---|",
    ]
    for name, values in times.items():
        base = dvc_base if name.startswith("dvc") else smk_base
        lines.append(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} | "
                     f"{statistics.median(values) / base:.1f} |")
    target = statistics.median(times["dvc repro (nothing to do)"])
    lines += ["", f"Target: a second `dvc repro` in under 3 s: {'met' if target < 3 else 'NOT met'} ({target:.2f} s median)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
