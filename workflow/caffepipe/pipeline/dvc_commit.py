"""After a successful Snakemake run, record the stages it ran in dvc.lock, as if `dvc repro` had run them.

The Snakefile calls this from its `onsuccess:` handler. Why: DVC decides by the hashes in dvc.lock, and a
stage that Snakemake ran is news to DVC (a new caffe.log, new timings), so the next `dvc repro` would run it
again, and everything below it. `dvc commit` is DVC's own answer for a stage command run by other means: it
hashes the stage's deps and outs as they are now, writes them to dvc.lock, copies the outs into DVC's cache
and saves a run-cache entry, so that DVC can later restore them instead of recomputing.

That is true exactly for the jobs Snakemake has just run: the command is the same in both tools
(tests/test_orchestration_drift.py holds them equal) and the deps are what the job read. Jobs that Snakemake
only found up to date are left as DVC knows them, because Snakemake's "up to date" rests on modification
times, which are weaker evidence than DVC's hashes. A run that fails records nothing; DVC then runs those
stages itself.

DVC works only in a git work tree (it says "not a git repository" elsewhere); in a folder outside git there
is no DVC project to keep up to date, and this says so in one line instead of failing the Snakemake run.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterable

from caffepipe.core.errors import CaffepipeError

SNAKEMAKE_TARGET_RULE = "all"     # the Snakefile's target rule: no stage of its own


def dvc_address(stage: str, model: str | None) -> str:
    """DVC's name for one job: 'train@lenet' for a per-model stage (a foreach item), 'fetch' otherwise."""
    return f"{stage}@{model}" if model else stage


def stages_to_record(jobs: Iterable[tuple[str, str | None]]) -> list[str]:
    """DVC addresses of the (rule, model) jobs Snakemake ran, in a fixed order, without its target rule."""
    return sorted({dvc_address(rule, model) for rule, model in jobs if rule != SNAKEMAKE_TARGET_RULE})


def in_git_work_tree(root: Path) -> bool:
    result = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root, capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.strip() == "true"


def dvc_commit_command(addresses: list[str]) -> list[str]:
    # DVC from the same environment as Snakemake (envs/requirements.lock installs both), whatever PATH holds.
    # --force: the outputs differ from what dvc.lock says; that is the point, there is nothing to ask.
    return [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *addresses]


def commit_stages(addresses: list[str], root: Path) -> None:
    result = subprocess.run(dvc_commit_command(addresses), cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip() or result.stdout.strip() or "no message").splitlines()[-1]
        raise CaffepipeError(
            f"Snakemake's outputs are complete, but recording them for DVC failed ({reason}); "
            f"run `dvc commit --force {' '.join(addresses)}`, or `dvc repro` will run these stages again"
        )


def record_snakemake_run(jobs: Iterable[tuple[str, str | None]], root: Path | None = None) -> str:
    """Commit the stages of the (rule, model) jobs Snakemake ran to DVC; returns one line saying what it did
    (the Snakefile prints it: Snakemake shows no Python logging)."""
    root = Path.cwd() if root is None else root
    addresses = stages_to_record(jobs)
    if not addresses:
        return "caffepipe: Snakemake ran no stage, so dvc.lock is unchanged"
    if not in_git_work_tree(root):
        return f"caffepipe: {root} is not a git work tree, so there is no DVC project to record Snakemake's run in"
    commit_stages(addresses, root)
    return f"caffepipe: recorded in dvc.lock (dvc commit): {' '.join(addresses)}"
