"""What Snakemake's onsuccess hands to DVC: the jobs it ran, by their DVC addresses."""
from __future__ import annotations

import subprocess
from pathlib import Path

from caffepipe.pipeline.dvc_commit import dvc_commit_command, in_git_work_tree, record_snakemake_run, stages_to_record


def test_jobs_become_dvc_addresses_without_the_target_rule() -> None:
    jobs = [("all", None), ("train", "lenet"), ("fetch", None), ("train", "mlp"), ("train", "lenet")]
    assert stages_to_record(jobs) == ["fetch", "train@lenet", "train@mlp"]


def test_the_commit_is_forced_and_names_only_those_stages() -> None:
    command = dvc_commit_command(["analyze", "report"])
    assert command[1:] == ["-m", "dvc", "commit", "--force", "--quiet", "analyze", "report"]


def test_a_run_of_nothing_records_nothing(tmp_path: Path) -> None:
    assert "ran no stage" in record_snakemake_run([("all", None)], tmp_path)


def test_outside_git_there_is_no_dvc_project_and_it_says_so(tmp_path: Path) -> None:
    assert not in_git_work_tree(tmp_path)
    message = record_snakemake_run([("fetch", None)], tmp_path)
    assert message.startswith("caffepipe: ") and "is not a git work tree" in message
    assert not (tmp_path / "dvc.lock").exists()


def test_a_git_work_tree_is_recognised(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "sub").mkdir()
    assert in_git_work_tree(tmp_path) and in_git_work_tree(tmp_path / "sub")
