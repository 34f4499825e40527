"""Turn the stage list (stages.py) into what each orchestrator needs: Snakemake rule fields and dvc.yaml.

Both views come from the same Stage objects, so they cannot drift apart; tests/test_orchestration_drift.py
also builds both real DAGs and compares them job by job. Both add the same thing to the stage list: a digest
file beside each folder output, written by the stage's command and read by every stage that reads the folder
(pipeline/digest.py says why).
"""
from __future__ import annotations

from functools import reduce
from typing import Any, Callable

from caffepipe.pipeline.digest import digest_path
from caffepipe.pipeline.stages import ALL_MODELS, MODELS_PARAM, STAGES, Output, Stage

DVC_ITEM = "${item}"


def param_value(params: dict[str, Any], dotted_key: str) -> Any:
    """params['train']['threads'] for 'train.threads'."""
    return reduce(lambda node, key: node[key], dotted_key.split("."), params)


def models(params: dict[str, Any]) -> list[str]:
    return list(param_value(params, MODELS_PARAM))


def stage_threads(stage: Stage, params: dict[str, Any]) -> int:
    return stage.threads if isinstance(stage.threads, int) else int(param_value(params, stage.threads))


def expand_all_models(paths: tuple[str, ...], params: dict[str, Any]) -> list[str]:
    """Replace a `{models}` path by one path per model; other paths pass through."""
    expanded: list[str] = []
    for path in paths:
        expanded.extend(path.replace(ALL_MODELS, model) for model in models(params)) if ALL_MODELS in path else expanded.append(path)
    return expanded


# --- Folder digests (pipeline/digest.py says why) -------------------------------------------------------
def _digested_folders(stage: Stage) -> list[str]:
    return [output.path for output in stage.outputs if output.has_digest]


# Every folder output that has a digest, `{model}` left in; a `{models}` input names one of them per model.
DIGESTED_FOLDERS = frozenset(path for each in STAGES for path in _digested_folders(each))


def is_digested_folder(path: str) -> bool:
    return path.replace(ALL_MODELS, "{model}") in DIGESTED_FOLDERS


def stage_outputs(stage: Stage) -> tuple[Output, ...]:
    """The stage's outputs, each folder followed by its digest file."""
    outputs: list[Output] = []
    for output in stage.outputs:
        outputs.append(output)
        if output.has_digest:
            outputs.append(Output(digest_path(output.path)))
    return tuple(outputs)


def stage_inputs(stage: Stage) -> tuple[str, ...]:
    """The stage's data inputs, each folder followed by its digest file."""
    inputs: list[str] = []
    for path in stage.inputs:
        inputs.extend((path, digest_path(path)) if is_digested_folder(path) else (path,))
    return tuple(inputs)


def full_command(stage: Stage) -> str:
    """The stage's command, then one `caffepipe digest` for each folder it writes."""
    digests = [f"caffepipe digest {folder} --out {digest_path(folder)}" for folder in _digested_folders(stage)]
    return " && ".join([stage.command, *digests])


# --- Snakemake ------------------------------------------------------------------------------------------
def snakemake_inputs(stage: Stage, params: dict[str, Any]) -> list[tuple[str, bool]]:
    """(path, is_folder) for the data inputs and the stage's code; `{model}` stays a wildcard. Persist inputs
    are not declared. The rule reads a folder as `ancient()`: its digest file, the next input, stands for it."""
    data = [(expanded, is_digested_folder(path)) for path in stage_inputs(stage)
            for expanded in expand_all_models((path,), params)]
    return data + [(path, False) for path in stage.code_paths]


def snakemake_outputs(stage: Stage) -> list[tuple[str, bool]]:
    """(path, is_directory) for every output Snakemake manages; persist outputs are left to the stage."""
    return [(output.path, output.directory) for output in stage_outputs(stage) if not output.persist]


def all_outputs(params: dict[str, Any]) -> list[str]:
    """Every output Snakemake manages, for every model: what `snakemake` with no target builds."""
    paths: list[str] = []
    for stage in STAGES:
        for path, _ in snakemake_outputs(stage):
            paths.extend(path.replace("{model}", model) for model in models(params)) if stage.per_model else paths.append(path)
    return paths


def snakemake_params(stage: Stage, params: dict[str, Any]) -> dict[str, Any]:
    """The values of the params the stage declares: Snakemake re-runs the job when they change."""
    return {key.replace(".", "_"): param_value(params, key) for key in stage.params}


def snakemake_command(stage: Stage) -> Callable[..., str]:
    """The stage's command as a Snakemake params function of the job's wildcards and threads.

    The rules are made in a loop, and Snakemake runs a rule's `shell:` code only when the job runs, after the
    loop has ended: a `shell:` reading the loop variable would run the last stage's command for every rule.
    A params function binds this stage's command now; the rule's shell is just "{params.command}".
    """
    def command(wildcards, threads) -> str:
        return full_command(stage).format_map({"model": wildcards.get("model", "{model}"), "threads": threads})
    return command


# --- DVC ------------------------------------------------------------------------------------------------
def _dvc_path(path: str) -> str:
    return path.replace("{model}", DVC_ITEM)


def _dvc_dependency(path: str) -> str:
    """DVC cannot loop inside deps, so `a/{models}/b` becomes the folder `a`, which holds every model's output."""
    return path.split("/" + ALL_MODELS)[0] if ALL_MODELS in path else _dvc_path(path)


def _dvc_command(stage: Stage) -> str:
    threads = str(stage.threads) if isinstance(stage.threads, int) else "${" + stage.threads + "}"
    return _dvc_path(full_command(stage)).replace("{threads}", threads)


def _dvc_output(output) -> str | dict[str, dict[str, Any]]:
    options: dict[str, Any] = {}
    if output.persist:
        options["persist"] = True
    if output.metric or output.plot:
        options["cache"] = False       # kept in git, so `dvc metrics/plots diff` works between commits
    if output.plot:
        options.update(x=output.plot.x, **({"y": output.plot.y} if output.plot.y else {}), template=output.plot.template,
                       **({"title": _dvc_path(output.plot.title)} if output.plot.title else {}))
    path = _dvc_path(output.path)
    return {path: options} if options else path


def dvc_stage(stage: Stage) -> dict[str, Any]:
    deps = list(dict.fromkeys(_dvc_dependency(path) for path in stage_inputs(stage) + stage.persist_inputs))
    body: dict[str, Any] = {"cmd": _dvc_command(stage), "deps": deps + list(stage.code_paths)}
    if stage.params:
        body["params"] = list(stage.params)
    for section, chosen in (
        ("outs", lambda output: not output.metric and output.plot is None),
        ("metrics", lambda output: output.metric),
        ("plots", lambda output: output.plot is not None),
    ):
        entries = [_dvc_output(output) for output in stage_outputs(stage) if chosen(output)]
        if entries:
            body[section] = entries
    if stage.per_model:
        return {"foreach": "${" + MODELS_PARAM + "}", "do": body}
    return body


def dvc_yaml() -> dict[str, Any]:
    return {"stages": {stage.name: dvc_stage(stage) for stage in STAGES}}
