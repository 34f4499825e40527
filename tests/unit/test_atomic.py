import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from caffepipe.core import atomic
from caffepipe.core.atomic import atomic_output, exchange_paths, write_text_atomic


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("complete")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_folder_is_replaced_whole_not_merged(tmp_path) -> None:
    target = tmp_path / "db"
    target.mkdir()
    (target / "stale").write_text("old")
    with atomic_output(target, directory=True) as temporary:
        (temporary / "fresh").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["fresh"]
    assert [p.name for p in tmp_path.iterdir()] == ["db"]


def test_a_failed_folder_write_leaves_nothing_new(tmp_path) -> None:
    target = tmp_path / "db"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target, directory=True) as temporary:
            (temporary / "part").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_parents_are_created(tmp_path) -> None:
    write_text_atomic(tmp_path / "a" / "b" / "c.txt", "hi")
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "hi"


# --- Writers killed part-way (kill -9): a real child process, paused at a chosen step, then SIGKILLed. ---

# The child writes NEW to `target` with atomic_output. Every call that moves or removes a path (os.replace,
# os.rename, shutil.rmtree, atomic.exchange_paths) is one step; the child pauses before step `pause_at`
# (0: while still writing its temporary) and the test kills it there. `noswap` makes the child's filesystem one
# that cannot swap two folders. Written against the steps, not against one implementation's sequence.
CHILD = r"""
import os, shutil, sys, time
from pathlib import Path
from caffepipe.core import atomic

target, paused, kind, pause_at, swap = sys.argv[1:]
pause_at = int(pause_at)
steps = 0

def pause():
    Path(paused).touch()
    time.sleep(300)

def counted(move):
    def step(*args, **kwargs):
        global steps
        steps += 1
        if steps == pause_at:
            pause()
        return move(*args, **kwargs)
    return step

os.replace, os.rename, shutil.rmtree = counted(os.replace), counted(os.rename), counted(shutil.rmtree)
if hasattr(atomic, "exchange_paths"):
    atomic.exchange_paths = counted(atomic.exchange_paths) if swap == "swap" else (lambda first, second: False)

with atomic.atomic_output(target, directory=kind == "folder") as temporary:
    if kind == "folder":
        for name in ("a", "b"):
            (temporary / name).write_text("new")
    else:
        temporary.write_text("new")
    if pause_at == 0:
        pause()
"""

OLD = {"a": "old", "stale": "old"}
NEW = {"a": "new", "b": "new"}


@contextlib.contextmanager
def writer_paused_at(step: int, target: Path, kind: str = "folder", swap: bool = True) -> Iterator[subprocess.Popen]:
    """A child writing `target`, paused before `step` (or finished, if it has fewer steps); SIGKILLed on exit."""
    paused = target.parent.parent / f"paused-{step}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target), str(paused), kind, str(step),
                              "swap" if swap else "noswap"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not paused.exists() and child.poll() is None:
            assert time.monotonic() < deadline, "the child writer never reached its pause"
            time.sleep(0.02)
        assert child.poll() in (None, 0), child.stderr.read()
        yield child
    finally:
        child.kill()        # SIGKILL: no cleanup runs in the child
        child.wait()


def old_folder(tmp_path: Path) -> Path:
    target = tmp_path / "out" / "db"
    target.mkdir(parents=True)
    for name, text in OLD.items():
        (target / name).write_text(text)
    return target


def folder_contents(path: Path) -> dict[str, str] | None:
    return {p.name: p.read_text() for p in path.iterdir()} if path.is_dir() else None


def names_beside(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir())


def write_folder(target: Path, contents: dict[str, str]) -> None:
    with atomic_output(target, directory=True) as temporary:
        for name, text in contents.items():
            (temporary / name).write_text(text)


@pytest.mark.parametrize("step", [1, 2, 3])
def test_a_folder_writer_killed_at_any_step_leaves_a_complete_output_and_the_next_write_no_leftovers(tmp_path, step) -> None:
    target = old_folder(tmp_path)
    with writer_paused_at(step, target):
        pass
    assert folder_contents(target) in (OLD, NEW), "killed mid-replacement, the output must be the old or the new one"
    write_folder(target, {"c": "newer"})
    assert folder_contents(target) == {"c": "newer"}
    assert names_beside(target) == ["db"], "the killed writer's temporaries must be removed"


@pytest.mark.parametrize("step", [1, 2, 3])
def test_where_folders_cannot_be_swapped_a_killed_writer_s_output_is_back_at_the_next_write(tmp_path, step) -> None:
    target = old_folder(tmp_path)
    with writer_paused_at(step, target, swap=False):
        pass
    # Killed between its two renames, the child left no output, only an aside copy. The next write puts it
    # back before it starts, so even a next write that fails leaves a complete output.
    with pytest.raises(RuntimeError):
        with atomic_output(target, directory=True):
            raise RuntimeError("the next write fails too")
    assert folder_contents(target) in (OLD, NEW)
    assert names_beside(target) == ["db"]


@pytest.mark.parametrize("step", [0, 1])
def test_a_file_writer_killed_before_its_rename_leaves_the_old_file_and_the_next_write_no_leftovers(tmp_path, step) -> None:
    target = tmp_path / "out" / "metrics.json"
    target.parent.mkdir()
    target.write_text("old")
    with writer_paused_at(step, target, kind="file"):
        pass
    assert target.read_text() == "old"
    assert len(names_beside(target)) == 2, "the killed writer left its temporary (what the next write must remove)"
    write_text_atomic(target, "newer")
    assert names_beside(target) == ["metrics.json"]
    assert target.read_text() == "newer"


def test_the_temporary_of_a_writer_still_running_is_left_alone(tmp_path) -> None:
    target = old_folder(tmp_path)
    with writer_paused_at(0, target):
        live_temporaries = [name for name in names_beside(target) if name != "db"]
        assert len(live_temporaries) == 1
        write_folder(target, {"c": "ours"})
        assert names_beside(target) == sorted(["db", *live_temporaries]), "a concurrent writer's temporary was removed"
    write_folder(target, {"c": "later"})         # that writer is dead now
    assert names_beside(target) == ["db"]


def own_start_time() -> str:
    """Field 22 of /proc/self/stat: what, with the PID, tells this process from a later one with its PID."""
    return Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19]


def test_a_leftover_named_after_a_running_pid_with_another_start_time_is_removed(tmp_path) -> None:
    # The writer died and an unrelated process (here: this one) got its PID.
    target = tmp_path / "db"
    pid = os.getpid()
    reused = tmp_path / f".db.{pid}-{int(own_start_time()) - 1}.0badf00d.tmp"
    ours = tmp_path / f".db.{pid}-{own_start_time()}.600df00d.tmp"
    unrelated = [tmp_path / name for name in (".db.backup", ".db.12.tmp", "db.1-2.ab.tmp", ".dbx.1-2.ab.tmp")]
    for path in (reused, ours, *unrelated):
        path.mkdir()
    write_folder(target, {"a": "new"})
    assert not reused.exists()
    assert ours.exists(), "a temporary of a running writer (this process) was removed"
    assert all(path.exists() for path in unrelated), "a sibling that is no temporary of db was removed"


def test_folders_are_swapped_in_one_step_on_this_filesystem(tmp_path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "one").touch()
    (tmp_path / "second").mkdir()
    assert exchange_paths(tmp_path / "first", tmp_path / "second")
    assert [p.name for p in (tmp_path / "second").iterdir()] == ["one"]
    assert list((tmp_path / "first").iterdir()) == []


def test_where_folders_cannot_be_swapped_they_are_replaced_by_two_renames(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(atomic, "exchange_paths", lambda first, second: False)
    target = old_folder(tmp_path)
    write_folder(target, NEW)
    assert folder_contents(target) == NEW
    assert names_beside(target) == ["db"]
