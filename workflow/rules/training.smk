# Generate the nets and solver, train with snapshots and resume, parse Caffe's log.
# Every field comes from the stage list (common.smk); the rule names say what runs here.

rule netgen:
    input:
        stage_input("netgen"),
    output:
        stage_output("netgen"),
    params:
        **stage_params("netgen"),
    threads: stage_threads("netgen")
    resources:
        **stage_resources("netgen"),
    shell:
        stage_shell("netgen")

rule train:
    input:
        stage_input("train"),
    output:
        stage_output("train"),
    params:
        **stage_params("train"),
    threads: stage_threads("train")
    resources:
        **stage_resources("train"),
    shell:
        stage_shell("train")

rule parse_log:
    input:
        stage_input("parse_log"),
    output:
        stage_output("parse_log"),
    params:
        **stage_params("parse_log"),
    threads: stage_threads("parse_log")
    resources:
        **stage_resources("parse_log"),
    shell:
        stage_shell("parse_log")
