# caffepipe's Snakemake workflow: `snakemake --cores 4` runs the whole pipeline on params.yaml.
# dvc.yaml describes the same stages; both come from workflow/caffepipe/stages.py.
from caffepipe.params import load_params

# params.yaml is the only source of parameters; every stage validates it again when it runs.
configfile: "params.yaml"
config = load_params("params.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_outputs(),
