"""Snakemake and DVC in one folder trust each other's unchanged outputs, whichever ran last.

DVC decides by content hashes, Snakemake by modification times. What makes them agree: Snakemake records the
stages it ran in dvc.lock (`dvc commit`, Snakefile onsuccess); every folder output carries a digest file that
Snakemake checks by checksum, the folder itself being `ancient()` to it; plain files up to 256 MB are checked
by checksum too (profiles/default/config.yaml). One tiny Snakemake run, then DVC restores, re-runs and
experiments, each followed by `snakemake -n`, which must find nothing to do.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.pipeline.dvc_commit import record_snakemake_run
from tests.conftest import REPO
from tests.integration.test_orchestrators import dvc_stages_run, git_repo, run, snakemake_jobs_planned

pytestmark = pytest.mark.integration


def dvc_restored_from_run_cache(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if "is cached - skipping run" in line}


def dvc_is_up_to_date(repo: Path) -> bool:
    return "Data and pipelines are up to date." in run(["dvc", "status"], repo).stdout


def test_each_orchestrator_trusts_the_others_unchanged_outputs(tiny_repo: Path) -> None:
    repo = git_repo(tiny_repo)

    # Snakemake runs everything and records what it ran for DVC: DVC has nothing to run.
    snakemake = run(["snakemake", "--cores", "2"], repo)
    assert "recorded in dvc.lock (dvc commit): analyze bench_io build_db" in snakemake.stdout + snakemake.stderr
    log = repo / "data/train/lenet/caffe.log"
    log_written = log.stat().st_mtime_ns
    assert dvc_stages_run(run(["dvc", "repro"], repo).stdout) == set()
    assert log.stat().st_mtime_ns == log_written, "DVC must not re-run training"
    assert dvc_is_up_to_date(repo)
    assert snakemake_jobs_planned(repo) == set(), "dvc commit re-copies single files: same content, new time"
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "pipeline run by snakemake"], repo)

    # DVC restores deleted folders from its run-cache: new folders, same content. Snakemake trusts them.
    shutil.rmtree(repo / "data/db")
    shutil.rmtree(repo / "data/nets/lenet")
    restore = run(["dvc", "repro"], repo).stdout
    assert dvc_restored_from_run_cache(restore) == {"build_db", "netgen@lenet"}, restore
    assert dvc_stages_run(restore) == set(), restore
    assert snakemake_jobs_planned(repo) == set()

    # `dvc checkout` puts back a deleted folder and a deleted file > 1 MB (the trained weights).
    shutil.rmtree(repo / "reports/analysis")
    (repo / "data/train/mlp/final.caffemodel").unlink()
    run(["dvc", "checkout"], repo)
    assert (repo / "reports/analysis").is_dir() and (repo / "data/train/mlp/final.caffemodel").is_file()
    assert snakemake_jobs_planned(repo) == set()

    # DVC re-runs training (persist outputs are never run-cached): it only re-writes the same outputs.
    (repo / "data/train/lenet/final.caffemodel").unlink()
    assert dvc_stages_run(run(["dvc", "repro"], repo).stdout) == {"train@lenet"}
    assert snakemake_jobs_planned(repo) == set()

    # An experiment, then back: DVC runs analyze and report, then restores the first ones from its run-cache.
    experiment = run(["dvc", "exp", "run", "-S", "analyze.gallery_max=4"], repo).stdout
    assert dvc_stages_run(experiment) == {"analyze", "report"}
    assert snakemake_jobs_planned(repo) == {"analyze", "report"}, "a changed param is news to Snakemake"
    back = run(["dvc", "exp", "run", "-S", "analyze.gallery_max=8"], repo).stdout
    assert dvc_restored_from_run_cache(back) == {"analyze", "report"}, back
    assert snakemake_jobs_planned(repo) == set()
    assert dvc_is_up_to_date(repo)


def a_dvc_project_with_one_folder_output(root: Path) -> Path:
    """A git + DVC project with this repository's .dvcignore and a stage writing the folder `out`."""
    root.mkdir()
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    (root / "dvc.yaml").write_text(
        "stages:\n  make:\n    cmd: mkdir -p out/train_lmdb && echo 1 > out/a && echo 2 > out/train_lmdb/data.mdb\n"
        "    outs:\n    - out\n"
    )
    git_repo(root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "repro"], root)
    return root


def test_dvc_ignores_snakemakes_timestamp_and_lmdbs_lock_inside_a_folder_output(tmp_path: Path) -> None:
    repo = a_dvc_project_with_one_folder_output(tmp_path / "repo")
    (repo / "out/.snakemake_timestamp").write_bytes(b"")          # what Snakemake adds after its job
    (repo / "out/train_lmdb/lock.mdb").write_bytes(b"readers")     # what Caffe adds whenever it reads
    (repo / "out/.train.lock").write_bytes(b"")
    assert dvc_is_up_to_date(repo)
    run(["dvc", "commit", "--force"], repo)
    assert "snakemake_timestamp" not in (repo / "dvc.lock").read_text()
    assert dvc_is_up_to_date(repo)

    (repo / "out/b").write_text("content")     # anything else inside is content: the check can fail
    assert not dvc_is_up_to_date(repo)


def test_a_failed_record_for_dvc_is_one_line_that_says_what_to_run(tmp_path: Path) -> None:
    repo = a_dvc_project_with_one_folder_output(tmp_path / "repo")
    with pytest.raises(CaffepipeError) as failure:
        record_snakemake_run([("make", None), ("nosuch", "lenet")], repo)
    message = str(failure.value)
    assert "\n" not in message and "recording them for DVC failed" in message
    assert "run `dvc commit --force make nosuch@lenet`" in message
