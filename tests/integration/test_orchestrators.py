"""Users' workflows with the real Snakemake and DVC, end to end, on tiny parameters.

Each test works in its own copy of the repository (tests/conftest.py: tiny_repo), made a git repository so
DVC can track it. The data is real MNIST, fetched once per session and read from a local folder.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ORCHESTRATOR_ENV as ENV
from tests.conftest import write_params
from tests.conftest import git_repository as git_repo
from tests.conftest import run_command as run
from tests.report_browser import check_page

pytestmark = pytest.mark.integration

def dvc_stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def snakemake_jobs_planned(repo: Path) -> set[str]:
    """Rule names (with the model) that `snakemake -n` would run now."""
    result = run(["snakemake", "-n", "--cores", "4"], repo)
    text = result.stdout + result.stderr
    jobs = set()
    for block in re.split(r"\n(?=\S*rule )", text):
        rule = re.match(r"(?:local)?rule (\w+):", block.strip())
        if rule and rule.group(1) != "all":
            model = re.search(r"wildcards: model=(\w+)", block)
            jobs.add(rule.group(1) + (f"@{model.group(1)}" if model else ""))
    return jobs


def set_param(repo: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    write_params(repo / "params.yaml", params)


def test_snakemake_runs_everything_then_nothing_then_only_what_a_param_touches(tiny_repo: Path) -> None:
    run(["snakemake", "--cores", "4"], tiny_repo)
    page = check_page(tiny_repo / "reports/index.html", follow_toc_links=True)    # a tiny real run's report, in Chromium
    assert page.ok, page.describe()
    assert len(page.images) >= 15
    for model in ("lenet", "mlp", "gapnet"):
        assert json.loads((tiny_repo / f"reports/train/{model}/metrics.json").read_text())["peak_memory_mb"] > 0
    # the default pipeline's class activation maps: gapnet has them, LeNet says why not
    assert json.loads((tiny_repo / "reports/cam/gapnet/index.json").read_text())["has_cam"]
    assert not json.loads((tiny_repo / "reports/cam/lenet/index.json").read_text())["has_cam"]
    html = (tiny_repo / "reports/index.html").read_text()
    assert 'id="zoo"' in html and 'id="cam"' in html and "where it looked" in html.lower()
    finetune = json.loads((tiny_repo / "reports/finetune/metrics.json").read_text())
    assert {mode: sorted(sizes) for mode, sizes in finetune.items()} == {
        mode: ["20", "50"] for mode in ("last_layer", "full", "scratch")}
    assert json.loads((tiny_repo / "data/target/raw/source.json").read_text())["dataset"] == "fashion-mnist"
    assert snakemake_jobs_planned(tiny_repo) == set(), "a second run must find nothing to do"

    set_param(tiny_repo, "analyze", "gallery_max", 4)
    assert snakemake_jobs_planned(tiny_repo) == {"analyze", "report"}


def test_dvc_repro_status_diffs_experiments_and_remote(tiny_repo: Path, tmp_path: Path) -> None:
    repo = git_repo(tiny_repo)
    first = run(["dvc", "repro"], repo)
    assert {"fetch", "train@lenet", "train@mlp", "fetch_target", "build_db_target", "finetune",
            "report"} <= dvc_stages_run(first.stdout)
    assert "up to date" in run(["dvc", "status"], repo).stdout.lower()
    again = run(["dvc", "repro"], repo)
    assert dvc_stages_run(again.stdout) == set(), again.stdout
    assert snakemake_jobs_planned(repo) == set(), "Snakemake trusts what DVC made (tests/integration/test_orchestrators_trust.py)"
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "first run"], repo)

    # One parameter changes: only the stages that read it, and those downstream, run again.
    set_param(repo, "analyze", "gallery_max", 4)
    assert dvc_stages_run(run(["dvc", "repro"], repo).stdout) == {"analyze", "report"}
    run(["git", "commit", "-qam", "smaller gallery"], repo)

    # A training parameter: metrics and plots differ between the two commits.
    set_param(repo, "train", "base_lr", 0.02)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "lr 0.02"], repo)
    params_diff = run(["dvc", "params", "diff", "HEAD~1", "--json"], repo).stdout
    change = json.loads(params_diff)["params.yaml"]["train.base_lr"]
    assert (change["old"], change["new"]) == (0.01, 0.02)
    metrics_diff = json.loads(run(["dvc", "metrics", "diff", "HEAD~1", "--json"], repo).stdout)
    assert "reports/train/lenet/metrics.json" in metrics_diff
    plots_dir = tmp_path / "plots"
    run(["dvc", "plots", "diff", "HEAD~1", "-o", str(plots_dir)], repo)
    assert (plots_dir / "index.html").exists()

    # An experiment with one parameter set on the command line.
    experiment = run(["dvc", "exp", "run", "-S", "train.base_lr=0.005"], repo)
    assert "train@lenet" in dvc_stages_run(experiment.stdout)
    shown = run(["dvc", "exp", "show", "--json"], repo).stdout
    assert "0.005" in shown

    # Push every artifact to a local remote; a fresh clone pulls them all and has nothing to recompute.
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "local", str(remote)], repo)
    run(["git", "commit", "-qam", "remote"], repo)
    run(["dvc", "push"], repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    assert (clone / "reports/index.html").exists() and (clone / "data/train/lenet/final.caffemodel").exists()
    assert "up to date" in run(["dvc", "status"], clone).stdout.lower()
    assert dvc_stages_run(run(["dvc", "repro"], clone).stdout) == set()

    # Snakemake has no record of what DVC pulled (git clone made the code newer than the pulled outputs):
    # `snakemake --touch --forceall` records it once; then it trusts DVC's restores like its own outputs.
    run(["snakemake", "--touch", "--forceall", "--cores", "1"], clone)
    assert snakemake_jobs_planned(clone) == set()
    run(["rm", "-r", "data/db", "data/db.sha256", "data/train/lenet/final.caffemodel"], clone)
    run(["dvc", "checkout"], clone)
    assert snakemake_jobs_planned(clone) == set()


def _kill_during_training(command: list[str], repo: Path, model: str) -> None:
    """Start the orchestrator, wait for the first snapshot of `model`, then SIGKILL the whole process group."""
    process = subprocess.Popen(command, cwd=repo, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    snapshots = repo / f"data/train/{model}/snapshots"
    deadline = time.monotonic() + 300
    while not list(snapshots.glob("*.solverstate")):
        assert process.poll() is None, "the pipeline ended before training wrote a snapshot"
        assert time.monotonic() < deadline, "no snapshot within 5 minutes"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("orchestrator", ["snakemake", "dvc"])
def test_training_killed_with_sigkill_resumes(tiny_repo: Path, orchestrator: str) -> None:
    repo = git_repo(tiny_repo)
    set_param(repo, "netgen", "models", ["lenet"])
    set_param(repo, "train", "max_iter", 300)
    set_param(repo, "train", "snapshot_iters", [10, 100, 200])
    command = ["snakemake", "--cores", "4"] if orchestrator == "snakemake" else ["dvc", "repro"]
    _kill_during_training(command, repo, "lenet")
    assert not (repo / "data/train/lenet/final.caffemodel").exists(), "killed before the end"

    if orchestrator == "snakemake":
        run(["snakemake", "--unlock"], repo)   # Snakemake's own lock outlives a kill -9 of Snakemake (README)
    run(command, repo)
    manifest = json.loads((repo / "data/train/lenet/snapshots.json").read_text())
    assert manifest["snapshots"][-1]["iteration"] == 300
    log = (repo / "data/train/lenet/caffe.log").read_text()
    assert re.search(r"segment resumes lenet from iteration \d+ ", log), "the second run must resume, not start over"
    assert "from scratch" not in log.split("segment resumes")[1], "nothing after the resume starts over"
    tested = {int(n) for n in re.findall(r"Iteration (\d+), Testing net", log)}
    assert {0, 20, 300} <= tested or {300} <= tested
    trained = sorted({int(n) for n in re.findall(r"Iteration (\d+) \(", log)} |
                     {int(n) for n in re.findall(r"Iteration (\d+), loss", log)})
    assert trained[-1] >= 295 and trained[0] <= 5, "the log covers the whole run"
