"""`caffepipe digest <folder> --out <folder>.sha256`: the content of a folder output, as one small file.

Every stage that writes a folder (data/db, data/nets/lenet, reports/analysis, ...) runs this after itself, in
both orchestrators (orchestration.py appends it to the stage's command). The file lists every file of the
folder with its SHA-256, in `sha256sum` format and in path order, paths relative to the folder, so
`(cd data/db && sha256sum -c ../db.sha256)` checks a folder by hand.

Why it exists: the two orchestrators must trust each other's unchanged outputs. DVC compares content hashes;
Snakemake compares modification times, and forgives an input that is newer than its job's outputs only when
the input is a plain file whose checksum equals the one it recorded when the job last ran. A folder never gets
that check (snakemake/dag.py, `is_checksum_eligible`), and when DVC restores a folder from its cache (run-cache,
`dvc checkout`, `dvc exp`) the folder is new to the file system even though its content is not: Snakemake
re-ran everything downstream. So Snakemake rules read a folder input as `ancient()` (its time means nothing)
and read this file beside it: unchanged content gives the same file, which Snakemake forgives however new it
is; changed content changes the file, and the jobs that read the folder run again.

Files that are not content are left out, the same ones .dvcignore hides from DVC, so both tools agree on
what a folder holds: Snakemake's mtime carrier, LMDB's reader table and train's lock.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from caffepipe.core.atomic import write_text_atomic
from caffepipe.core.errors import CaffepipeError

# The same names as in .dvcignore (tests/unit/test_digest.py holds the two equal).
NOT_CONTENT = frozenset({".snakemake_timestamp", ".train.lock", "lock.mdb"})

SUFFIX = ".sha256"


def digest_path(folder: str) -> str:
    """Where the digest of a folder output lives: beside it (data/db -> data/db.sha256)."""
    return folder.rstrip("/") + SUFFIX


def content_files(folder: Path) -> list[Path]:
    """Every file under `folder` that is content, as paths relative to it, in a fixed order."""
    files = (path for path in folder.rglob("*") if path.is_file() and path.name not in NOT_CONTENT)
    return sorted((path.relative_to(folder) for path in files), key=lambda path: path.as_posix())


def file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def folder_digest(folder: Path) -> str:
    """`sha256sum` lines, one per content file: '<hex>  <relative path>'."""
    if not folder.is_dir():
        raise CaffepipeError(f"{folder} is not a folder; run the stage that writes it first")
    lines = [f"{file_sha256(folder / name)}  {name.as_posix()}\n" for name in content_files(folder)]
    return "".join(lines)


def write_folder_digest(folder: Path, out: Path) -> None:
    write_text_atomic(out, folder_digest(folder))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe digest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the folder output to describe")
    parser.add_argument("--out", type=Path, required=True, help="the digest file to write (<folder>.sha256)")
    args = parser.parse_args(argv)
    write_folder_digest(args.folder, args.out)
    return 0
