"""`caffepipe finetune`'s choices that need no Caffe: the source, the schedule, which runs, their solver."""
from __future__ import annotations

from pathlib import Path

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.training.finetune import Run, Source, check_schedule, solver_params, source_of, sweep_runs
from tests.conftest import default_params

FINETUNE = default_params()["finetune"]


def test_the_source_is_a_pipeline_model_or_the_users_weights_with_their_deploy_net() -> None:
    assert source_of(FINETUNE, ["lenet", "mlp"], Path("n"), Path("t")) == Source(
        Path("n/lenet/deploy.prototxt"), Path("t/lenet/final.caffemodel"))
    own = {**FINETUNE, "weights": "my.caffemodel", "deploy": "my.prototxt"}
    assert source_of(own, ["lenet"], Path("n"), Path("t")) == Source(Path("my.prototxt"), Path("my.caffemodel"))


def test_weights_without_deploy_or_an_untrained_source_model_are_errors() -> None:
    with pytest.raises(CaffepipeError, match="finetune.weights and finetune.deploy go together"):
        source_of({**FINETUNE, "weights": "my.caffemodel"}, ["lenet"], Path("n"), Path("t"))
    with pytest.raises(CaffepipeError, match="finetune.source_model 'lenet' is not trained by this pipeline"):
        source_of(FINETUNE, ["mlp"], Path("n"), Path("t"))


def test_every_run_ends_with_a_test_pass() -> None:
    check_schedule({**FINETUNE, "max_iter": 500, "test_interval": 100})
    with pytest.raises(CaffepipeError, match="must be a multiple of finetune.test_interval"):
        check_schedule({**FINETUNE, "max_iter": 500, "test_interval": 300})


def test_only_the_smallest_size_tests_along_the_way() -> None:
    assert solver_params(FINETUNE, curve=True)["test_interval"] == FINETUNE["test_interval"]
    assert solver_params(FINETUNE, curve=False)["test_interval"] == FINETUNE["max_iter"]


def test_the_sweep_runs_every_mode_at_each_size_smallest_first() -> None:
    runs = sweep_runs({**FINETUNE, "sizes": [1000, 100], "modes": ["full", "scratch"]})
    assert runs == [Run("full", 100), Run("scratch", 100), Run("full", 1000), Run("scratch", 1000)]
    assert runs[0].name == "full-100"
