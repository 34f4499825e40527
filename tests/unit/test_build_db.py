import json

import numpy as np
import pytest

from caffepipe.data.build_db import build_databases, lmdb_map_size
from caffepipe.data.datum import db_path, read_db
from caffepipe.core.errors import CaffepipeError
from caffepipe.data.idx import read_idx
from tests.idx_files import write_idx


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_database_content_equals_the_idx_input(synthetic_raw, tmp_path, backend) -> None:
    info = build_databases(synthetic_raw, tmp_path / "db", [backend], {"train": None, "test": None})
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = read_db(db_path(tmp_path / "db", split, backend), backend)
        np.testing.assert_array_equal(images[:, 0], read_idx(synthetic_raw / f"{prefix}-images-idx3-ubyte"))
        np.testing.assert_array_equal(labels, read_idx(synthetic_raw / f"{prefix}-labels-idx1-ubyte"))
        assert info[split] == len(labels)
    assert json.loads((tmp_path / "db" / "info.json").read_text())["height"] == 28


def test_limits_keep_the_first_images(synthetic_raw, tmp_path) -> None:
    build_databases(synthetic_raw, tmp_path / "db", ["lmdb"], {"train": 50, "test": 7})
    images, labels = read_db(db_path(tmp_path / "db", "test", "lmdb"), "lmdb")
    assert len(labels) == 7
    np.testing.assert_array_equal(labels, read_idx(synthetic_raw / "t10k-labels-idx1-ubyte")[:7])


def test_labels_that_do_not_match_the_images_leave_the_old_databases(synthetic_raw, tmp_path) -> None:
    build_databases(synthetic_raw, tmp_path / "db", ["lmdb"], {"train": None, "test": None})
    write_idx(synthetic_raw / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(CaffepipeError, match="do not belong together"):
        build_databases(synthetic_raw, tmp_path / "db", ["lmdb"], {"train": None, "test": None})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db", "raw"], "no temporary folder left behind"
    assert len(read_db(db_path(tmp_path / "db", "test", "lmdb"), "lmdb")[1]) == 100


def test_lmdb_map_size_grows_with_the_data() -> None:
    small = lmdb_map_size([(b"k", b"v" * 100)])
    large = lmdb_map_size([(b"k", b"v" * 100)] * 100_000)
    assert small % (1 << 20) == 0 and large > 2 * 100 * 100_000 > small


def test_info_names_the_dataset_that_fetch_recorded(synthetic_raw, tmp_path) -> None:
    assert build_databases(synthetic_raw, tmp_path / "a", ["lmdb"], {"train": 5, "test": 5})["dataset"] is None
    (synthetic_raw / "source.json").write_text(json.dumps({"dataset": "fashion-mnist", "files": {}}))
    build_databases(synthetic_raw, tmp_path / "b", ["lmdb"], {"train": 5, "test": 5})
    assert json.loads((tmp_path / "b" / "info.json").read_text())["dataset"] == "fashion-mnist"


def folder_bytes(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_two_builds_are_byte_identical_file_for_file(synthetic_raw, tmp_path) -> None:
    for name in ("first", "second"):
        build_databases(synthetic_raw, tmp_path / name, ["lmdb", "leveldb"], {"train": None, "test": None})
    first = folder_bytes(tmp_path / "first")
    assert first == folder_bytes(tmp_path / "second")
    assert not {name.rsplit("/", 1)[-1] for name in first} & {"LOG", "LOG.old", "lock.mdb"}


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_the_padded_training_database_holds_the_same_images_with_a_black_border(synthetic_raw, tmp_path, backend) -> None:
    info = build_databases(synthetic_raw, tmp_path / "db", [backend], {"train": None, "test": None}, train_pad=2)
    images, labels = read_db(db_path(tmp_path / "db", "train_padded", backend), backend)
    plain, plain_labels = read_db(db_path(tmp_path / "db", "train", backend), backend)
    assert images.shape[2:] == (32, 32) and info["train_pad"] == 2
    np.testing.assert_array_equal(images[:, :, 2:-2, 2:-2], plain)
    np.testing.assert_array_equal(labels, plain_labels)
    border = images.copy()
    border[:, :, 2:-2, 2:-2] = 0
    assert not border.any()
    build_databases(synthetic_raw, tmp_path / "db0", [backend], {"train": None, "test": None})
    assert not db_path(tmp_path / "db0", "train_padded", backend).exists()
