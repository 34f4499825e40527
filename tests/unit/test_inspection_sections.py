"""The report's inspection sections on stand-ins: the diagrams, the note where Graphviz was missing, the weight
statistics' sentences, figures and table, and the stage named for every missing input."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.report import inspection_sections, report
from tests.stage_outputs import report_argv, report_inputs

MODELS = ["lenet", "mlp"]


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    return report_inputs(tmp_path)


def report_paths(inputs: dict[str, Path]) -> report.ReportInputs:
    """What `caffepipe report` hands each section, for the stand-ins (no baseline)."""
    return report.ReportInputs(
        params={"netgen": {"models": MODELS}}, params_path=inputs["params"], raw=inputs["raw"], bench=inputs["bench"],
        train=inputs["train"], eval=inputs["eval"], analysis=inputs["analysis"],
        analysis_metrics=inputs["analysis_metrics"], time=inputs["time"], visualize=inputs["visualize"],
        sobel=inputs["sobel"], finetune=inputs["finetune"], cam=inputs["cam"], weights=inputs["weights"],
        out=inputs["out"],
        baseline=report.resolve_baseline(False, inputs["out"].parent))


def render_section(name: str, data: dict) -> str:
    return report.template_environment().get_template(f"sections/{name}.html.j2").render(s=data)


def test_each_model_gets_its_diagram_as_an_svg_data_uri_linking_the_file(inputs: dict[str, Path]) -> None:
    section = inspection_sections.diagrams_section(report_paths(inputs))
    assert [entry["model"] for entry in section["models"]] == MODELS
    assert section["toc"] == [("diagram-lenet", "lenet"), ("diagram-mlp", "mlp")]
    for entry in section["models"]:
        prefix, payload = entry["figure"]["src"].split(",", 1)
        assert prefix == "data:image/svg+xml;base64"
        assert base64.b64decode(payload) == (inputs["visualize"] / entry["model"] / "net.svg").read_bytes()
        assert entry["figure"]["data"][0].href == f"../visualize/{entry['model']}/net.svg"
    html = render_section("diagrams", section)
    assert html.count('<div class="diagram">') == 2 and 'id="diagram-mlp"' in html


def test_without_graphviz_the_section_says_what_to_install(inputs: dict[str, Path]) -> None:
    index_path = inputs["visualize"] / "mlp" / "index.json"
    index = json.loads(index_path.read_text())
    index["diagram"] = {"file": None, "note": "No net diagram: install Debian's graphviz package", "layers": []}
    index_path.write_text(json.dumps(index))
    html = render_section("diagrams", inspection_sections.diagrams_section(report_paths(inputs)))
    assert '<p class="warning">No net diagram: install Debian&#39;s graphviz package</p>' in html
    assert html.count("data:image/svg+xml;base64,") == 1          # lenet's is still there


def test_a_visualize_output_without_a_diagram_entry_is_an_error(inputs: dict[str, Path]) -> None:
    index_path = inputs["visualize"] / "lenet" / "index.json"
    index = json.loads(index_path.read_text())
    del index["diagram"]
    index_path.write_text(json.dumps(index))
    with pytest.raises(CaffepipeError, match=rf"{index_path} has no net diagram entry; re-run `caffepipe visualize`"):
        inspection_sections.diagrams_section(report_paths(inputs))


def test_the_weights_section_has_the_sentences_figures_and_last_snapshot(inputs: dict[str, Path]) -> None:
    section = inspection_sections.weights_section(report_paths(inputs))
    lenet = section["models"][0]
    assert lenet["observations"] == ["lenet's ip1 weights still move at the end.",
                                     "relu1 (on ip1) has 12% dead units at the end."]
    assert [figure["caption"] for figure in lenet["figures"]] == [
        "lenet: weights over training", "lenet: histograms over training", "lenet: activations over training"]
    assert all(figure["src"].startswith("data:image/png;base64,") for figure in lenet["figures"])
    assert [link.href for link in lenet["figures"][0]["data"]] == ["../weights/lenet/weights.csv",
                                                                   "../weights/lenet/norms.csv"]
    assert lenet["table"]["caption"].startswith("Each layer at the last snapshot (iteration 40")
    rows = {(row[0], row[1]): row[2:] for row in lenet["table"]["rows"]}
    assert rows[("ip1", "weights")] == ["2", "0.2", "3330.0%", "–"]
    assert rows[("relu1", "output (ReLU)")] == ["–", "0.8", "–", "12.5%"]
    html = render_section("weights", section)
    assert html.count('<div class="headline">') == 4 and 'id="weights-lenet"' in html and "12.5%" in html


@pytest.mark.parametrize("missing,stage", [
    ("weights/mlp/summary.json", "weight-stats"),
    ("weights/lenet/activations.csv", "weight-stats"),
    ("weights/lenet/histograms.png", "weight-stats"),
    ("visualize/mlp/net.svg", "visualize"),
])
def test_a_missing_input_names_the_stage_that_makes_it(inputs: dict[str, Path], missing: str, stage: str) -> None:
    path = inputs["params"].parent / missing
    path.unlink()
    with pytest.raises(CaffepipeError, match=rf"{path} not found; it is made by `caffepipe {stage}`"):
        report.main(report_argv(inputs))
    assert not inputs["out"].exists()
