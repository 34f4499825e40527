"""random_state: the per-iteration seeds and the verdict on layer types (pure; no Caffe)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from caffepipe.training.random_state import iteration_seed, layers_verdict, unreproducible_layer_types


def net(*types: str) -> SimpleNamespace:
    return SimpleNamespace(layer=[SimpleNamespace(type=kind) for kind in types])


def test_iteration_seeds_are_fixed_32_bit_and_unrelated_between_neighbours() -> None:
    seeds = [iteration_seed(1701, iteration) for iteration in range(10_000)]
    assert seeds == [iteration_seed(1701, iteration) for iteration in range(10_000)]   # a function of its inputs
    assert all(0 <= seed < 2**32 for seed in seeds)
    assert len(set(seeds)) == len(seeds)
    assert len({seed - previous for previous, seed in zip(seeds, seeds[1:])}) > 9_990   # not seed, seed+1, ...
    assert iteration_seed(1702, 5) != iteration_seed(1701, 5)
    # fixed values: a change to the hash would silently change every stochastic net's weights
    assert (iteration_seed(0, 0), iteration_seed(1701, 0)) == (269_157_861, 1_128_121_676)


@pytest.mark.parametrize("seed, iteration", [(-1, 0), (0, -1)])
def test_negative_seeds_and_iterations_are_refused(seed: int, iteration: int) -> None:
    with pytest.raises(ValueError):
        iteration_seed(seed, iteration)


def test_the_vetted_layer_types_resume_exactly() -> None:
    nets = [net("Data", "Convolution", "BatchNorm", "Scale", "ReLU", "Dropout", "Pooling", "Eltwise", "Concat",
                "InnerProduct", "SoftmaxWithLoss"), net("Data", "Accuracy", "SoftmaxWithLoss")]
    assert unreproducible_layer_types(nets) == []
    assert layers_verdict(nets) is None


def test_other_layer_types_are_named_in_the_verdict() -> None:
    nets = [net("Data", "Python", "RReLU"), net("Data", "Python")]
    assert unreproducible_layer_types(nets) == ["Python", "RReLU"]
    verdict = layers_verdict(nets)
    assert verdict["bit_reproducible"] is False
    assert "Python, RReLU" in verdict["reproducibility_note"]
