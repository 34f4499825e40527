"""Outputs that record wall-clock time differ on every run, so DVC sees them changed whenever their stage ran;
only cheap stages may read them, or a re-run that changed nothing else would re-run a costly stage.

Every other output is byte-identical for identical inputs (tests/integration/test_reproducible_outputs.py for
the databases; measured for the whole pipeline, see the commit that added this file).
"""
from __future__ import annotations

from caffepipe.pipeline.stages import ALL_MODELS, STAGES

# Outputs holding times by design, and why.
TIME_RECORDING = {
    "reports/bench/io.csv": "bench-io: measured read speeds",
    "reports/bench/metrics.json": "bench-io: measured read speeds",
    "reports/bench/io.png": "bench-io: measured read speeds",
    "data/train/{model}/caffe.log": "glog's timestamp on every line",
    "reports/train/{model}/train.csv": "parse-log: seconds since the start of training",
    "reports/train/{model}/test.csv": "parse-log: seconds since the start of training",
    "reports/train/{model}/metrics.json": "parse-log: seconds since the start of training",
    "reports/time/{model}": "caffe time: layer timings",
    "reports/finetune/runs.csv": "finetune: each run's training seconds, from its log",
    "reports/index.html": "the report shows all of the above",
}
# seconds, even on the full data. finetune reads data/train whole (its source is any model's weights), logs
# included; with the source weights unchanged every run's fingerprint matches and it trains nothing, only
# re-writes its outputs (tests/integration/test_finetune.py: a second sweep trains nothing).
CHEAP_READERS = {"parse_log", "report", "finetune"}


def inputs_of(stage) -> set[str]:
    """Everything a stage reads, under either orchestrator, with `{models}` written as `{model}`."""
    return {path.replace(ALL_MODELS, "{model}") for path in (*stage.inputs, *stage.persist_inputs)}


def test_the_time_recording_outputs_are_outputs_of_the_stage_list() -> None:
    outputs = {output.path for stage in STAGES for output in stage.outputs}
    assert set(TIME_RECORDING) <= outputs, "rename the entry here after renaming the output"


def test_no_costly_stage_reads_an_output_that_records_time() -> None:
    readers = {stage.name: sorted(inputs_of(stage) & set(TIME_RECORDING)) for stage in STAGES}
    costly = {name: paths for name, paths in readers.items() if paths and name not in CHEAP_READERS}
    assert costly == {}, f"these stages would re-run whenever the timed stages run: {costly}"
