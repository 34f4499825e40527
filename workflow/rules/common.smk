# Helpers that read a rule's fields from the stage list (workflow/caffepipe/stages.py), so the Snakemake
# rules and dvc.yaml cannot disagree. Each rule file names its rules; the fields come from here.
from caffepipe import orchestration
from caffepipe.stages import STAGES, stage as find_stage

wildcard_constraints:
    model="|".join(orchestration.models(config)),


def stage_input(name):
    return orchestration.snakemake_inputs(find_stage(name), config)


def stage_output(name):
    return [directory(path) if is_dir else path for path, is_dir in orchestration.snakemake_outputs(find_stage(name))]


def stage_params(name):
    return orchestration.snakemake_params(find_stage(name), config)


def stage_threads(name):
    return orchestration.stage_threads(find_stage(name), config)


def stage_resources(name):
    stage = find_stage(name)
    return {"mem_mb": stage.mem_mb, "runtime": stage.runtime_min}


def stage_shell(name):
    return orchestration.snakemake_shell(find_stage(name))


def all_outputs():
    """Every output of every stage, for every model: what `snakemake` with no target builds."""
    paths = []
    for stage in STAGES:
        for path, _ in orchestration.snakemake_outputs(stage):
            paths.extend(expand(path, model=orchestration.models(config)) if stage.per_model else [path])
    return paths
