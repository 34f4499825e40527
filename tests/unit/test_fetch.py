import gzip
import hashlib
import json

import numpy as np
import pytest

from caffepipe.data import fetch
from caffepipe.core.errors import CaffepipeError
from caffepipe.data.idx import encode_idx

PARAMS = {"dataset": "mnist", "sources": ["local"], "timeout_s": 1, "local_dir": None}


def small_dataset(folder, gzipped: bool) -> fetch.Dataset:
    """Four small IDX files in `folder` and a Dataset pinning their digests."""
    folder.mkdir(parents=True, exist_ok=True)
    digests = {}
    for index, name in enumerate(fetch.FILES):
        data = encode_idx(np.full((2, 3) if "images" in name else (2,), index, np.uint8))
        digests[name] = hashlib.sha256(data).hexdigest()
        (folder / (name + ".gz" if gzipped else name)).write_bytes(gzip.compress(data) if gzipped else data)
    return fetch.Dataset(sha256=digests, mirrors=("http://invalid.invalid/",))


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_local_folder_gzipped_or_not_is_verified_and_written(tmp_path, monkeypatch, gzipped) -> None:
    dataset = small_dataset(tmp_path / "local", gzipped)
    monkeypatch.setitem(fetch.DATASETS, "mnist", dataset)
    record = fetch.fetch_dataset("mnist", {**PARAMS, "local_dir": str(tmp_path / "local")}, tmp_path / "raw")
    for name in fetch.FILES:
        assert hashlib.sha256((tmp_path / "raw" / name).read_bytes()).hexdigest() == dataset.sha256[name]
        assert record["files"][name]["source"] == "local"
    assert json.loads((tmp_path / "raw" / "source.json").read_text()) == record


def test_a_checksum_mismatch_names_the_file_and_both_digests(tmp_path, monkeypatch) -> None:
    dataset = small_dataset(tmp_path / "local", gzipped=False)
    wrong = dict(dataset.sha256, **{"t10k-labels-idx1-ubyte": "0" * 64})
    monkeypatch.setitem(fetch.DATASETS, "mnist", fetch.Dataset(sha256=wrong, mirrors=()))
    with pytest.raises(CaffepipeError) as error:
        fetch.fetch_dataset("mnist", {**PARAMS, "local_dir": str(tmp_path / "local")}, tmp_path / "raw")
    message = str(error.value)
    assert "t10k-labels-idx1-ubyte: SHA-256 mismatch: expected " + "0" * 64 in message
    assert dataset.sha256["t10k-labels-idx1-ubyte"] in message
    assert not (tmp_path / "raw").exists(), "nothing half-written"


def test_when_every_source_fails_each_is_listed_and_the_old_output_stays(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(fetch.DATASETS, "mnist", small_dataset(tmp_path / "unused", gzipped=False))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "previous").write_text("complete earlier fetch")
    params = {**PARAMS, "sources": ["mirrors", "local"], "local_dir": str(tmp_path / "empty")}
    with pytest.raises(CaffepipeError) as error:
        fetch.fetch_dataset("mnist", params, tmp_path / "raw")
    message = str(error.value)
    assert "could not fetch train-images-idx3-ubyte" in message
    assert "mirrors: http://invalid.invalid/train-images-idx3-ubyte.gz" in message
    assert "local: neither" in message
    assert (tmp_path / "raw" / "previous").read_text() == "complete earlier fetch"


def test_the_fashion_package_source_names_the_debian_package_when_missing(monkeypatch, tmp_path) -> None:
    dataset = fetch.Dataset(sha256={}, mirrors=(), debian_folder=str(tmp_path / "absent"), debian_package="dataset-fashion-mnist")
    with pytest.raises(fetch.SourceFailed, match="install the Debian package dataset-fashion-mnist"):
        fetch.from_package(dataset, 1)("train-images-idx3-ubyte")
