# caffepipe's Snakemake workflow: `snakemake --cores 4` runs the whole pipeline on params.yaml.
# Its rules come from the stage list (workflow/caffepipe/pipeline/stages.py), as dvc.yaml does; see
# workflow/rules/stages.smk for why they are made by one loop.
from caffepipe.pipeline import orchestration
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
