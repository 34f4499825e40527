"""The pipeline's stage list: the one description that both orchestrators follow.

dvc.yaml is generated from it (`caffepipe dvc-yaml`); workflow/rules/stages.smk makes one Snakemake rule per
stage from it; tests/test_orchestration_drift.py builds both DAGs and fails on any difference. To add a stage:
add it here and regenerate dvc.yaml (`caffepipe dvc-yaml --out dvc.yaml`).

Paths are relative to the repository root. `{model}` stands for each model in params `netgen.models`
(a Snakemake wildcard, a DVC foreach item); `{threads}` for the threads the job is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODELS_PARAM = "netgen.models"

SCHEMA_DIR = "workflow/schemas/params"

# Code every stage runs, besides its own modules and the schemas of its params sections: a change to it
# re-runs every stage.
SHARED_CODE = (
    "workflow/caffepipe/cli.py",
    "workflow/caffepipe/core/errors.py",
    "workflow/caffepipe/pipeline/params.py",
    "workflow/caffepipe/core/atomic.py",
)

# The report's page templates (layout, macros, one partial per section), every one a dependency of the report
# stage: a new section's partial is declared by being there (then regenerate dvc.yaml).
REPORT_TEMPLATES = tuple(sorted(
    path.relative_to(Path(__file__).resolve().parents[1]).as_posix()
    for path in (Path(__file__).resolve().parents[1] / "report" / "templates").rglob("*.j2")))

# Run after every stage that writes a folder, to write the folder's digest (pipeline/digest.py says why).
DIGEST_CODE = "workflow/caffepipe/pipeline/digest.py"


@dataclass(frozen=True)
class Output:
    path: str
    directory: bool = False
    # Kept across re-runs, never deleted by the orchestrator: training snapshots, which resume needs.
    # DVC: `persist: true`. Snakemake does not declare it (it would delete it before re-running the job);
    # the stage's own code decides what to keep, and a manifest output stands for it in the DAG.
    persist: bool = False
    # Small JSON/CSV results kept in git (DVC `cache: false`) so `dvc metrics/plots diff` works between commits.
    metric: bool = False
    plot: "Plot | None" = None

    @property
    def has_digest(self) -> bool:
        """A folder the orchestrators manage gets a digest file beside it; persist folders are the stage's own."""
        return self.directory and not self.persist


@dataclass(frozen=True)
class Plot:
    """How `dvc plots` draws a CSV output, or each file of a folder output (DVCLive's series: y and title left to
    DVC, which draws every file's own column under the file's name)."""
    x: str
    y: str | None = None
    title: str | None = None
    template: str = "linear"


@dataclass(frozen=True)
class Stage:
    name: str                       # rule / stage name
    summary: str                    # what it does, in one line (`snakemake --list`)
    command: str                    # `caffepipe <stage> ...` with every path on the line
    inputs: tuple[str, ...] = ()    # data the stage reads (outputs of earlier stages)
    outputs: tuple[Output, ...] = ()
    params: tuple[str, ...] = ()    # params.yaml sections or dotted keys the stage reads
    code: tuple[str, ...] = ()      # its own modules, under workflow/caffepipe/
    per_model: bool = False
    # inputs read by the stage but only declared to DVC: persist outputs of earlier stages
    persist_inputs: tuple[str, ...] = ()
    threads: int | str = 1          # an int, or a params key whose value is the thread count
    mem_mb: int = 2000
    runtime_min: int = 10
    cli: str = ""                   # the `caffepipe` command it runs, when not its name (fetch_target: fetch)

    @property
    def code_paths(self) -> tuple[str, ...]:
        """Its modules, the shared code, the digest writer if it writes a folder, and the schema file of each
        params section it reads."""
        sections = dict.fromkeys(key.split(".")[0] for key in self.params)
        schemas = tuple(f"{SCHEMA_DIR}/{section}.json" for section in sections)
        digest = (DIGEST_CODE,) if any(output.has_digest for output in self.outputs) else ()
        return tuple(f"workflow/caffepipe/{module}" for module in self.code) + SHARED_CODE + digest + schemas

    @property
    def cli_name(self) -> str:
        return self.cli or self.name.replace("_", "-")


STAGES: tuple[Stage, ...] = (
    Stage(
        name="fetch",
        summary="download MNIST or Fashion-MNIST, or read CIFAR-10 from a folder or URL, and verify its SHA-256",
        command="caffepipe fetch --params params.yaml --out data/raw",
        outputs=(Output("data/raw", directory=True),),
        params=("fetch",),
        code=("data/fetch.py", "data/idx.py", "data/fetch_cifar.py", "data/cifar.py"),
        runtime_min=15,
    ),
    Stage(
        name="build_db",
        summary="write the images as Caffe Datum records into LMDB and LevelDB",
        command="caffepipe build-db --params params.yaml --raw data/raw --out data/db",
        inputs=("data/raw",),
        outputs=(Output("data/db", directory=True),),
        params=("build_db",),
        code=("data/build_db.py", "data/idx.py", "data/datum.py", "data/raw_images.py", "data/cifar.py",
              "data/mean_image.py"),
        mem_mb=4000,
    ),
    # The fine-tuning target (params finetune.dataset), fetched and built by the same commands into its own paths.
    Stage(
        name="fetch_target",
        summary="download the fine-tuning target dataset (finetune.dataset) and verify every file's SHA-256",
        command="caffepipe fetch --params params.yaml --dataset-from finetune.dataset --out data/target/raw",
        outputs=(Output("data/target/raw", directory=True),),
        params=("fetch.sources", "fetch.timeout_s", "fetch.local_dir", "fetch.url", "fetch.cifar10_sha256",
                "finetune.dataset"),
        code=("data/fetch.py", "data/idx.py", "data/fetch_cifar.py", "data/cifar.py"),
        runtime_min=15,
        cli="fetch",
    ),
    Stage(
        name="build_db_target",
        summary="write the target dataset's images as Caffe Datum records into LMDB and LevelDB",
        command="caffepipe build-db --params params.yaml --raw data/target/raw --out data/target/db",
        inputs=("data/target/raw",),
        outputs=(Output("data/target/db", directory=True),),
        params=("build_db",),
        code=("data/build_db.py", "data/idx.py", "data/datum.py", "data/raw_images.py", "data/cifar.py",
              "data/mean_image.py"),
        mem_mb=4000,
        cli="build-db",
    ),
    Stage(
        name="export_images",
        summary="write training images as JPEG and PNG files for the read benchmark",
        command="caffepipe export-images --params params.yaml --raw data/raw --out data/images",
        inputs=("data/raw",),
        outputs=(Output("data/images", directory=True),),
        params=("export_images",),
        code=("data/export_images.py", "data/idx.py", "data/raw_images.py", "data/cifar.py"),
    ),
    Stage(
        name="bench_io",
        summary="time reads from LMDB, LevelDB, JPEG, PNG and raw arrays: why a database?",
        command=(
            "caffepipe bench-io --params params.yaml --raw data/raw --db data/db --images data/images"
            " --out reports/bench"
        ),
        inputs=("data/raw", "data/db", "data/images"),
        outputs=(
            Output("reports/bench/io.csv", plot=Plot(x="images_per_s", y="format", title="read throughput (images/s)", template="bar_horizontal")),
            Output("reports/bench/metrics.json", metric=True),
            Output("reports/bench/io.png"),
        ),
        params=("bench_io",),
        code=("data/bench_io.py", "data/idx.py", "data/datum.py", "core/caffe_env.py", "core/figures.py",
              "core/upstream.py", "data/raw_images.py", "data/cifar.py"),
        runtime_min=30,
    ),
    Stage(
        name="netgen",
        summary="generate a model's train, test and deploy prototxt and its solver with caffe.net_spec",
        per_model=True,
        command="caffepipe netgen --params params.yaml --model {model} --db data/db --out data/nets/{model}",
        inputs=("data/db",),    # info.json: test_iter must cover the whole test set
        outputs=(Output("data/nets/{model}", directory=True),),
        params=("netgen", "train"),
        code=("training/netgen.py", "training/models.py", "training/solver_settings.py", "training/nets_folder.py",
              "core/caffe_env.py", "data/datum.py", "core/upstream.py", "data/mean_image.py"),
    ),
    Stage(
        name="train",
        summary="train a model with caffe, snapshotting and resuming from the newest solverstate",
        per_model=True,
        command=(
            "caffepipe train --params params.yaml --model {model} --nets data/nets/{model} --db data/db"
            " --out data/train/{model} --out-reproducibility reports/train/{model}/reproducibility.json"
            " --out-live reports/train/{model}/live --threads {threads}"
        ),
        inputs=("data/nets/{model}", "data/db"),
        outputs=(
            Output("data/train/{model}/snapshots", directory=True, persist=True),
            Output("data/train/{model}/snapshots.json"),
            Output("data/train/{model}/final.caffemodel"),
            Output("data/train/{model}/caffe.log"),
            # whether the weights are bit-reproducible (the report says so when not), and the threads of each segment
            Output("reports/train/{model}/reproducibility.json", metric=True),
            # DVCLive's series, written as it trains (training/live_metrics.py); kept like the snapshots, since a
            # resumed run continues them. DVC: `dvc exp show` columns and `dvc plots show` curves, live.
            Output("reports/train/{model}/live/metrics.json", metric=True, persist=True),
            Output("reports/train/{model}/live/plots/metrics", directory=True, persist=True, plot=Plot(x="step")),
        ),
        params=("train",),
        code=("training/train.py", "training/folder.py", "training/history.py", "training/inputs.py",
              "training/random_state.py", "training/nets_folder.py", "training/snapshots.py", "training/disk_space.py",
              "training/initial_weights.py", "training/solver_settings.py", "training/live_metrics.py",
              "training/parse_log.py", "core/progress.py", "core/caffe_env.py", "data/datum.py"),
        threads="train.threads",
        mem_mb=4000,
        runtime_min=120,
    ),
    Stage(
        name="parse_log",
        summary="parse a model's Caffe training log into loss and accuracy tables",
        per_model=True,
        command=(
            "caffepipe parse-log --log data/train/{model}/caffe.log --out-train reports/train/{model}/train.csv"
            " --out-test reports/train/{model}/test.csv --out-metrics reports/train/{model}/metrics.json"
        ),
        inputs=("data/train/{model}/caffe.log",),
        outputs=(
            Output("reports/train/{model}/train.csv", plot=Plot(x="iteration", y="loss", title="{model}: training loss")),
            Output("reports/train/{model}/test.csv", plot=Plot(x="iteration", y="accuracy", title="{model}: test accuracy")),
            Output("reports/train/{model}/metrics.json", metric=True),
        ),
        code=("training/parse_log.py",),
    ),
    Stage(
        name="finetune",
        summary="fine-tune a trained model on the target dataset: last layer, full and scratch over training-set sizes",
        command=(
            "caffepipe finetune --params params.yaml --source-nets data/nets --source-train data/train"
            " --db data/target/db --out data/finetune/runs --out-subsets data/finetune/subsets.json"
            " --out-runs data/finetune/runs.json --out-reports reports/finetune --threads {threads}"
        ),
        # every model's, as the source (params finetune.source_model) is any of them; DVC names their folders
        # data/nets and data/train, so Snakemake declares every file train writes there too
        inputs=("data/nets/{models}", "data/train/{models}/final.caffemodel", "data/train/{models}/snapshots.json",
                "data/train/{models}/caffe.log", "data/target/db"),
        outputs=(
            Output("data/finetune/runs", directory=True, persist=True),
            Output("data/finetune/subsets.json"),
            Output("data/finetune/runs.json"),
            Output("reports/finetune/metrics.json", metric=True),
            Output("reports/finetune/accuracy_vs_size.csv",
                   plot=Plot(x="size", y="accuracy", title="fine-tuning: test accuracy against target training images",
                             template="scatter")),
            Output("reports/finetune/runs.csv"),
            Output("reports/finetune/curves.csv"),
            Output("reports/finetune/weight_change.csv"),
        ),
        params=("finetune", MODELS_PARAM),
        code=("training/finetune.py", "training/finetune_nets.py", "data/subsets.py", "data/build_db.py",
              "data/idx.py", "training/netgen.py", "training/models.py", "training/parse_log.py",
              "training/train.py", "training/folder.py", "training/history.py", "training/inputs.py",
              "training/random_state.py", "training/nets_folder.py", "training/snapshots.py", "training/disk_space.py",
              "training/initial_weights.py", "training/solver_settings.py", "training/live_metrics.py",
              "core/progress.py", "core/caffe_env.py", "core/upstream.py", "data/datum.py", "data/mean_image.py",
              "data/raw_images.py", "data/cifar.py"),
        threads="finetune.threads",
        mem_mb=4000,
        runtime_min=60,
    ),
    Stage(
        name="evaluate",
        summary="run every snapshot of a model over the test set",
        per_model=True,
        command=(
            "caffepipe evaluate --params params.yaml --model {model} --nets data/nets/{model}"
            " --snapshots data/train/{model}/snapshots.json --db data/db --out data/eval/{model}"
            " --out-metrics reports/eval/{model}/metrics.json --threads {threads}"
        ),
        inputs=("data/nets/{model}", "data/train/{model}/snapshots.json", "data/db"),
        persist_inputs=("data/train/{model}/snapshots",),
        outputs=(
            Output("data/eval/{model}", directory=True),
            Output("reports/eval/{model}/metrics.json", metric=True),
        ),
        params=("evaluate", "netgen.backend"),
        code=("evaluation/evaluate.py", "evaluation/eval_files.py", "evaluation/error_stats.py",
              "training/net_files.py", "training/nets_folder.py", "training/snapshots.py",
              "data/datum.py", "core/caffe_env.py", "core/progress.py", "training/input_transform.py",
              "data/mean_image.py"),
        threads="evaluate.threads",
        mem_mb=4000,
        runtime_min=30,
    ),
    Stage(
        name="weight_stats",
        summary="per-layer weight and activation statistics across a model's snapshots, with what they show",
        per_model=True,
        command=(
            "caffepipe weight-stats --params params.yaml --model {model} --nets data/nets/{model}"
            " --snapshots data/train/{model}/snapshots.json --db data/db --out reports/weights/{model}"
        ),
        inputs=("data/nets/{model}", "data/train/{model}/snapshots.json", "data/db"),
        persist_inputs=("data/train/{model}/snapshots",),
        outputs=(
            Output("reports/weights/{model}/weights.csv"),
            # one line per layer: the custom template .dvc/plots/per_layer.json colours by the `layer` column
            Output("reports/weights/{model}/norms.csv",
                   plot=Plot(x="iteration", y="weight_norm", title="{model}: weight norm per layer", template="per_layer")),
            Output("reports/weights/{model}/histograms.csv"),
            Output("reports/weights/{model}/activations.csv"),
            Output("reports/weights/{model}/weights.png"),
            Output("reports/weights/{model}/histograms.png"),
            Output("reports/weights/{model}/activations.png"),
            Output("reports/weights/{model}/summary.json"),
        ),
        params=("weight_stats", "netgen.backend"),
        code=("inspection/weight_stats.py", "training/net_files.py", "training/nets_folder.py",
              "training/snapshots.py", "data/datum.py", "core/caffe_env.py", "core/progress.py", "core/figures.py",
              "training/input_transform.py", "data/mean_image.py"),
        mem_mb=4000,
    ),
    Stage(
        name="analyze",
        summary="error analyses across snapshots and models: which images are wrong, which class, forgetting",
        command=(
            "caffepipe analyze --params params.yaml --eval data/eval --db data/db --out reports/analysis"
            " --out-metrics reports/analysis-metrics.json"
        ),
        inputs=("data/eval/{models}", "data/db"),
        outputs=(
            Output("reports/analysis", directory=True),
            Output("reports/analysis-metrics.json", metric=True),
        ),
        params=("analyze", MODELS_PARAM, "netgen.backend"),
        code=("evaluation/analyze.py", "evaluation/error_stats.py", "evaluation/analyze_figures.py", "evaluation/hard_images.py",
              "data/class_names.py", "evaluation/eval_files.py", "core/figures.py", "data/datum.py",
              "core/upstream.py"),
        mem_mb=4000,
    ),
    Stage(
        name="cam",
        summary="class activation maps of a global-average-pooling model: where it looked, right and wrong",
        per_model=True,
        command=(
            "caffepipe cam --params params.yaml --model {model} --nets data/nets/{model}"
            " --weights data/train/{model}/final.caffemodel --eval data/eval/{model} --db data/db"
            " --out reports/cam/{model}"
        ),
        inputs=("data/nets/{model}", "data/train/{model}/final.caffemodel", "data/eval/{model}", "data/db"),
        outputs=(Output("reports/cam/{model}", directory=True),),
        params=("cam", "netgen.backend"),
        code=("evaluation/cam.py", "evaluation/cam_figures.py", "evaluation/eval_files.py", "evaluation/error_stats.py",
              "training/models.py", "training/net_files.py", "training/nets_folder.py", "training/snapshots.py",
              "core/caffe_env.py", "core/figures.py", "data/datum.py"),
    ),
    Stage(
        name="time",
        summary="per-layer forward and backward times of a trained model with `caffe time`",
        per_model=True,
        command=(
            "caffepipe time --params params.yaml --model {model} --nets data/nets/{model}"
            " --weights data/train/{model}/final.caffemodel --out reports/time/{model} --threads {threads}"
        ),
        inputs=("data/nets/{model}", "data/train/{model}/final.caffemodel"),
        outputs=(Output("reports/time/{model}", directory=True),),
        params=("time",),
        code=("inspection/time.py", "inspection/complexity.py", "inspection/cpu_peak.py", "inspection/flop_rate.py",
              "training/net_files.py", "training/nets_folder.py", "training/snapshots.py",
              "core/caffe_env.py", "data/datum.py", "core/figures.py"),
        threads="time.threads",
    ),
    Stage(
        name="visualize",
        summary="draw a model's net diagram and a trained model's filters and feature maps",
        per_model=True,
        command=(
            "caffepipe visualize --params params.yaml --model {model} --nets data/nets/{model}"
            " --weights data/train/{model}/final.caffemodel --db data/db --out reports/visualize/{model}"
        ),
        inputs=("data/nets/{model}", "data/train/{model}/final.caffemodel", "data/db"),
        outputs=(Output("reports/visualize/{model}", directory=True),),
        params=("visualize",),
        code=("inspection/visualize.py", "inspection/net_diagram.py", "training/models.py", "training/net_files.py", "training/nets_folder.py",
              "training/snapshots.py", "core/caffe_env.py", "data/datum.py", "core/figures.py",
              "training/input_transform.py", "data/mean_image.py"),
    ),
    Stage(
        name="sobel",
        summary="a hand-set Caffe convolution computing Sobel gradients of test images",
        command="caffepipe sobel --params params.yaml --db data/db --out reports/sobel",
        inputs=("data/db",),
        outputs=(Output("reports/sobel", directory=True),),
        params=("visualize",),
        code=("inspection/sobel.py", "inspection/visualize.py", "inspection/net_diagram.py", "training/models.py", "training/net_files.py",
              "training/nets_folder.py", "training/snapshots.py", "core/caffe_env.py", "data/datum.py",
              "core/figures.py", "training/input_transform.py", "data/mean_image.py"),
    ),
    Stage(
        name="predict",
        summary="label a few exported image files with a trained model, as `caffepipe predict` reads a user's files",
        per_model=True,
        command=(
            "caffepipe predict --params params.yaml --nets data/nets/{model}"
            " --weights data/train/{model}/final.caffemodel --source data/raw/source.json"
            " --exported data/images --out reports/predict/{model}"
        ),
        inputs=("data/nets/{model}", "data/train/{model}/final.caffemodel", "data/raw", "data/images"),
        outputs=(
            Output("reports/predict/{model}/predictions.csv"),
            Output("reports/predict/{model}/predictions.json"),
            Output("reports/predict/{model}/metrics.json", metric=True),
        ),
        params=("predict",),
        code=("inference/predict.py", "inference/images.py", "data/class_names.py", "core/caffe_env.py",
              "core/upstream.py", "training/net_files.py", "training/nets_folder.py", "training/snapshots.py",
              "training/input_transform.py", "data/mean_image.py", "data/datum.py"),
    ),
    Stage(
        name="report",
        summary="render the self-contained HTML report of the whole run",
        command=(
            "caffepipe report --params params.yaml --raw data/raw --bench reports/bench --train reports/train"
            " --eval reports/eval --analysis reports/analysis --analysis-metrics reports/analysis-metrics.json"
            " --time reports/time --visualize reports/visualize --sobel reports/sobel --finetune reports/finetune"
            " --cam reports/cam --weights reports/weights --out reports/index.html"
        ),
        inputs=(
            "data/raw",
            "reports/bench/io.csv",
            "reports/bench/metrics.json",
            "reports/bench/io.png",
            "reports/train/{models}/train.csv",
            "reports/train/{models}/test.csv",
            "reports/train/{models}/metrics.json",
            "reports/train/{models}/reproducibility.json",
            "reports/eval/{models}/metrics.json",
            "reports/analysis",
            "reports/analysis-metrics.json",
            "reports/time/{models}",
            "reports/visualize/{models}",
            "reports/sobel",
            "reports/finetune/runs.csv",
            "reports/finetune/curves.csv",
            "reports/finetune/weight_change.csv",
            "reports/cam/{models}",
            # every file weight-stats writes: DVC declares their folder reports/weights (see _dvc_dependency)
            "reports/weights/{models}/weights.csv",
            "reports/weights/{models}/norms.csv",
            "reports/weights/{models}/histograms.csv",
            "reports/weights/{models}/activations.csv",
            "reports/weights/{models}/weights.png",
            "reports/weights/{models}/histograms.png",
            "reports/weights/{models}/activations.png",
            "reports/weights/{models}/summary.json",
        ),
        outputs=(Output("reports/index.html"),),
        params=("report", MODELS_PARAM),
        code=("report/report.py", "report/summary.py", "report/baseline.py", "report/images.py",
              "report/inspection_sections.py", *REPORT_TEMPLATES,
              "evaluation/error_stats.py", "core/caffe_env.py", "data/class_names.py", "data/idx.py",
              "core/figures.py", "core/upstream.py", "report/zoo_section.py", "report/cam_section.py",
              "report/flop_rate_section.py",
              "data/raw_images.py", "data/cifar.py"),
    ),
)

# `{models}` in a non-per-model stage's input means: that path for every model.
ALL_MODELS = "{models}"


def stage(name: str) -> Stage:
    for candidate in STAGES:
        if candidate.name == name:
            return candidate
    raise KeyError(name)
