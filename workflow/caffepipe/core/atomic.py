"""Write outputs to a temporary path and rename them into place, so nothing is ever half-written.

A reader (or a later pipeline run) sees either the old complete output or the new complete one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_sibling(path: Path, directory: bool) -> Path:
    # A sibling on the same filesystem, so the final os.replace is atomic. mkdtemp/mkstemp make private
    # (0700/0600) entries; the output gets the permissions a plain mkdir/open would have given it.
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        temporary.chmod(0o777 & ~_umask())
        return temporary
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    Path(name).chmod(0o666 & ~_umask())
    return Path(name)


def remove_path(path: Path) -> None:
    """Remove a file, a symlink or a whole folder; a missing path is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on any error it is removed.

    With directory=True the temporary path is an empty folder; an existing folder at `path` is
    replaced as a whole (renamed aside, then removed), never merged.
    """
    final = Path(path)
    temporary = _temporary_sibling(final, directory)
    try:
        yield temporary
        if directory and final.exists():
            aside = _temporary_sibling(final, directory=True)
            aside.rmdir()
            os.replace(final, aside)
            os.replace(temporary, final)
            remove_path(aside)
        else:
            os.replace(temporary, final)
    except BaseException:
        remove_path(temporary)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as temporary:
        temporary.write_text(text)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)
