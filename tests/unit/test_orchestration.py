from caffepipe.pipeline import orchestration
from caffepipe.pipeline.stages import STAGES, stage
from tests.conftest import default_params


def test_all_models_paths_expand_once_per_model() -> None:
    params = default_params()
    params["netgen"]["models"] = ["lenet", "mlp", "other"]
    assert orchestration.expand_all_models(("a/{models}/b", "c"), params) == ["a/lenet/b", "a/mlp/b", "a/other/b", "c"]


def test_snakemake_never_manages_persisted_snapshots() -> None:
    outputs = [path for path, _ in orchestration.snakemake_outputs(stage("train"))]
    assert "data/train/{model}/snapshots" not in outputs
    assert "data/train/{model}/snapshots.json" in outputs


def test_dvc_persists_snapshots_and_keeps_metrics_in_git() -> None:
    train = orchestration.dvc_stage(stage("train"))
    assert train["foreach"] == "${netgen.models}"
    assert {"data/train/${item}/snapshots": {"persist": True}} in train["do"]["outs"]
    assert "--threads ${train.threads}" in train["do"]["cmd"]
    parse_log = orchestration.dvc_stage(stage("parse_log"))["do"]
    assert parse_log["metrics"] == [{"reports/train/${item}/metrics.json": {"cache": False}}]


def test_every_stage_depends_on_its_own_code_and_its_params_schemas() -> None:
    for each in STAGES:
        assert f"workflow/caffepipe/{each.code[0]}" in each.code_paths
        for section in {key.split(".")[0] for key in each.params}:
            assert f"workflow/schemas/params/{section}.json" in each.code_paths


def test_every_stage_command_is_a_caffepipe_command_with_its_outputs_on_the_line() -> None:
    """No paths hidden in stage code: each output, or the folder the stage writes it into, is an argument."""
    for each in STAGES:
        assert each.command.startswith(f"caffepipe {each.cli_name} "), each.name
        arguments = each.command.split()
        for output in each.outputs:
            folder = output.path.rsplit("/", 1)[0]
            assert output.path in arguments or folder in arguments, (each.name, output.path)
