"""Net diagrams: every model's deploy net (as netgen writes it) drawn by Caffe's caffe.draw with the real Graphviz,
and `caffepipe visualize` without Graphviz."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from caffepipe.core import caffe_env
from tests.conftest import BIN, default_params, run_caffepipe, tiny_params, write_params
from tests.stage_outputs import tiny_db, tiny_nets

pytestmark = pytest.mark.integration

SVG = "{http://www.w3.org/2000/svg}"
MODELS = default_params()["netgen"]["models"]


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/nets/<model> for every model of params.yaml, made by the real `caffepipe netgen`."""
    work = tmp_path_factory.mktemp("diagrams")
    tiny_db(work / "data/db")
    write_params(work / "params.yaml", tiny_params())
    for model in MODELS:
        run_caffepipe("netgen", "--params", "params.yaml", "--model", model, "--db", "data/db", "--out", f"data/nets/{model}",
                      cwd=work)
    return work / "data/nets"


def deploy_layers(deploy: Path) -> list[str]:
    caffe_env.import_caffe(threads=1)
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    return [layer.name for layer in text_format.Parse(deploy.read_text(), caffe_pb2.NetParameter()).layer]


def svg_texts(svg: bytes) -> list[str]:
    return [element.text for element in ElementTree.fromstring(svg).iter(f"{SVG}text") if element.text]


@pytest.mark.parametrize("model", MODELS)
def test_every_models_diagram_names_every_layer_of_its_deploy_net(nets: Path, tmp_path: Path, model: str) -> None:
    from caffepipe.inspection.net_diagram import draw_net_diagram

    deploy = nets / model / "deploy.prototxt"
    entry = draw_net_diagram(deploy, tmp_path / "net.svg")
    layers = deploy_layers(deploy)
    assert entry["file"] == "net.svg" and entry["layers"] == layers
    assert len(layers) >= 5
    svg = (tmp_path / "net.svg").read_bytes()
    texts = svg_texts(svg)
    for layer in layers:
        assert layer in texts, f"{layer} not drawn"
    assert "(Convolution)" in texts if model == "lenet" else "(InnerProduct)" in texts
    assert b"<!--" not in svg                                    # graphviz's comments are stripped
    root = ElementTree.fromstring(svg)
    width, height = (float(re.sub(r"[a-z]+$", "", root.get(side))) for side in ("width", "height"))
    assert width > 2 * height, "left to right"
    draw_net_diagram(deploy, tmp_path / "again.svg")
    assert (tmp_path / "again.svg").read_bytes() == svg


def test_visualize_writes_the_diagram_and_without_graphviz_a_note(tmp_path: Path) -> None:
    caffe = caffe_env.import_caffe(threads=1)
    tiny_db(tmp_path / "db")
    tiny_nets(caffe, tmp_path / "nets/mlp", "mlp", train_source="db/train_lmdb")
    write_params(tmp_path / "params.yaml", tiny_params())
    args = ["visualize", "--params", "params.yaml", "--model", "mlp", "--nets", "nets/mlp",
            "--weights", "nets/mlp/final.caffemodel", "--db", "db"]

    run_caffepipe(*args, "--out", "with", cwd=tmp_path)
    diagram = json.loads((tmp_path / "with/index.json").read_text())["diagram"]
    assert diagram["file"] == "net.svg" and "ip1" in svg_texts((tmp_path / "with/net.svg").read_bytes())

    # PATH with only the venv's commands: no graphviz `dot`
    run_caffepipe(*args, "--out", "without", cwd=tmp_path, env={"PATH": str(BIN)})
    diagram = json.loads((tmp_path / "without/index.json").read_text())["diagram"]
    assert diagram["file"] is None and "apt-get install graphviz" in diagram["note"]
    assert not (tmp_path / "without/net.svg").exists()
    assert (tmp_path / "without/filters.png").exists()
