# caffepipe's Snakemake workflow: `snakemake --cores 4` runs the whole pipeline on params.yaml.
# Its rules come from the stage list (workflow/caffepipe/pipeline/stages.py), as dvc.yaml does; see
# workflow/rules/stages.smk for why they are made by one loop.
from caffepipe.pipeline import dvc_commit, orchestration
from caffepipe.pipeline.params import load_params, reject_snakemake_config

# params.yaml is the only source of parameters, for both orchestrators; every stage validates it again
# when it runs. `--config` / `--configfile` would change only what Snakemake sees, not what the stages
# read, so they are refused rather than silently ignored.
reject_snakemake_config(config)
config = load_params("params.yaml")


rule all:
    input:
        orchestration.all_outputs(config),


include: "workflow/rules/stages.smk"


# DVC, which decides by the hashes in dvc.lock, must trust what Snakemake has just made: record the stages
# Snakemake ran, as `dvc repro` would have (pipeline/dvc_commit.py says why only those). Not after --touch,
# which marks outputs up to date without making them.
onsuccess:
    if not workflow.touch:
        print(dvc_commit.record_snakemake_run((job.rule.name, job.wildcards.get("model")) for job in workflow.dag.finished_jobs))
