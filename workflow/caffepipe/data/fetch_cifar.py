"""CIFAR-10 for `caffepipe fetch` (fetch.dataset: cifar10): from a folder or a URL you name, checked.

No package registry ships CIFAR-10, so it comes from what you point fetch at, through params fetch.sources:
  local    fetch.local_dir: a folder holding the official binary-version archive cifar-10-binary.tar.gz, or
           its extracted batch files (data_batch_1.bin .. data_batch_5.bin, test_batch.bin, batches.meta.txt;
           directly or in the archive's cifar-10-batches-bin/ folder);
  mirrors  fetch.url (an http, https or file URL of the archive) when set, then the dataset's own site;
  package  none exists: always fails, saying so.

The archive must have the pinned SHA-256 (cifar.ARCHIVE_SHA256; fetch.cifar10_sha256 replaces the pin for an
archive of your own, such as the tests' generated one). Extracted batch files cannot be checked that way: no
published SHA-256 of the single files is known to us, so they are checked for their layout only (whole 3073-byte
records, labels 0..9), a warning says so and source.json records `"sha256_pinned": false`. For a verified
run, give the archive.

Writes the six batch files and batches.meta.txt into --out (data/raw), with source.json: the dataset, where the
data came from and how it was checked, and each file's SHA-256 (so a later change to data/raw shows).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from caffepipe.core.atomic import atomic_output
from caffepipe.core.errors import CaffepipeError
from caffepipe.data import cifar
from caffepipe.data.fetch import MirrorUnreachable, SourceFailed, download, verified

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/" + cifar.ARCHIVE


@dataclass(frozen=True)
class Delivery:
    """What one source gave: the batch files by name, and how they were checked."""
    files: dict[str, bytes]
    origin: str                 # the archive's path or URL, or the folder of the batch files
    sha256_pinned: bool         # the archive matched the pinned digest; False: extracted files, layout only


def _checked_files(members: dict[str, bytes], origin: str) -> dict[str, bytes]:
    """The batch files, each a whole number of CIFAR-10 records (SourceFailed otherwise)."""
    for name in (*cifar.TRAIN_BATCHES, cifar.TEST_BATCH):
        try:
            cifar.parse_batch(members[name], f"{origin}: {name}")
        except CaffepipeError as error:
            raise SourceFailed(str(error)) from None
    return {name: members[name] for name in cifar.FILES}


def from_archive_bytes(data: bytes, origin: str, expected_sha256: str) -> Delivery:
    verified(origin, data, expected_sha256)
    try:
        members = cifar.archive_members(data, origin)
    except CaffepipeError as error:
        raise SourceFailed(str(error)) from None
    return Delivery(_checked_files(members, origin), origin, sha256_pinned=True)


def from_folder(folder: Path, expected_sha256: str) -> Delivery:
    """The archive in `folder` if it is there, else the extracted batch files (in it or its cifar-10-batches-bin/)."""
    if not folder.is_dir():
        raise SourceFailed(f"fetch.local_dir {folder}: no such folder")
    archive = folder / cifar.ARCHIVE
    if archive.is_file():
        return from_archive_bytes(archive.read_bytes(), str(archive), expected_sha256)
    for candidate in (folder, folder / cifar.ARCHIVE_FOLDER):
        if all((candidate / name).is_file() for name in cifar.FILES):
            files = {name: (candidate / name).read_bytes() for name in cifar.FILES}
            log.warning("%s: extracted CIFAR-10 batch files are checked for their layout only (no pinned SHA-256 of "
                        "the single files); put %s there for a verified fetch", candidate, cifar.ARCHIVE)
            return Delivery(_checked_files(files, str(candidate)), str(candidate), sha256_pinned=False)
    raise SourceFailed(f"{folder} holds neither {cifar.ARCHIVE} nor the extracted batch files ({', '.join(cifar.FILES)})")


def from_urls(urls: list[str], timeout_s: float, expected_sha256: str) -> Delivery:
    reasons = []
    for url in urls:
        try:
            return from_archive_bytes(download(url, timeout_s), url, expected_sha256)
        except (MirrorUnreachable, SourceFailed) as failure:
            reasons.append(str(failure))
    raise SourceFailed("; ".join(reasons))


def make_sources(params: dict) -> dict[str, Callable[[], Delivery]]:
    expected = params["cifar10_sha256"] or cifar.ARCHIVE_SHA256
    urls = [url for url in (params["url"], OFFICIAL_URL) if url]
    makers = {
        "local": lambda: (from_folder(Path(params["local_dir"]), expected) if params["local_dir"]
                          else _fail("fetch.local_dir is not set in params.yaml")),
        "mirrors": lambda: from_urls(urls, params["timeout_s"], expected),
        "package": lambda: _fail("no package registry ships CIFAR-10"),
    }
    return {source: makers[source] for source in params["sources"]}


def _fail(reason: str) -> Delivery:
    raise SourceFailed(reason)


def deliver(params: dict) -> tuple[Delivery, str]:
    """The first source's delivery that passes every check, and that source's name; CaffepipeError listing
    why each failed."""
    reasons = []
    for source, fetch in make_sources(params).items():
        try:
            return fetch(), source
        except SourceFailed as failure:
            log.info("CIFAR-10: %s failed: %s", source, failure)
            reasons.append(f"{source}: {failure}")
    raise CaffepipeError("could not fetch CIFAR-10: " + " | ".join(reasons) + f" (put {cifar.ARCHIVE} into a folder "
                         "named by fetch.local_dir, with `local` in fetch.sources, or set fetch.url)")


def fetch_cifar10(params: dict, out: Path) -> dict:
    delivery, source = deliver(params)
    record = {"dataset": "cifar10", "source": source, "origin": delivery.origin,
              "sha256_pinned": delivery.sha256_pinned,
              "archive_sha256": (params["cifar10_sha256"] or cifar.ARCHIVE_SHA256) if delivery.sha256_pinned else None,
              "files": {}}
    with atomic_output(out, directory=True) as folder:
        for name, data in delivery.files.items():
            (folder / name).write_bytes(data)
            record["files"][name] = {"source": source, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        (folder / "source.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("CIFAR-10 from %s (%s): %s", source, delivery.origin,
             "archive SHA-256 verified" if delivery.sha256_pinned else "extracted files, layout checked only")
    return record
