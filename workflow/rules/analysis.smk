# Evaluate every snapshot, analyse the errors, time the layers, draw filters and feature maps.
# Every field comes from the stage list (common.smk); the rule names say what runs here.

rule evaluate:
    input:
        stage_input("evaluate"),
    output:
        stage_output("evaluate"),
    params:
        **stage_params("evaluate"),
    threads: stage_threads("evaluate")
    resources:
        **stage_resources("evaluate"),
    shell:
        stage_shell("evaluate")

rule analyze:
    input:
        stage_input("analyze"),
    output:
        stage_output("analyze"),
    params:
        **stage_params("analyze"),
    threads: stage_threads("analyze")
    resources:
        **stage_resources("analyze"),
    shell:
        stage_shell("analyze")

rule time:
    input:
        stage_input("time"),
    output:
        stage_output("time"),
    params:
        **stage_params("time"),
    threads: stage_threads("time")
    resources:
        **stage_resources("time"),
    shell:
        stage_shell("time")

rule visualize:
    input:
        stage_input("visualize"),
    output:
        stage_output("visualize"),
    params:
        **stage_params("visualize"),
    threads: stage_threads("visualize")
    resources:
        **stage_resources("visualize"),
    shell:
        stage_shell("visualize")

rule sobel:
    input:
        stage_input("sobel"),
    output:
        stage_output("sobel"),
    params:
        **stage_params("sobel"),
    threads: stage_threads("sobel")
    resources:
        **stage_resources("sobel"),
    shell:
        stage_shell("sobel")
