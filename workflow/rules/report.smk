# One self-contained HTML report of the whole run.
# Every field comes from the stage list (common.smk); the rule names say what runs here.

rule report:
    input:
        stage_input("report"),
    output:
        stage_output("report"),
    params:
        **stage_params("report"),
    threads: stage_threads("report")
    resources:
        **stage_resources("report"),
    shell:
        stage_shell("report")
