"""Per-model solver settings: train.overrides on top of train, closed in the schema."""
from __future__ import annotations

import copy

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.pipeline.params import validate_params
from caffepipe.training.solver_settings import solver_settings
from tests.conftest import default_params


def test_a_model_without_overrides_gets_train_as_it_is() -> None:
    train = default_params()["train"]
    settings = solver_settings(train, "lenet")
    assert settings == {key: value for key, value in train.items() if key != "overrides"}


def test_a_model_with_overrides_gets_them_and_nothing_else_changes() -> None:
    train = default_params()["train"]
    settings = solver_settings(train, "gapnet")
    for key, value in train["overrides"]["gapnet"].items():
        assert settings[key] == value
    unchanged = set(train) - set(train["overrides"]["gapnet"]) - {"overrides"}
    assert {key: settings[key] for key in unchanged} == {key: train[key] for key in unchanged}


@pytest.mark.parametrize("overrides, message", [
    ({"vgg": {"base_lr": 0.1}}, "overrides"),                     # not a model
    ({"gapnet": {"snapshot_iters": [5]}}, "snapshot_iters"),      # not a solver key it may change
    ({"gapnet": {"base_lr": "fast"}}, "base_lr"),                  # the key's own type
    ({"gapnet": {}}, "gapnet"),                                   # an empty entry says nothing
])
def test_the_overrides_schema_is_closed(overrides, message) -> None:
    params = copy.deepcopy(default_params())
    params["train"]["overrides"] = overrides
    with pytest.raises(CaffepipeError, match=message):
        validate_params(params)


def test_the_cam_section_is_closed() -> None:
    params = copy.deepcopy(default_params())
    params["cam"]["errors"] = 3
    with pytest.raises(CaffepipeError, match="cam.errors"):
        validate_params(params)
