"""caffepipe digest: a folder output's content as one small file, for Snakemake's checksum check."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.pipeline.digest import NOT_CONTENT, digest_path, folder_digest, main
from caffepipe.pipeline.stages import STAGES
from tests.conftest import REPO


def a_folder(root: Path) -> Path:
    folder = root / "db"
    (folder / "train_lmdb").mkdir(parents=True)
    (folder / "train_lmdb" / "data.mdb").write_bytes(b"\x00\x01records")
    (folder / "info.json").write_text('{"train": 640}\n')
    return folder


def test_the_digest_is_what_sha256sum_checks(tmp_path: Path) -> None:
    folder = a_folder(tmp_path)
    (tmp_path / "db.sha256").write_text(folder_digest(folder))
    checked = subprocess.run(["sha256sum", "--check", "--strict", "../db.sha256"], cwd=folder, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == ["info.json: OK", "train_lmdb/data.mdb: OK"]


def test_changed_content_changes_the_digest(tmp_path: Path) -> None:
    folder = a_folder(tmp_path)
    before = folder_digest(folder)
    (folder / "info.json").write_text('{"train": 641}\n')
    assert folder_digest(folder) != before


def test_a_new_file_changes_the_digest(tmp_path: Path) -> None:
    folder = a_folder(tmp_path)
    before = folder_digest(folder)
    (folder / "train_lmdb" / "extra").write_bytes(b"")
    assert folder_digest(folder) != before


def test_files_that_are_not_content_leave_the_digest_alone(tmp_path: Path) -> None:
    """Snakemake writes .snakemake_timestamp after the job, Caffe writes lock.mdb whenever it reads the LMDB."""
    folder = a_folder(tmp_path)
    before = folder_digest(folder)
    (folder / ".snakemake_timestamp").write_bytes(b"")
    (folder / "train_lmdb" / "lock.mdb").write_bytes(b"readers")
    (folder / ".train.lock").write_bytes(b"")
    assert folder_digest(folder) == before


def test_not_content_is_exactly_what_dvc_ignores() -> None:
    """Both tools must agree on what a folder holds, or one would trust a change the other sees. DVC also
    ignores train's archive/ folders (`name/` patterns), which lie in data/train/<model>, inside no folder
    output that has a digest."""
    lines = (line.strip() for line in (REPO / ".dvcignore").read_text().splitlines())
    entries = {line for line in lines if line and not line.startswith("#")}
    assert {entry for entry in entries if not entry.endswith("/")} == NOT_CONTENT
    assert {entry for entry in entries if entry.endswith("/")} == {"archive/"}
    digested = [output.path for stage in STAGES for output in stage.outputs if output.has_digest]
    assert not [path for path in digested if path.startswith("data/train")], digested


def test_the_digest_lives_beside_its_folder() -> None:
    assert digest_path("data/nets/{model}") == "data/nets/{model}.sha256"
    assert digest_path("reports/analysis/") == "reports/analysis.sha256"


def test_the_command_writes_the_file_and_a_missing_folder_is_one_clear_error(tmp_path: Path) -> None:
    folder = a_folder(tmp_path)
    assert main([str(folder), "--out", str(tmp_path / "db.sha256")]) == 0
    assert (tmp_path / "db.sha256").read_text() == folder_digest(folder)
    with pytest.raises(CaffepipeError, match="is not a folder; run the stage that writes it first"):
        main([str(tmp_path / "missing"), "--out", str(tmp_path / "missing.sha256")])
    assert not (tmp_path / "missing.sha256").exists()
