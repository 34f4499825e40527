"""DVC remotes against real servers on 127.0.0.1: S3 (moto's server, through dvc-s3) and SSH (Debian's sshd,
through dvc-ssh); the servers are tests/remote_servers.py.

The tiny pipeline runs once for the module, in `origin`, a git repository the clones below come from. For each
remote, as a team would use it: the remote's address is committed in .dvc/config, each clone keeps its
credentials in .dvc/config.local (never committed), `origin` pushes everything with its run-cache, and fresh
`git clone`s pull artifacts and experiments back. Run them alone with `pytest -m remote`; skip them with
`-m "not remote"`.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import copy_tiny_repository, git_repository
from tests.conftest import run_command as run
from tests.remote_servers import S3Server, SshServer, free_port, s3_server, ssh_server

pytestmark = [pytest.mark.integration, pytest.mark.remote]

EXPERIMENT_PARAM = ("report.title", "experiment")   # re-runs only the report: the cheapest experiment
# A refused credential is tried on both directions; an unreachable remote only on pull, the command that
# writes into the workspace (botocore retries an S3 endpoint that refuses connections for several seconds).
FAILING_COMMANDS = {"wrong credential": (["dvc", "push"], ["dvc", "pull"]), "unreachable": (["dvc", "pull"],)}


@dataclass(frozen=True)
class Remote:
    """A DVC remote as a user configures it, and what the tests do to it."""
    name: str
    url: str
    settings: dict[str, str]             # committed in .dvc/config
    credentials: dict[str, str]          # each clone's .dvc/config.local
    wrong_credential: dict[str, str]     # .dvc/config.local values the server refuses
    unreachable: dict[str, str]          # .dvc/config.local values pointing where nothing listens
    errors: dict[str, str]               # DVC's message for each of the two failures
    objects_on_server: Callable[[], set[str]]   # what the server holds, relative to the remote's root


# --- the pipeline, run once -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory, mnist_raw: Path) -> Path:
    """The tiny pipeline, reproduced and committed (dvc.lock and the git-kept metrics) in a git repository."""
    repo = git_repository(copy_tiny_repository(tmp_path_factory.mktemp("origin") / "repo", mnist_raw))
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny pipeline run"], repo)
    return repo


# --- the two servers ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with ssh_server(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def s3_remote(server: S3Server) -> Remote:
    import boto3

    prefix = "caffepipe-store"

    def objects_on_server() -> set[str]:
        client = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                              aws_access_key_id=server.access_key_id, aws_secret_access_key=server.secret_access_key)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=f"{prefix}/")
        return {item["Key"].removeprefix(f"{prefix}/") for page in pages for item in page.get("Contents", [])}

    return Remote(
        name="s3", url=f"s3://{server.bucket}/{prefix}",
        settings={"endpointurl": server.endpoint_url},
        credentials={"access_key_id": server.access_key_id, "secret_access_key": server.secret_access_key},
        wrong_credential={"secret_access_key": "not-the-secret-key"},
        unreachable={"endpointurl": f"http://127.0.0.1:{free_port()}"},
        errors={"wrong credential": r"Forbidden", "unreachable": r"Could not connect to the endpoint URL"},
        objects_on_server=objects_on_server)


def ssh_remote(server: SshServer, store: Path) -> Remote:
    def objects_on_server() -> set[str]:
        return {str(path.relative_to(store)) for path in store.rglob("*") if path.is_file()}

    return Remote(
        name="ssh", url=f"ssh://{server.user}@127.0.0.1:{server.port}{store}",
        settings={},
        credentials={"keyfile": str(server.keyfile)},
        wrong_credential={"keyfile": str(server.stranger_keyfile)},
        unreachable={"port": str(free_port())},
        errors={"wrong credential": rf"Permission denied for user {server.user}", "unreachable": r"Connect call failed"},
        objects_on_server=objects_on_server)


# --- a remote, configured and pushed to -----------------------------------------------------------------------------

def set_local(repo: Path, remote: Remote, values: dict[str, str]) -> None:
    for key, value in values.items():
        run(["dvc", "remote", "modify", "--local", remote.name, key, value], repo)


def git_clone(origin: Path, target: Path, remote: Remote) -> Path:
    """A teammate's fresh clone: the committed remote, plus their own credentials in .dvc/config.local."""
    run(["git", "clone", "-q", str(origin), str(target)], target.parent)
    set_local(target, remote, remote.credentials)
    return target


@pytest.fixture(scope="module", params=["s3", "ssh"])
def remote(request: pytest.FixtureRequest, origin: Path, tmp_path_factory: pytest.TempPathFactory) -> Remote:
    """The remote made the project's default and committed, with credentials in origin's config.local."""
    if request.param == "s3":
        remote = s3_remote(request.getfixturevalue("moto"))
    else:
        remote = ssh_remote(request.getfixturevalue("sshd"), tmp_path_factory.mktemp("ssh-remote") / "store")
    run(["dvc", "remote", "add", "--default", remote.name, remote.url], origin)
    for key, value in remote.settings.items():
        run(["dvc", "remote", "modify", remote.name, key, value], origin)
    run(["git", "commit", "-qm", f"DVC remote {remote.name}", "--", ".dvc/config"], origin)
    set_local(origin, remote, remote.credentials)
    assert ".dvc/config.local" not in run(["git", "ls-files", ".dvc"], origin).stdout, "credentials stay out of git"
    return remote


@pytest.fixture(scope="module")
def pushed(remote: Remote, origin: Path) -> str:
    """What `dvc push --run-cache` from origin printed."""
    result = run(["dvc", "push", "--run-cache"], origin)
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def clone(pushed: str, remote: Remote, origin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of origin that ran `dvc pull --run-cache`."""
    target = git_clone(origin, tmp_path_factory.mktemp(f"clone-{remote.name}") / "repo", remote)
    run(["dvc", "pull", "--run-cache"], target)
    return target


# --- what the tests compare ------------------------------------------------------------------------------------------

def files_digest(folder: Path, skip: Callable[[Path], bool]) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and not skip(path.relative_to(folder))}


def tracked_files(repo: Path) -> dict[str, str]:
    """sha256 of every file git or DVC tracks: everything outside .git and .dvc that .dvcignore keeps."""
    ignored = [line.strip() for line in (repo / ".dvcignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]

    def skip(path: Path) -> bool:
        return path.parts[0] in (".git", ".dvc") or any(fnmatch.fnmatch(path.name, pattern) for pattern in ignored)

    return files_digest(repo, skip)


def workspace_and_cache(repo: Path) -> dict[str, str]:
    """sha256 of every file a failed command must leave alone: the workspace and DVC's cache."""
    def skip(path: Path) -> bool:
        return path.parts[0] == ".git" or path.parts[:2] in ((".dvc", "tmp"), (".dvc", "config.local"))

    return files_digest(repo, skip)


def cache_objects(repo: Path) -> set[str]:
    """DVC's cache as the remote lays it out: files/md5/xx/... and runs/... (the run-cache)."""
    cache = repo / ".dvc/cache"
    return {str(path.relative_to(cache)) for path in cache.rglob("*") if path.is_file()}


def git_tracked_md5s(repo: Path) -> set[str]:
    """md5 of every file git tracks. DVC also caches its `cache: false` outputs (the metrics and plot tables
    kept in git) for the run-cache, but pushes only what git does not carry."""
    names = run(["git", "ls-files", "-z"], repo).stdout.split("\0")
    return {hashlib.md5((repo / name).read_bytes()).hexdigest() for name in names if name}


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def experiment(repo: Path, name: str) -> dict:
    """The experiment's row of `dvc exp show --json`: its params and metrics, per file."""
    for baseline in json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout):
        for branch in baseline.get("experiments") or []:
            for revision in branch["revs"]:
                if revision.get("name") == name:
                    return revision["data"]
    raise AssertionError(f"no experiment {name} in `dvc exp show` of {repo}")


@contextmanager
def local_settings(repo: Path, remote: Remote, values: dict[str, str]) -> Iterator[None]:
    """Override the remote's .dvc/config.local for a while, then put the working credentials back."""
    set_local(repo, remote, values)
    try:
        yield
    finally:
        for key in values:
            if key in remote.credentials:
                set_local(repo, remote, {key: remote.credentials[key]})
            else:
                run(["dvc", "remote", "modify", "--local", "--unset", remote.name, key], repo)


# --- the tests ---------------------------------------------------------------------------------------------------------

def test_push_with_run_cache_then_a_fresh_clone_pulls_every_artifact(remote: Remote, origin: Path, pushed: str,
                                                                       clone: Path) -> None:
    assert re.search(r"\d+ files pushed", pushed), pushed
    missing = {name for name in cache_objects(origin) - remote.objects_on_server()
               if name.replace("/", "").removeprefix("filesmd5") not in git_tracked_md5s(origin)}
    assert not missing, f"{len(missing)} cache objects (outputs or run-cache) not on the {remote.name} server: {sorted(missing)[:5]}"

    assert tracked_files(clone) == tracked_files(origin), "the clone's workspace must be byte-identical to origin's"
    assert {name for name in cache_objects(clone) if name.startswith("runs/")} == \
        {name for name in cache_objects(origin) if name.startswith("runs/")}, "the run-cache came back whole"
    assert "up to date" in run(["dvc", "status"], clone).stdout.lower()
    repro = run(["dvc", "repro"], clone)
    assert stages_run(repro.stdout) == set(), repro.stdout


def test_experiment_pushed_from_one_clone_is_pulled_by_another(remote: Remote, origin: Path, clone: Path,
                                                              tmp_path: Path) -> None:
    param, value = EXPERIMENT_PARAM
    name = f"{remote.name}-experiment"
    ran = run(["dvc", "exp", "run", "--name", name, "-S", f"{param}={value}"], clone)
    assert stages_run(ran.stdout) == {"report"}, ran.stdout
    made = experiment(clone, name)
    run(["dvc", "exp", "push", "origin", name], clone)   # git refs to origin, artifacts to the DVC remote

    other = git_clone(origin, tmp_path / "other", remote)
    run(["dvc", "exp", "pull", "origin", name], other)
    pulled = experiment(other, name)
    assert pulled["metrics"] == made["metrics"] and pulled["metrics"], pulled
    section, key = param.split(".")
    assert pulled["params"]["params.yaml"]["data"][section][key] == value

    run(["dvc", "exp", "apply", name], other)       # its artifacts came from the remote: nothing is missing
    assert "up to date" in run(["dvc", "status"], other).stdout.lower()
    assert (other / "reports/index.html").is_file() and (other / "data/train/lenet/final.caffemodel").is_file()


@pytest.mark.parametrize("failure", ["wrong credential", "unreachable"])
def test_a_failing_remote_gives_dvcs_error_and_loses_nothing(remote: Remote, clone: Path, failure: str) -> None:
    before = workspace_and_cache(clone)
    values = remote.wrong_credential if failure == "wrong credential" else remote.unreachable
    with local_settings(clone, remote, values):
        for command in FAILING_COMMANDS[failure]:
            result = run(command, clone, check=False)
            message = result.stdout + result.stderr
            assert result.returncode != 0, f"{' '.join(command)} succeeded against a remote with a {failure}"
            assert re.search(rf"ERROR: .*{remote.errors[failure]}", message), message
    assert workspace_and_cache(clone) == before, f"a failed {' or '.join(c[1] for c in FAILING_COMMANDS[failure])} changed the workspace"
    assert "up to date" in run(["dvc", "status"], clone).stdout.lower()
