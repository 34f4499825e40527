"""The orchestration drift test: Snakemake's DAG and DVC's DAG must be the same pipeline.

Both are built by the real tools from this repository's Snakefile and dvc.yaml (no execution): Snakemake by
a forced dry run, DVC through its Python API. They must agree on the jobs (stage x model), each job's
command, inputs, outputs, and the edges between jobs. Persist outputs (training snapshots) are the one
declared difference: DVC tracks them, Snakemake must not manage them (it would delete them before a resume).
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from caffepipe.pipeline import orchestration
from caffepipe.pipeline.dvc_yaml import render_dvc_yaml
from caffepipe.pipeline.stages import STAGES
from tests.conftest import BIN, REPO


@dataclass
class Job:
    command: str = ""
    inputs: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)


def _job_name(rule: str, model: str | None) -> str:
    return f"{rule}@{model}" if model else rule


def parse_snakemake_dry_run(text: str) -> dict[str, Job]:
    """Jobs from `snakemake -n -p --forceall` output: blocks of 'rule X:', indented fields, 'Shell command:'."""
    jobs: dict[str, Job] = {}
    rule = model = None
    job = Job()
    for line in text.splitlines():
        stripped = line.strip()
        if line.startswith(("rule ", "localrule ")):
            rule, model, job = line.split()[1].rstrip(":"), None, Job()
        elif rule and stripped.startswith("input:"):
            job.inputs = set(stripped.removeprefix("input:").strip().split(", "))
        elif rule and stripped.startswith("output:"):
            job.outputs = set(stripped.removeprefix("output:").strip().split(", "))
        elif rule and stripped.startswith("wildcards:"):
            model = dict(part.split("=") for part in stripped.removeprefix("wildcards:").strip().split(", "))["model"]
        elif rule and stripped.startswith("Shell command:"):
            job.command = stripped.removeprefix("Shell command:").strip()
            jobs[_job_name(rule, model)] = job
            rule = None
    return jobs


def snakemake_jobs(repo: Path) -> dict[str, Job]:
    result = subprocess.run([str(BIN / "snakemake"), "-n", "-p", "--forceall", "--cores", "4"], cwd=repo,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return parse_snakemake_dry_run(result.stdout + result.stderr)


def dvc_jobs(repo: Path) -> tuple[dict[str, Job], set[str], set[tuple[str, str]]]:
    """DVC's resolved stages (foreach expanded), its persist outputs and its graph edges."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    jobs: dict[str, Job] = {}
    persist: set[str] = set()
    with Repo(str(repo)) as dvc:
        stages = list(dvc.index.stages)
        for stage in stages:
            deps = {dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)}
            jobs[stage.addressing] = Job(stage.cmd, deps, {out.def_path for out in stage.outs})
            persist |= {out.def_path for out in stage.outs if out.persist}
        edges = {(upstream.addressing, downstream.addressing) for downstream, upstream in dvc.index.graph.edges}
    return jobs, persist, edges


def expand_folder_inputs(jobs: dict[str, Job]) -> dict[str, Job]:
    """DVC cannot loop inside deps, so a stage that reads every model's output names their parent folder
    (data/eval for data/eval/lenet, data/eval/mlp). Replace such a folder by the outputs inside it."""
    outputs = {path for job in jobs.values() for path in job.outputs}
    expanded = {}
    for name, job in jobs.items():
        inputs = set()
        for path in job.inputs:
            inside = {out for out in outputs if out.startswith(path + "/")}
            inputs |= inside if path not in outputs and inside else {path}
        expanded[name] = Job(job.command, inputs, job.outputs)
    return expanded


def edges_from_paths(jobs: dict[str, Job]) -> set[tuple[str, str]]:
    producer = {path: name for name, job in jobs.items() for path in job.outputs}
    return {(producer[path], name) for name, job in jobs.items() for path in job.inputs if path in producer}


@pytest.fixture(scope="module")
def both_dags() -> tuple[dict[str, Job], dict[str, Job], set[str], set[tuple[str, str]]]:
    smk = {name: job for name, job in snakemake_jobs(REPO).items() if name != "all"}
    dvc, persist, dvc_edges = dvc_jobs(REPO)
    return smk, dvc, persist, dvc_edges


def test_dvc_yaml_is_generated_from_the_stage_list() -> None:
    assert (REPO / "dvc.yaml").read_text() == render_dvc_yaml(), "run `caffepipe dvc-yaml --out dvc.yaml`"


def test_same_jobs(both_dags) -> None:
    smk, dvc, _, _ = both_dags
    assert set(smk) == set(dvc)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    expected = {_job_name(s.name, m) for s in STAGES for m in (orchestration.models(params) if s.per_model else [None])}
    assert set(dvc) == expected


def test_same_commands(both_dags) -> None:
    smk, dvc, _, _ = both_dags
    for name in dvc:
        assert smk[name].command == dvc[name].command, name


def test_same_outputs_except_persisted_snapshots(both_dags) -> None:
    smk, dvc, persist, _ = both_dags
    assert persist, "training snapshots must be a DVC persist output"
    for name in dvc:
        assert smk[name].outputs == dvc[name].outputs - persist, name


def test_same_inputs_except_persisted_snapshots(both_dags) -> None:
    smk, dvc, persist, _ = both_dags
    dvc_expanded = expand_folder_inputs(dvc)
    for name in dvc:
        assert smk[name].inputs == dvc_expanded[name].inputs - persist, name


def test_same_edges(both_dags) -> None:
    smk, dvc, _, dvc_edges = both_dags
    assert edges_from_paths(smk) == dvc_edges
    assert edges_from_paths(expand_folder_inputs(dvc)) == dvc_edges


def test_every_stage_declares_its_params_and_code(both_dags) -> None:
    _, dvc, _, _ = both_dags
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage in STAGES:
        body = dvc_yaml[stage.name].get("do", dvc_yaml[stage.name])
        assert body.get("params", []) == list(stage.params), stage.name
        for job_name in (name for name in dvc if name.split("@")[0] == stage.name):
            assert f"workflow/caffepipe/{stage.code[0]}" in dvc[job_name].inputs, job_name


def test_snakemake_lists_every_stage_with_what_it_does() -> None:
    """The rules are made in a loop; `snakemake --list` must still name each one and say what it does."""
    result = subprocess.run([str(BIN / "snakemake"), "--list"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    listed = dict(line.split(" ", 1) if " " in line else (line, "") for line in result.stdout.splitlines())
    for stage in STAGES:
        assert listed[stage.name] == f"({stage.summary})", stage.name


@pytest.mark.parametrize("override", [["--config", "train={'max_iter': 5}"], ["--configfile", "params.yaml"]])
def test_snakemake_config_overrides_are_refused_not_ignored(override: list[str]) -> None:
    """Stages read params.yaml, so a Snakemake-only override would be silently ignored; it is refused instead."""
    result = subprocess.run([str(BIN / "snakemake"), "-n", *override], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert "params.yaml is the only source of parameters" in result.stdout + result.stderr
    assert "dvc exp run -S" in result.stdout + result.stderr
