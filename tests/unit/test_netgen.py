"""netgen's checks that come before Caffe: the test iterations, the models in the schema, refused inputs.
(tests/integration/test_netgen.py checks the nets and the solver it builds with pycaffe.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.pipeline.params import SCHEMA_DIR
from caffepipe.training import models, netgen
from tests.conftest import tiny_params


def test_test_iter_covers_the_whole_test_set() -> None:
    assert netgen.test_iterations(10000, 100) == 100
    assert netgen.test_iterations(200, 50) == 4
    assert netgen.test_iterations(201, 50) == 5
    with pytest.raises(CaffepipeError):
        netgen.test_iterations(0, 50)


def test_every_model_is_in_the_params_schema() -> None:
    """Adding a model: models.MODELS and the netgen.models enum of the schema (this test keeps them equal)."""
    schema = json.loads((SCHEMA_DIR / "netgen.json").read_text())
    assert sorted(schema["properties"]["models"]["items"]["enum"]) == sorted(models.MODELS)


def test_generate_needs_the_db_info(tmp_path: Path) -> None:
    with pytest.raises(CaffepipeError, match="info.json"):
        netgen.generate(tiny_params(), "lenet", tmp_path, tmp_path / "nets")


def test_unknown_models_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CaffepipeError, match="known models"):
        models.architecture("vgg")
    (tmp_path / "info.json").write_text(json.dumps({"test": 10}))
    params = tiny_params(netgen={"models": ["lenet"]})
    with pytest.raises(CaffepipeError, match="not in params"):
        netgen.generate(params, "mlp", tmp_path, tmp_path / "nets")


def test_the_input_shape_and_mean_come_from_the_database(tmp_path: Path) -> None:
    (tmp_path / "info.json").write_text(json.dumps({"test": 10, "channels": 3, "height": 32, "width": 32,
                                                    "dataset": "cifar10"}))
    info = netgen.read_db_info(tmp_path)
    assert netgen.input_shape(info) == (3, 32, 32) and netgen.subtracts_mean(info)
    assert not netgen.subtracts_mean({**info, "dataset": "mnist"})
    (tmp_path / "info.json").write_text(json.dumps({"test": 10}))          # no shape: rebuild, never a guess
    with pytest.raises(CaffepipeError, match="lacks an integer test, channels, height, width; rebuild"):
        netgen.read_db_info(tmp_path)


def test_random_shift_needs_the_padded_database_and_plain_square_images(tmp_path: Path) -> None:
    params = tiny_params(netgen={"models": ["gapnet"], "random_shift": ["gapnet"]})
    mnist = {"train": 640, "test": 200, "channels": 1, "height": 28, "width": 28, "dataset": "mnist"}
    (tmp_path / "info.json").write_text(json.dumps({**mnist, "train_pad": 0}))
    with pytest.raises(CaffepipeError, match="set params build_db.train_pad"):
        netgen.generate(params, "gapnet", tmp_path, tmp_path / "nets")
    (tmp_path / "info.json").write_text(json.dumps({**mnist, "train_pad": 2, "channels": 3, "height": 32, "width": 32,
                                                    "dataset": "cifar10"}))
    with pytest.raises(CaffepipeError, match="without a mean image"):
        netgen.generate(params, "gapnet", tmp_path, tmp_path / "nets")
