import pytest

from caffepipe.core.atomic import atomic_output, write_text_atomic


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
