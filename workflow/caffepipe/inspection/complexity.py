"""What a net costs per image, from its blob shapes: parameters and multiply-adds, layer by layer.

Pure functions over LayerShapes (a layer's type, its bottom and top blob shapes for ONE image, and its
parameter blob shapes), so tests/unit checks them on LeNet against numbers worked out by hand. `caffepipe
time` reads the shapes from the loaded deploy net (layer_shapes_of) and writes complexity.json.

What counts as a multiply-add (one multiplication and one addition, the unit papers quote as "MACs"):
- Convolution: each output value is a dot product over kernel_h x kernel_w x (input channels / group) inputs:
  top elements x (parameter count of the kernel per output channel). The bias add is not counted.
- InnerProduct: outputs x inputs.
- Everything else (pooling, ReLU, BatchNorm, Scale, Eltwise, Concat, Softmax, Dropout): 0. They are
  element-wise and cheap in arithmetic, though not always in time: `caffe time` shows what they cost.
Parameters count every learned blob; BatchNorm's three blobs are running statistics, not learned (lr_mult 0),
and are counted apart as `statistics`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

STATISTICS_LAYER_TYPES = ("BatchNorm",)


@dataclass(frozen=True)
class LayerShapes:
    name: str
    type: str
    bottoms: tuple[tuple[int, ...], ...]     # each bottom blob's shape without the batch axis
    tops: tuple[tuple[int, ...], ...]        # each top blob's shape without the batch axis
    params: tuple[tuple[int, ...], ...]      # each parameter blob's shape


def layer_multiply_adds(layer: LayerShapes) -> int:
    """Multiply-adds of one layer for one image (see the module docstring for what counts)."""
    if layer.type == "Convolution":
        kernel = layer.params[0]                # (outputs, inputs / group, kernel_h, kernel_w)
        per_output = math.prod(kernel[1:])
        return math.prod(layer.tops[0]) * per_output
    if layer.type == "InnerProduct":
        outputs, inputs = layer.params[0][-2:]
        return outputs * inputs
    return 0


def layer_parameters(layer: LayerShapes) -> int:
    return 0 if layer.type in STATISTICS_LAYER_TYPES else sum(math.prod(shape) for shape in layer.params)


def complexity(layers: list[LayerShapes]) -> dict[str, Any]:
    """{"parameters", "statistics", "multiply_adds", "layers": [{"name", "type", "parameters",
    "multiply_adds", "top"}]} for one image."""
    rows = [{"name": layer.name, "type": layer.type, "parameters": layer_parameters(layer),
             "multiply_adds": layer_multiply_adds(layer), "top": [list(shape) for shape in layer.tops]}
            for layer in layers]
    statistics = sum(math.prod(shape) for layer in layers if layer.type in STATISTICS_LAYER_TYPES
                     for shape in layer.params)
    return {"parameters": sum(row["parameters"] for row in rows), "statistics": statistics,
            "multiply_adds": sum(row["multiply_adds"] for row in rows), "layers": rows}


def layer_shapes_of(net: Any) -> list[LayerShapes]:
    """The LayerShapes of every layer of a live caffe.Net (any batch size: the batch axis is dropped)."""
    shapes = []
    for name, layer in zip(net._layer_names, net.layers):
        bottoms = tuple(tuple(net.blobs[blob].data.shape[1:]) for blob in net.bottom_names[name])
        tops = tuple(tuple(net.blobs[blob].data.shape[1:]) for blob in net.top_names[name])
        params = tuple(tuple(blob.data.shape) for blob in layer.blobs)
        shapes.append(LayerShapes(name, layer.type, bottoms, tops, params))
    return shapes
