"""A small fine-tuning workspace for the tests: a LeNet trained for a few iterations on real MNIST (the
source), Fashion-MNIST's databases (the target, from Debian's package), and params that make
`caffepipe finetune` run in seconds. Every step runs the real `caffepipe` commands."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import run_caffepipe, tiny_params, write_params


def finetune_params(mnist_raw: Path, **finetune: object) -> dict:
    return tiny_params(fetch={"sources": ["local", "package"], "local_dir": str(mnist_raw)},
                       netgen={"models": ["lenet"]}, finetune=finetune)


def make_workspace(work: Path, mnist_raw: Path) -> Path:
    """Source (data/nets/lenet, data/train/lenet) and target (data/target/db) in `work`, with params.yaml."""
    work.mkdir(parents=True, exist_ok=True)
    params = write_params(work / "params.yaml", finetune_params(mnist_raw))
    steps = [
        ("build-db", "--raw", str(mnist_raw), "--out", "data/db"),
        ("fetch", "--dataset-from", "finetune.dataset", "--out", "data/target/raw"),
        ("build-db", "--raw", "data/target/raw", "--out", "data/target/db"),
        ("netgen", "--model", "lenet", "--db", "data/db", "--out", "data/nets/lenet"),
        ("train", "--model", "lenet", "--nets", "data/nets/lenet", "--db", "data/db", "--out", "data/train/lenet"),
    ]
    for command, *args in steps:
        run_caffepipe(command, "--params", str(params), *args, cwd=work)
    return work


def finetune_command(out: str = "data/finetune", params: str = "params.yaml") -> list[str]:
    """`caffepipe finetune` arguments writing everything under `out` (a folder of the workspace)."""
    return ["finetune", "--params", params, "--source-nets", "data/nets", "--source-train", "data/train",
            "--db", "data/target/db", "--out", f"{out}/runs", "--out-subsets", f"{out}/subsets.json",
            "--out-runs", f"{out}/runs.json", "--out-reports", f"{out}/reports", "--threads", "1"]
