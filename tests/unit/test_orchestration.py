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
    """No paths hidden in stage code: each output, or the folder the stage writes it into, is an argument. A
    DVCLive folder's files (metrics.json, plots/metrics/) are declared one by one but laid out by DVCLive
    under the folder on the line."""
    for each in STAGES:
        assert each.command.startswith(f"caffepipe {each.cli_name} "), each.name
        arguments = each.command.split()
        for output in each.outputs:
            folder = output.path.rsplit("/", 1)[0]
            live_folder = output.path.split("/live/")[0] + "/live" if "/live/" in output.path else None
            assert output.path in arguments or folder in arguments or live_folder in arguments, (each.name, output.path)


# --- Folder digests: how Snakemake trusts a folder DVC restored (pipeline/digest.py) ----------------------
def test_every_managed_folder_output_is_followed_by_its_digest_and_the_command_writes_it() -> None:
    for each in STAGES:
        outputs = [output.path for output in orchestration.stage_outputs(each)]
        command = orchestration.full_command(each)
        for output in each.outputs:
            digest = f"{output.path}.sha256"
            if output.directory and not output.persist:
                assert outputs[outputs.index(output.path) + 1] == digest, each.name
                assert f" && caffepipe digest {output.path} --out {digest}" in command, each.name
                assert "workflow/caffepipe/pipeline/digest.py" in each.code_paths, each.name
            else:
                assert digest not in outputs, each.name
        if not any(output.directory and not output.persist for output in each.outputs):
            assert command == each.command and "workflow/caffepipe/pipeline/digest.py" not in each.code_paths


def test_persisted_snapshots_get_no_digest() -> None:
    outputs = [output.path for output in orchestration.stage_outputs(stage("train"))]
    assert "data/train/{model}/snapshots.sha256" not in outputs


def test_snakemake_reads_a_folder_as_ancient_and_its_digest_by_checksum() -> None:
    params = default_params()
    inputs = orchestration.snakemake_inputs(stage("train"), params)
    assert ("data/nets/{model}", True) in inputs and ("data/nets/{model}.sha256", False) in inputs
    assert ("data/db", True) in inputs and ("data/db.sha256", False) in inputs
    assert all(not is_folder for path, is_folder in inputs if path.startswith("workflow/"))
    analyze = dict(orchestration.snakemake_inputs(stage("analyze"), params))
    for model in orchestration.models(params):
        assert analyze[f"data/eval/{model}"] is True and analyze[f"data/eval/{model}.sha256"] is False


def test_dvc_depends_on_the_folder_and_its_digest_and_runs_the_same_command() -> None:
    train = orchestration.dvc_stage(stage("train"))["do"]
    assert {"data/nets/${item}", "data/nets/${item}.sha256", "data/db", "data/db.sha256"} <= set(train["deps"])
    netgen = orchestration.dvc_stage(stage("netgen"))["do"]
    assert "data/nets/${item}.sha256" in netgen["outs"]
    assert netgen["cmd"].endswith("&& caffepipe digest data/nets/${item} --out data/nets/${item}.sha256")
    assert "data/eval" in orchestration.dvc_stage(stage("analyze"))["deps"]     # every model's folder and digest
