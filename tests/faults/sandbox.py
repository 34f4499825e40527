"""A place to break things in: a copy of the repository with tiny parameters, the orchestrators and
`caffepipe` run in it as a user would, and checks of what a failed command left behind.

The fault tests (tests/faults/) each work in such a copy, never in the repository itself.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO, tiny_params, write_params

def copy_repository(target: Path, **param_sections: dict) -> Path:
    """The repository's tracked and untracked-not-ignored files in `target`, with tiny params (plus overrides)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    write_params(target / "params.yaml", tiny_params(**param_sections))
    return target


def tree_digest(path: Path) -> str:
    """sha256 over a file, or over a folder's relative names and file contents; 'absent' if it is not there.

    LMDB's lock.mdb is left out: Caffe writes its reader table even when it only reads (see .dvcignore)."""
    if not path.exists():
        return "absent"
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.name != "lock.mdb")
    for file in files:
        digest.update(str(file.relative_to(path.parent)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def temporary_siblings(path: Path) -> list[Path]:
    """What caffepipe.core.atomic leaves beside `path` if a write was cut short: `.<name>.*.tmp` (the new
    output) or `.<name>.*.aside` (the old one, moved aside)."""
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.glob(f".{path.name}.*") if p.suffix in (".tmp", ".aside"))


def processes_inside(folder: Path) -> list[int]:
    """Ids of live processes whose working directory is in `folder` (what a kill left running)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if state != "Z" and (cwd == folder or folder in cwd.parents):
            alive.append(int(entry.name))
    return alive
