"""The pipeline on a real Slurm cluster: `snakemake --profile workflow/profiles/slurm` on a single-node Slurm
that envs/slurm/cluster.sh starts on 127.0.0.1 (munged, MariaDB, slurmdbd, slurmctld, slurmd) for this module
and stops, by PID, after it. Needs root (CI runs as root) and the packages in envs/apt-packages.txt.

One Slurm run of the tiny pipeline (one model, so fewer jobs) is shared by the tests: its training job is
cancelled with `scancel` midway, and the same command is run again. That run is compared with an
uninterrupted local `snakemake --cores 2` run on the same parameters, started at the same time in another
copy: same metrics, bit-identical weights (both train on 2 BLAS threads). Training's batch (16) and snapshot
interval (25) put every resume point mid-epoch (640 training images), where a resume that re-read the
database from its start would give other weights.

The only settings added for this tiny cluster are on the command line (SNAKEMAKE_SLURM): the plugin's first
status check after 1 s instead of 40, and no automatic retry, so that the cancelled job stays cancelled until
the command is run again. After the scancel, Snakemake is stopped with SIGINT (Ctrl-C): the Slurm plugin
(2.8.0) does not recognise sacct's "CANCELLED by <uid>" and would wait for the cancelled job forever.
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

from caffepipe.pipeline import orchestration
from caffepipe.pipeline.stages import STAGES
from tests.conftest import ORCHESTRATOR_ENV as ENV
from tests.conftest import REPO
from tests.conftest import run_command as run
from tests.faults.sandbox import copy_repository

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

CLUSTER = str(REPO / "envs/slurm/cluster.sh")
MODEL = "lenet"
MAX_ITER, SNAPSHOT_EVERY, TRAIN_IMAGES, BATCH = 400, 25, 640, 16
CANCEL_AFTER = 100          # scancel once training has a snapshot at this iteration or later
TRAIN = {"max_iter": MAX_ITER, "snapshot_interval": SNAPSHOT_EVERY, "snapshot_iters": [], "test_interval": 100,
         "display": 20, "threads": 2}
SNAKEMAKE_SLURM = ["snakemake", "--profile", "workflow/profiles/slurm",
                   "--slurm-init-seconds-before-status-checks", "1", "--retries", "0"]
SNAKEMAKE_LOCAL = ["snakemake", "--cores", "2"]
SNAPSHOTS = Path("data/train") / MODEL / "snapshots"
FINAL = Path("data/train") / MODEL / "final.caffemodel"
# Metrics that record no time; reports/train/<model>/metrics.json also has `seconds`, left out.
METRICS = (f"reports/train/{MODEL}/metrics.json", f"reports/eval/{MODEL}/metrics.json", "reports/analysis-metrics.json")


def tiny_copy(target: Path, mnist_raw: Path, **sections: dict) -> Path:
    return copy_repository(target, fetch={"sources": ["local", "package"], "local_dir": str(mnist_raw)},
                           netgen={"models": [MODEL], "train_batch_size": BATCH}, train=TRAIN, **sections)


def cluster_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLUSTER, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def cluster() -> None:
    """The single-node cluster, up for this module; stopped after it unless it was already running."""
    if os.geteuid() != 0:
        pytest.skip("the test cluster starts daemons and writes /etc/slurm/slurm.conf: run as root (CI does)")
    was_up = cluster_script("status").returncode == 0
    started = cluster_script("up")
    assert started.returncode == 0, started.stdout + started.stderr
    yield
    if not was_up:
        stopped = cluster_script("down")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


class LocalRun:
    """An uninterrupted local run of the same tiny pipeline up to the weights and metrics compared, started at
    once so that it runs beside the Slurm run."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.process = subprocess.Popen([*SNAKEMAKE_LOCAL, str(FINAL), *METRICS], cwd=repo, env=ENV,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: str | None = None

    def finished(self) -> Path:
        """Its repository, once it has finished successfully."""
        if self.output is None:
            self.output, _ = self.process.communicate(timeout=600)
        assert self.process.returncode == 0, self.output[-4000:]
        return self.repo


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, mnist_raw: Path) -> LocalRun:
    started = LocalRun(tiny_copy(tmp_path_factory.mktemp("local") / "repo", mnist_raw))
    yield started
    if started.process.poll() is None:
        started.process.kill()
        started.process.wait()


def snapshot_iterations(repo: Path) -> list[int]:
    return sorted(int(m.group(1)) for path in (repo / SNAPSHOTS).glob(f"{MODEL}_iter_*.solverstate")
                  if (m := re.search(r"_iter_(\d+)\.solverstate$", path.name)))


def running_job(repo: Path, rule: str) -> str:
    """The Slurm job id of `rule`'s job from this repository, once it runs."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listing = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k|%Z"], capture_output=True,
                                 text=True, check=True).stdout
        for line in listing.splitlines():
            job, comment, workdir = line.split("|")
            if comment == f"rule_{rule}_wildcards_{MODEL}" and Path(workdir) == repo:
                return job
        time.sleep(0.2)
    raise AssertionError(f"no running Slurm job of rule {rule} within 2 minutes")


def cancel_training_midway(process: subprocess.Popen, repo: Path) -> int:
    """Wait for a snapshot at CANCEL_AFTER or later, scancel the training job; the newest snapshot then."""
    deadline = time.monotonic() + 300
    while not [i for i in snapshot_iterations(repo) if i >= CANCEL_AFTER]:
        assert process.poll() is None, "the Slurm run ended before training reached its middle"
        assert time.monotonic() < deadline, f"no snapshot at iteration {CANCEL_AFTER} within 5 minutes"
        time.sleep(0.1)
    job = running_job(repo, "train")
    subprocess.run(["scancel", job], check=True)
    return snapshot_iterations(repo)[-1], job


def wait_for_slurm_state(job: str, prefix: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job, "-o", "State"], capture_output=True,
                               text=True, check=True).stdout.strip()
        if state.startswith(prefix):
            return state
        time.sleep(0.2)
    raise AssertionError(f"Slurm job {job} is not {prefix} after a minute")


@pytest.fixture(scope="module")
def slurm_run(cluster: None, local_run: LocalRun, tmp_path_factory: pytest.TempPathFactory,
              mnist_raw: Path) -> dict:
    """The tiny pipeline under Slurm: training cancelled midway, then the same command again, to the end."""
    repo = tiny_copy(tmp_path_factory.mktemp("slurm") / "repo", mnist_raw)
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    first = subprocess.Popen(SNAKEMAKE_SLURM, cwd=repo, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        cancelled_at, job = cancel_training_midway(first, repo)
        cancelled_state = wait_for_slurm_state(job, "CANCELLED")
        # snakemake-executor-plugin-slurm 2.8.0 does not know sacct's state "CANCELLED by <uid>" (it knows
        # "CANCELLED") and would wait for the job forever; the user stops it (Ctrl-C), as here.
        first.send_signal(signal.SIGINT)
        # Snakemake then waits for its running jobs' status before it exits; on a busy machine it may not exit at
        # all (the plugin polls the unknown state): the user then kills it, as here after 120 s.
        try:
            first_output, _ = first.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            first.kill()
            first_output, _ = first.communicate()
            # A killed Snakemake leaves its lock in .snakemake/locks; its next run refuses the folder and says to
            # run --unlock, which the user does.
            run([*SNAKEMAKE_SLURM, "--unlock"], repo, timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    second = run(SNAKEMAKE_SLURM, repo, timeout=600)
    return {"repo": repo, "started": started, "cancelled_at": cancelled_at, "cancelled_state": cancelled_state,
            "first_rc": first.returncode,
            "first_output": first_output, "second_output": second.stdout + second.stderr}


def sacct_jobs(repo: Path, since: str) -> list[dict[str, str]]:
    fields = ["JobID", "Comment", "State", "AllocCPUS", "ReqMem", "Timelimit", "WorkDir"]
    listing = subprocess.run(["sacct", "-X", "-P", "-n", "-a", "-S", since, "-o", ",".join(fields)],
                             capture_output=True, text=True, check=True).stdout
    jobs = [dict(zip(fields, line.split("|"))) for line in listing.splitlines()]
    return [job for job in jobs if Path(job["WorkDir"]) == repo]


def slurm_time_limit(minutes: int) -> str:
    """sacct's Timelimit for a job submitted with `-t minutes`."""
    days, rest = divmod(minutes, 24 * 60)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


def test_every_rule_ran_as_a_slurm_job_with_the_resources_it_declares(slurm_run: dict) -> None:
    repo = slurm_run["repo"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    jobs = sacct_jobs(repo, slurm_run["started"])
    completed = {job["Comment"]: job for job in jobs if job["State"] == "COMPLETED"}
    for stage in STAGES:
        comment = f"rule_{stage.name}" + (f"_wildcards_{MODEL}" if stage.per_model else "")
        assert comment in completed, f"no completed Slurm job for rule {stage.name}: {sorted(completed)}"
        job = completed[comment]
        declared = (str(orchestration.stage_threads(stage, params)), f"{stage.mem_mb}M",
                    slurm_time_limit(stage.runtime_min))
        assert (job["AllocCPUS"], job["ReqMem"], job["Timelimit"]) == declared, (stage.name, job)
    assert completed[f"rule_train_wildcards_{MODEL}"]["AllocCPUS"] == "2"
    cancelled = [job for job in jobs if job["State"].startswith("CANCELLED")]
    assert [job["Comment"] for job in cancelled] == [f"rule_train_wildcards_{MODEL}"]


def test_scancel_midway_then_the_same_command_resumes_to_the_uninterrupted_weights(
        slurm_run: dict, local_run: LocalRun) -> None:
    repo, cancelled_at = slurm_run["repo"], slurm_run["cancelled_at"]
    assert 0 < cancelled_at < MAX_ITER and cancelled_at * BATCH % TRAIN_IMAGES, "cancelled mid-epoch, mid-training"
    assert slurm_run["first_rc"] != 0, "the cancelled job fails the first command"
    assert slurm_run["cancelled_state"].startswith("CANCELLED")
    log = (repo / "data/train" / MODEL / "caffe.log").read_text()
    resumed = re.search(rf"segment resumes {MODEL} from iteration (\d+) ", log)
    assert resumed, "the second command must resume training, not start over"
    assert cancelled_at <= int(resumed.group(1)) < MAX_ITER

    # Every scheduled snapshot, bit for bit; the Slurm run has one more, written when scancel's SIGTERM arrived.
    local = local_run.finished()
    names = {path.name for path in (local / SNAPSHOTS).glob("*.caffemodel")}
    extra = {path.name for path in (repo / SNAPSHOTS).glob("*.caffemodel")} - names
    assert len(names) == MAX_ITER // SNAPSHOT_EVERY and len(extra) <= 1, extra
    for name in sorted(names):
        assert (repo / SNAPSHOTS / name).read_bytes() == (local / SNAPSHOTS / name).read_bytes(), name
    assert (repo / FINAL).read_bytes() == (local / FINAL).read_bytes()


def test_slurm_metrics_equal_the_local_run(slurm_run: dict, local_run: LocalRun) -> None:
    local = local_run.finished()
    for path in METRICS:
        on_slurm, on_local = (json.loads((repo / path).read_text()) for repo in (slurm_run["repo"], local))
        for metrics in (on_slurm, on_local):
            metrics.pop("seconds", None)
            metrics.pop("peak_memory_mb", None)   # the process's peak resident memory: measured, like seconds
            # Caffe's smoothed loss averages the last `average_loss` iterations, a history the solverstate does
            # not keep: after the resume it restarts (the loss itself, and the weights, are identical).
            metrics.get("train", {}).pop("smoothed_loss", None)
        assert on_slurm == on_local, path


def test_a_failing_job_shows_the_stage_error_in_snakemake_output(cluster: None, tmp_path: Path,
                                                                 mnist_raw: Path) -> None:
    missing = tmp_path / "no-such-folder"
    repo = tiny_copy(tmp_path / "repo", mnist_raw)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["fetch"].update({"sources": ["local"], "local_dir": str(missing)})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run([*SNAKEMAKE_SLURM, "data/raw"], repo, check=False, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SLURM-job" in output and "FAILED" in output, output[-3000:]
    error = [line for line in output.splitlines() if line.startswith("caffepipe fetch: error: ")]
    assert error and str(missing) in error[0], output[-3000:]


def test_up_twice_is_one_cluster(cluster: None) -> None:
    before = cluster_script("status")
    again = cluster_script("up")
    assert again.returncode == 0 and "already up" in again.stdout
    assert cluster_script("status").stdout == before.stdout, "the same daemons, the same PIDs"


def test_the_script_refuses_a_slurm_conf_it_did_not_write(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the cluster script needs root")
    foreign = tmp_path / "slurm.conf"
    foreign.write_text("ClusterName=production\n")
    env = {"CAFFEPIPE_SLURM_CONF_PATH": str(foreign), "CAFFEPIPE_SLURM_STATE": str(tmp_path / "state")}
    refused = cluster_script("up", env=env)
    assert refused.returncode == 1
    assert "was not written by this script" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert foreign.read_text() == "ClusterName=production\n"
    assert not list((tmp_path / "state").rglob("*.pid")), "no daemon started"
    stopped = cluster_script("down", env=env)    # down when down: fine, and a foreign file stays
    assert stopped.returncode == 0 and foreign.exists()
