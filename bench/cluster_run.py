"""One run of the tiny pipeline on the single-node Slurm test cluster, against the same run with local jobs.

    .venv/bin/python bench/cluster_run.py --out bench/results/cluster.md      # as root; starts the cluster if down

Two copies of the repository with the test suite's tiny parameters (tests/integration/test_slurm.py's: one
model, 400 training iterations on 2 threads) run the whole pipeline one after the other: first
`snakemake --cores 2` (the baseline), then `snakemake --profile workflow/profiles/slurm` with the test's
polling settings. Writes the wall times, their ratio, and sacct's table of the Slurm jobs. What the ratio
measures is Slurm's per-job cost on a 2-core machine (sbatch, a Snakemake inside every job, srun, sacct
polling), not Slurm's speed: these jobs take seconds.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import ORCHESTRATOR_ENV, default_params, run_caffepipe, write_params  # noqa: E402
from tests.integration.test_slurm import SNAKEMAKE_LOCAL, SNAKEMAKE_SLURM, tiny_copy  # noqa: E402

SACCT_FIELDS = "JobID,Comment,State,AllocCPUS,ReqMem,Timelimit,Elapsed"


def timed(command: list[str], cwd: Path) -> float:
    start = time.monotonic()
    subprocess.run(command, cwd=cwd, env=ORCHESTRATOR_ENV, check=True, capture_output=True)
    return time.monotonic() - start


def fetch_mnist(folder: Path) -> Path:
    params = default_params()
    params["fetch"].update({"dataset": "mnist", "sources": ["package"]})
    write_params(folder / "params.yaml", params)
    run_caffepipe("fetch", "--params", str(folder / "params.yaml"), "--out", str(folder / "raw"), cwd=folder)
    return folder / "raw"


def sacct_table(repo: Path, since: str) -> list[list[str]]:
    listing = subprocess.run(["sacct", "-X", "-P", "-n", "-a", "-S", since, "-o", SACCT_FIELDS + ",WorkDir"],
                             capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in listing.splitlines()]
    return [row[:-1] for row in rows if Path(row[-1]) == repo]


def markdown(local_s: float, slurm_s: float, rows: list[list[str]], command: str) -> str:
    header = SACCT_FIELDS.split(",")
    lines = [
        "# The tiny pipeline on the single-node Slurm test cluster",
        "",
        f"Command: `{command}`",
        f"Machine: {platform.node()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}"
        f" cores, Python {platform.python_version()}, Slurm from Debian 12 (envs/slurm/cluster.sh); noisy, read"
        " the ratio.",
        "",
        "| run | jobs | wall s | ratio to local |",
        "|---|---|---|---|",
        f"| `{' '.join(SNAKEMAKE_LOCAL)}` (baseline) | {len(rows)} | {local_s:.1f} | 1.0 |",
        f"| `{' '.join(SNAKEMAKE_SLURM)}` | {len(rows)} | {slurm_s:.1f} | {slurm_s / local_s:.2f} |",
        "",
        "sacct's table of the Slurm run (`sacct -X -o " + SACCT_FIELDS + "`):",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    subprocess.run([str(REPO / "envs/slurm/cluster.sh"), "up"], check=True)
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as work:
        work = Path(work)
        (work / "mnist").mkdir()
        raw = fetch_mnist(work / "mnist")
        local, slurm = tiny_copy(work / "local", raw), tiny_copy(work / "slurm", raw)
        local_s = timed(SNAKEMAKE_LOCAL, local)
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
        slurm_s = timed(SNAKEMAKE_SLURM, slurm)
        rows = sacct_table(slurm, since)
    args.out.write_text(markdown(local_s, slurm_s, rows, "python bench/cluster_run.py " + " ".join(argv)))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
