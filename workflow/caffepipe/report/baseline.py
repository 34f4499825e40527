"""The report's baseline: the metrics files as a git revision has them, to show what changed since (report.baseline).

The metrics and curve tables the summary compares (reports/eval/<model>/metrics.json, reports/train/<model>/*.csv,
reports/bench/metrics.json, reports/analysis-metrics.json) are DVC outputs with `cache: false`, so git holds them
at every commit: `git show <commit>:./<path>` reads the baseline's copy without touching the workspace. This is
what `dvc metrics diff` does against HEAD, but reading git directly needs no DVC project (Snakemake users, a
plain git checkout) and also gives the curves' CSVs.

The resolved commit id, not the revision's name, is what the page states: the same inputs and the same commit
render the same bytes, and a reader sees exactly what the numbers were compared with. A baseline that cannot be
read (no git, not a git work tree, no such revision, a repository without commits, a file that revision does not
have) is not an error: those numbers simply show no change, and the page says why there is no baseline.
"""
from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

DEFAULT_REVISION = "HEAD"     # params report.baseline: null


@dataclass(frozen=True)
class Baseline:
    """A resolved baseline commit, or none (commit None) with the reason."""
    revision: str | None      # as params name it ("HEAD", a tag, a branch, a commit); None when turned off
    commit: str | None        # the full commit id it resolved to
    reason: str = ""          # why there is no baseline, for the page

    @property
    def short(self) -> str:
        return self.commit[:8] if self.commit else ""

    def read_bytes(self, path: Path) -> bytes | None:
        """The file at `path` (in the workspace) as the baseline commit has it; None when there is none."""
        if self.commit is None:
            return None
        path = Path(path).absolute()
        if not path.parent.is_dir():
            return None
        shown = _git(["show", f"{self.commit}:./{path.name}"], cwd=path.parent)
        return shown.stdout if shown is not None and shown.returncode == 0 else None

    def read_json(self, path: Path) -> Any:
        """The baseline's JSON file, or None when it has none or it is not valid JSON (an old format, a merge
        conflict): a baseline is a comparison, never a reason to fail."""
        data = self.read_bytes(path)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def read_csv(self, path: Path) -> pd.DataFrame | None:
        data = self.read_bytes(path)
        if data is None:
            return None
        try:
            return pd.read_csv(io.BytesIO(data))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            return None


NO_BASELINE = Baseline(revision=None, commit=None, reason="turned off (report.baseline: false)")


def _git(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess | None:
    """Run git quietly; None when git is not installed. Its environment's GIT_DIR etc. are the user's business."""
    try:
        return subprocess.run(["git", *arguments], cwd=cwd, capture_output=True)
    except FileNotFoundError:
        return None


def existing_folder(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (the report's folder may not exist before its first run)."""
    path = Path(path).absolute()
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def resolve_baseline(setting: str | bool | None, workspace: Path) -> Baseline:
    """params report.baseline (None: HEAD, False: off, else a git revision) resolved to a commit of the git
    work tree holding `workspace` (a folder)."""
    if setting is False:
        return NO_BASELINE
    revision = DEFAULT_REVISION if setting is None or setting is True else str(setting)
    workspace = existing_folder(workspace)
    inside = _git(["rev-parse", "--is-inside-work-tree"], cwd=workspace)
    if inside is None:
        return Baseline(revision, None, "git is not installed")
    if inside.returncode != 0 or inside.stdout.strip() != b"true":
        return Baseline(revision, None, "not a git work tree")
    # --end-of-options: a revision that starts with "-" is a name, never an option
    resolved = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"], cwd=workspace)
    if resolved is None or resolved.returncode != 0:
        return Baseline(revision, None, f"git has no commit {revision!r}")
    return Baseline(revision, resolved.stdout.decode().strip())
