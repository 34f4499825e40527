"""Weights a training starts from (fine-tuning: TrainingRequest.initial_weights): their blob shapes, and the
check that they fit the net before Caffe copies them.

Caffe's Net::CopyTrainedLayersFrom copies by layer name and aborts the process with a glog CHECK when a
blob's shape differs, naming neither the file nor the fix; it silently copies nothing when no name matches.
check_transferable turns both into one line. It is pure (shapes in), so tests/unit checks it without Caffe.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from caffepipe.core.errors import CaffepipeError

Shapes = dict[str, list[tuple[int, ...]]]     # {layer: [shape of each blob]}


def check_transferable(weights: Shapes, expected: Shapes, weights_path: Path | str) -> list[str]:
    """The layers the source weights give the net; an error if none, or if a blob's shape does not fit.

    `weights` and `expected` are {layer: [shape of each blob]} of the .caffemodel and of the net. The net's
    renamed classifier is in `expected` only, so it is left out, as Caffe's copy leaves it out.
    """
    shared = [name for name in expected if name in weights]
    if not shared:
        raise CaffepipeError(f"{weights_path} has weights for none of the net's layers ({', '.join(expected)}): "
                             f"nothing to transfer; name the deploy net these weights were trained with")
    for name in shared:
        if weights[name] != expected[name]:
            raise CaffepipeError(f"{weights_path}: layer {name!r} has blob shapes {_shapes(weights[name])}, the net "
                                 f"expects {_shapes(expected[name])}; give the deploy net these weights belong to")
    return shared


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    """[(20, 1, 5, 5), (20,)] -> '20x1x5x5, 20'"""
    return ", ".join("x".join(map(str, shape)) for shape in shapes)


def caffemodel_shapes(caffe_pb2: Any, path: Path) -> Shapes:
    """{layer: [blob shapes]} of a .caffemodel, in its order; an error naming the file if it does not parse."""
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(path.read_bytes())
    except FileNotFoundError:
        raise CaffepipeError(f"{path}: no such weights file; train the source model first, or fix finetune.weights") from None
    except Exception as error:  # protobuf raises DecodeError, or a RuntimeError from upb, on a damaged file
        raise damaged_weights(path, error.__class__.__name__) from None
    shapes = {layer.name: [_blob_shape(blob) for blob in layer.blobs] for layer in net.layer if len(layer.blobs)}
    for layer in net.layer:
        for index, (blob, shape) in enumerate(zip(layer.blobs, shapes.get(layer.name, []))):
            if (len(blob.data) or len(blob.double_data)) != math.prod(shape):
                # a file cut short can still parse, at a field boundary: its last blob then lacks values
                raise damaged_weights(path, f"{layer.name}[{index}] holds too few values for {_shapes([shape])}")
    return shapes


def damaged_weights(path: Path, reason: str) -> CaffepipeError:
    return CaffepipeError(f"{path} is not a complete .caffemodel ({reason}); re-make it with `caffepipe train`, "
                          f"or give a complete Caffe weights file in finetune.weights")


def _blob_shape(blob: Any) -> tuple[int, ...]:
    if blob.HasField("shape"):
        return tuple(blob.shape.dim)
    legacy = (blob.num, blob.channels, blob.height, blob.width)   # old caffemodels: 4-d, leading ones implied
    while len(legacy) > 1 and legacy[0] == 1:
        legacy = legacy[1:]
    return tuple(legacy)
