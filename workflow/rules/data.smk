# Fetch MNIST / Fashion-MNIST, build the Caffe databases, and answer 'why a database?'.
# Every field comes from the stage list (common.smk); the rule names say what runs here.

rule fetch:
    input:
        stage_input("fetch"),
    output:
        stage_output("fetch"),
    params:
        **stage_params("fetch"),
    threads: stage_threads("fetch")
    resources:
        **stage_resources("fetch"),
    shell:
        stage_shell("fetch")

rule build_db:
    input:
        stage_input("build_db"),
    output:
        stage_output("build_db"),
    params:
        **stage_params("build_db"),
    threads: stage_threads("build_db")
    resources:
        **stage_resources("build_db"),
    shell:
        stage_shell("build_db")

rule export_images:
    input:
        stage_input("export_images"),
    output:
        stage_output("export_images"),
    params:
        **stage_params("export_images"),
    threads: stage_threads("export_images")
    resources:
        **stage_resources("export_images"),
    shell:
        stage_shell("export_images")

rule bench_io:
    input:
        stage_input("bench_io"),
    output:
        stage_output("bench_io"),
    params:
        **stage_params("bench_io"),
    threads: stage_threads("bench_io")
    resources:
        **stage_resources("bench_io"),
    shell:
        stage_shell("bench_io")
