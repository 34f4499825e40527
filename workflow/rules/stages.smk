# Every caffepipe rule, made by one loop over the stage list (workflow/caffepipe/pipeline/stages.py).
#
# Why a loop and not one hand-written rule per stage: every rule here is the same thing, "run
# `caffepipe <stage>` with these paths", and the stage list already says, for each stage, its command,
# inputs, outputs, params, threads and resources. dvc.yaml is generated from the same list. Hand-written
# rules would be a second copy of those facts, kept equal only by a test; the loop makes drift impossible.
# What a Snakemake user reads rules for is still there: `snakemake --list` names every rule with what it
# does, `snakemake -n -p` prints each job's inputs, outputs and shell command, and `--dag`, `--summary`
# and `--detailed-summary` work as for any workflow.
from caffepipe.pipeline import orchestration
from caffepipe.pipeline.stages import STAGES


wildcard_constraints:
    model="|".join(orchestration.models(config)),


for stage in STAGES:

    rule:
        name: stage.name
        # A folder input's modification time means nothing (ancient): DVC may have restored it from its cache.
        # The folder's digest file, also an input, says whether its content changed (pipeline/digest.py).
        input: [ancient(path) if is_folder else path for path, is_folder in orchestration.snakemake_inputs(stage, config)]
        output: [directory(path) if is_dir else path for path, is_dir in orchestration.snakemake_outputs(stage)]
        params: **orchestration.snakemake_params(stage, config), command=orchestration.snakemake_command(stage)
        threads: orchestration.stage_threads(stage, config)
        resources: mem_mb=stage.mem_mb, runtime=stage.runtime_min
        shell: "{params.command}"

    workflow.get_rule(stage.name).docstring = stage.summary
