"""Write outputs to a temporary path and rename them into place, so nothing is ever half-written.

A reader (or a later pipeline run) sees either the old complete output or the new complete one, even when the
writer is killed (`kill -9`) at any point:

- A file is written under a temporary name beside it and renamed over it: rename(2) replaces a file in one step.
- A folder cannot be renamed over a non-empty folder. The new folder and the old one are swapped in one step with
  renameat2(RENAME_EXCHANGE) (Linux 3.15+; ext4, xfs, btrfs, tmpfs and most local filesystems), then the old one,
  now under the temporary name, is removed. Where the filesystem cannot swap, the old folder is renamed aside and
  the new one into place: a kill between those two renames leaves no output, only the aside copy, and the next
  write to that path puts the aside copy back first.

Temporaries and aside copies are hidden siblings, `.<name>.<pid>-<start>.<random>.tmp` / `.aside`, named after the
process writing them. A writer killed part-way leaves them behind, so every atomic_output starts by removing those
whose writer no longer runs. It never touches those of a running writer, which may be writing the same output
at the same time. Linux only in that respect: the check reads /proc.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Iterator

TEMPORARY, ASIDE = "tmp", "aside"     # the suffixes of the two kinds of sibling

AT_FDCWD = -100                       # renameat2's "relative to the current directory" (linux/fcntl.h)
RENAME_EXCHANGE = 2                   # linux/fs.h
# Errors meaning "this C library, kernel or filesystem cannot swap two paths": then the two renames are used.
EXCHANGE_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)


def _load_renameat2():
    """libc's renameat2 (glibc 2.28+), or None where the C library has none."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
        function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _load_renameat2()


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap two existing paths in one atomic step. False, with nothing changed, where the system cannot."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in EXCHANGE_UNSUPPORTED:
        return False
    raise OSError(error, os.strerror(error), str(first), None, str(second))


def _process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks after boot, field 22 of /proc/<pid>/stat), or None if it does
    not run. With the PID it names one process: after a writer dies, another process may get its PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, *fields = stat.rpartition(")")[2].split()    # after the command name, which may hold spaces
    return None if state in ("Z", "X") else fields[18]   # a zombie has stopped writing


def _writer_name() -> str:
    return f"{os.getpid()}-{_process_start(os.getpid()) or ''}"


def _sibling(final: Path, kind: str) -> Path:
    """A fresh hidden name beside `final` (same filesystem, so renames between them are atomic)."""
    return final.parent / f".{final.name}.{_writer_name()}.{secrets.token_hex(4)}.{kind}"


def _sibling_pattern(final: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(final.name)}\.(\d+)-(\d*)\.[0-9a-f]+\.({TEMPORARY}|{ASIDE})")


def _new_temporary(final: Path, directory: bool) -> Path:
    # Created as a plain mkdir/open would, so the output gets the permissions the umask gives.
    temporary = _sibling(final, TEMPORARY)
    if directory:
        temporary.mkdir()
    else:
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return temporary


def remove_path(path: Path) -> None:
    """Remove a file, a symlink or a whole folder; a missing path is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def leftovers_of_dead_writers(final: Path) -> list[tuple[Path, str]]:
    """(path, kind) of the temporaries and aside copies beside `final` whose writer no longer runs."""
    pattern = _sibling_pattern(final)
    leftovers = []
    for sibling in sorted(final.parent.iterdir()):
        match = pattern.fullmatch(sibling.name)
        if match and _process_start(int(match[1])) != match[2]:
            leftovers.append((sibling, match[3]))
    return leftovers


def _remove_leftover(leftover: Path, final: Path) -> None:
    # Renamed to a name of our own first: of two writers cleaning up at once, one gets it and the other skips
    # it, and a kill during the removal leaves a name that the next run recognises as a dead writer's.
    claimed = _sibling(final, TEMPORARY)
    try:
        os.rename(leftover, claimed)
    except FileNotFoundError:
        return
    remove_path(claimed)


def _restore_aside(aside: Path, final: Path) -> None:
    # A folder is never renamed over a non-empty folder, so this cannot undo what a concurrent writer put there.
    with contextlib.suppress(FileNotFoundError):     # another writer has just restored or removed it
        os.rename(aside, final)


def clean_up_after_killed_writers(final: Path) -> None:
    """Put back the aside copy of a writer killed between its two renames, if the output is missing, and remove
    every other temporary and aside copy of writers that no longer run."""
    if not Path("/proc/self/stat").exists():    # no way to tell a running writer from a dead one: touch nothing
        return
    for leftover, kind in leftovers_of_dead_writers(final):
        if kind == ASIDE and not os.path.lexists(final):
            _restore_aside(leftover, final)
        else:
            _remove_leftover(leftover, final)


def _replace_folder(temporary: Path, final: Path) -> None:
    """Put the complete folder `temporary` at `final`, where something already is, and remove the old one."""
    if exchange_paths(temporary, final):
        remove_path(temporary)      # now the old output
        return
    aside = _sibling(final, ASIDE)
    os.replace(final, aside)
    try:
        os.replace(temporary, final)
    except BaseException:
        os.replace(aside, final)
        raise
    remove_path(aside)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on any error it is removed.

    With directory=True the temporary path is an empty folder; an existing folder at `path` is
    replaced as a whole, never merged.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_up_after_killed_writers(final)
    temporary = _new_temporary(final, directory)
    try:
        yield temporary
        if directory and os.path.lexists(final):
            _replace_folder(temporary, final)
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
