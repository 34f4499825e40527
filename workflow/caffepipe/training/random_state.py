"""Exact resume for nets that draw random numbers while they train (Dropout, random crops).

A .solverstate holds the weights, the momentum and the iteration, not the state of Caffe's random number
generators. Two kinds of draws happen after set-up, and each is made exact differently:

- Data transforms (transform_param crop_size in TRAIN, mirror). Each Data layer's DataTransformer owns a
  generator seeded once, at set-up, from Caffe's main generator; set-up is the same in every run, and resume
  replays every batch the layer had read through the layer itself (train.restore), so the transformer draws
  the same crops, in the same order, as the uninterrupted run did. Nothing more is needed.
- Dropout draws its masks from the thread's own generator (Caffe::rng_stream) on every forward pass, and
  the number of draws before an iteration depends on everything trained before it. So training re-seeds
  that generator at the start of EVERY iteration, from the solver's random_seed and the iteration alone
  (iteration_seed). A run resumed at iteration k then draws exactly what the uninterrupted run drew from k
  on, whatever iteration it was stopped at (a signal can snapshot any iteration). Re-seeding costs one new
  Mersenne Twister per iteration, about a microsecond against milliseconds of training.

Any other layer that might draw random numbers while training (a Python layer, whose numpy generator no
one re-seeds; a layer type caffepipe does not know) is not claimed to be exact: the training's reproducibility verdict says bit_reproducible: false and
names the layer types (unreproducible_layer_types).
"""
from __future__ import annotations

from typing import Any, Iterable

# Layer types whose training draws no random numbers after set-up (fillers draw once, at set-up, from
# random_seed): Caffe's computational layers and losses.
DETERMINISTIC_LAYER_TYPES = frozenset({
    "Input", "Convolution", "Deconvolution", "Im2col", "Pooling", "SPP", "InnerProduct", "Embed", "ReLU", "PReLU",
    "ELU", "Sigmoid", "TanH", "AbsVal", "Power", "Exp", "Log", "BNLL", "Clip", "Swish", "Threshold", "LRN", "MVN",
    "BatchNorm", "Scale", "Bias", "Eltwise", "Concat", "Slice", "Split", "Flatten", "Reshape", "Crop", "Tile",
    "Reduction", "ArgMax", "Filter", "BatchReindex", "Parameter", "Silence", "RNN", "LSTM", "LSTMUnit",
    "Softmax", "SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "HingeLoss", "SigmoidCrossEntropyLoss",
    "ContrastiveLoss", "InfogainLoss", "MultinomialLogisticLoss",
})
# Layer types that draw while training, from Caffe's main generator in the solver's thread: re-seeded at
# every iteration (Dropout's masks; DummyData's random fillers, refilled on every forward pass).
RESEEDED_LAYER_TYPES = frozenset({"Dropout", "DummyData"})
# Data: its transformer's crops and mirrors come from a generator seeded at set-up; resume replays them.
REPLAYED_LAYER_TYPES = frozenset({"Data"})
# Not listed, so not claimed exact: Python layers (numpy's or Python's generators, never re-seeded here),
# ImageData, WindowData, HDF5Data, MemoryData and any layer type a Caffe fork adds.
EXACT_LAYER_TYPES = DETERMINISTIC_LAYER_TYPES | RESEEDED_LAYER_TYPES | REPLAYED_LAYER_TYPES

_MASK64 = (1 << 64) - 1


def iteration_seed(base_seed: int, iteration: int) -> int:
    """The seed of Caffe's generator at the start of `iteration`: a 32-bit hash of the two (SplitMix64's
    finaliser), so neighbouring iterations get unrelated seeds rather than seed, seed+1, ..."""
    if base_seed < 0 or iteration < 0:
        raise ValueError(f"seed and iteration must be non-negative, not {base_seed} and {iteration}")
    z = (base_seed * 0x9E3779B97F4A7C15 + iteration + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & 0xFFFFFFFF


def unreproducible_layer_types(nets: Iterable[Any]) -> list[str]:
    """The layer types of these NetParameters that caffepipe cannot make exact on resume, sorted."""
    return sorted({layer.type for net in nets for layer in net.layer if layer.type not in EXACT_LAYER_TYPES})


def layers_verdict(nets: Iterable[Any]) -> dict[str, Any] | None:
    """None when every layer resumes exactly, else the reproducibility verdict that says which do not."""
    unknown = unreproducible_layer_types(nets)
    if not unknown:
        return None
    return {"bit_reproducible": False,
            "reproducibility_note": f"layer types {', '.join(unknown)} may draw random numbers that a resume "
                                    "cannot restore (caffepipe/training/random_state.py lists the exact ones)"}
