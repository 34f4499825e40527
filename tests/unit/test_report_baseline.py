"""The report's baseline: metrics files read from a real git repository's commits (report/baseline.py)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from caffepipe.report.baseline import resolve_baseline

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *arguments: str) -> str:
    return subprocess.run(["git", *arguments], cwd=repo, env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_metrics(repo: Path, accuracy: float, message: str) -> str:
    metrics = repo / "reports/eval/lenet/metrics.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps({"accuracy": accuracy, "errors": round((1 - accuracy) * 100), "images": 100}))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    return repo


def test_head_is_the_default_and_its_files_are_read_from_git_not_the_workspace(repo: Path) -> None:
    first = commit_metrics(repo, 0.90, "first")
    second = commit_metrics(repo, 0.95, "second")
    metrics = repo / "reports/eval/lenet/metrics.json"
    metrics.write_text(json.dumps({"accuracy": 0.99}))          # the workspace's new, uncommitted numbers

    head = resolve_baseline(None, repo / "reports")
    assert (head.revision, head.commit, head.short) == ("HEAD", second, second[:8])
    assert head.read_json(metrics)["accuracy"] == 0.95
    named = resolve_baseline("HEAD~1", repo / "reports")
    assert named.commit == first and named.read_json(metrics)["accuracy"] == 0.90
    git(repo, "tag", "v1", first)
    assert resolve_baseline("v1", repo).read_json(metrics)["accuracy"] == 0.90


def test_a_csv_is_read_from_the_baseline(repo: Path) -> None:
    table = repo / "reports/train/lenet/test.csv"
    table.parent.mkdir(parents=True)
    table.write_text("iteration,accuracy,loss\n0,0.1,2.3\n500,0.97,0.09\n")
    commit_metrics(repo, 0.9, "with curves")
    frame = resolve_baseline(None, repo).read_csv(table)
    assert frame["accuracy"].tolist() == [0.1, 0.97]


@pytest.mark.parametrize("setting,reason", [("no-such-branch", "git has no commit 'no-such-branch'"),
                                            ("--output=x", "git has no commit '--output=x'"),
                                            (False, "turned off (report.baseline: false)")])
def test_a_missing_or_disabled_baseline_shows_no_change_and_says_why(repo: Path, setting, reason: str) -> None:
    commit_metrics(repo, 0.9, "first")
    baseline = resolve_baseline(setting, repo)
    assert baseline.commit is None and baseline.reason == reason
    assert baseline.read_json(repo / "reports/eval/lenet/metrics.json") is None
    assert not (repo / "x").exists()


def test_a_repository_without_commits_a_plain_folder_and_a_file_the_commit_lacks(repo: Path, tmp_path: Path) -> None:
    assert resolve_baseline(None, repo).reason == "git has no commit 'HEAD'"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert resolve_baseline(None, plain / "reports" / "not-yet").reason == "not a git work tree"

    commit_metrics(repo, 0.9, "first")
    baseline = resolve_baseline(None, repo)
    new_file = repo / "reports/bench/metrics.json"
    new_file.parent.mkdir(parents=True)
    new_file.write_text("{}")
    assert baseline.read_json(new_file) is None                     # not in that commit
    assert baseline.read_json(repo / "reports/absent/metrics.json") is None


def test_a_baseline_file_that_is_not_json_reads_as_none(repo: Path) -> None:
    metrics = repo / "reports/eval/lenet/metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text("<<<<<<< conflict")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "broken")
    assert resolve_baseline(None, repo).read_json(metrics) is None
