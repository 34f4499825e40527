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
- The backward pass of a Convolution or InnerProduct layer (backward_multiply_adds): the weight gradient, as many
  multiply-adds as the forward pass, plus the same again for the gradient of its input, which Caffe computes
  only where something learnable lies below that input. So a net's first learned layer (LeNet's conv1, reading
  the data) costs 1x its forward pass backwards and every later one 2x. Bias gradients, like bias adds, and
  im2col/col2im copies are not counted. Every parameter is taken to learn (lr_mult > 0), as in netgen's nets;
  BatchNorm's statistics never do.
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
    bottom_blobs: tuple[str, ...] = ()       # blob names, for which inputs need a gradient (backward passes)
    top_blobs: tuple[str, ...] = ()


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


def learns(layer: LayerShapes) -> bool:
    return bool(layer.params) and layer.type not in STATISTICS_LAYER_TYPES


def backward_multiply_adds(layers: list[LayerShapes]) -> dict[str, int]:
    """Per layer, multiply-adds of its backward pass for one image: weight gradient, plus input gradient where a
    learned layer lies below the input (the module docstring says why). Layers in net order."""
    after_learning: set[str] = set()          # blobs that a learned layer feeds, directly or not
    counts = {}
    for layer in layers:
        forward = layer_multiply_adds(layer)
        input_gradient = any(blob in after_learning for blob in layer.bottom_blobs)
        counts[layer.name] = forward * (2 if input_gradient else 1)
        if learns(layer) or input_gradient:
            after_learning.update(layer.top_blobs)
    return counts


def layer_parameters(layer: LayerShapes) -> int:
    return 0 if layer.type in STATISTICS_LAYER_TYPES else sum(math.prod(shape) for shape in layer.params)


def complexity(layers: list[LayerShapes]) -> dict[str, Any]:
    """{"parameters", "statistics", "multiply_adds", "backward_multiply_adds", "layers": [{"name", "type",
    "parameters", "multiply_adds", "backward_multiply_adds", "top"}]} for one image."""
    backward = backward_multiply_adds(layers)
    rows = [{"name": layer.name, "type": layer.type, "parameters": layer_parameters(layer),
             "multiply_adds": layer_multiply_adds(layer), "backward_multiply_adds": backward[layer.name],
             "top": [list(shape) for shape in layer.tops]}
            for layer in layers]
    statistics = sum(math.prod(shape) for layer in layers if layer.type in STATISTICS_LAYER_TYPES
                     for shape in layer.params)
    return {"parameters": sum(row["parameters"] for row in rows), "statistics": statistics,
            "multiply_adds": sum(row["multiply_adds"] for row in rows),
            "backward_multiply_adds": sum(row["backward_multiply_adds"] for row in rows), "layers": rows}


def layer_shapes_of(net: Any) -> list[LayerShapes]:
    """The LayerShapes of every layer of a live caffe.Net (any batch size: the batch axis is dropped)."""
    shapes = []
    for name, layer in zip(net._layer_names, net.layers):
        bottoms = tuple(tuple(net.blobs[blob].data.shape[1:]) for blob in net.bottom_names[name])
        tops = tuple(tuple(net.blobs[blob].data.shape[1:]) for blob in net.top_names[name])
        params = tuple(tuple(blob.data.shape) for blob in layer.blobs)
        shapes.append(LayerShapes(name, layer.type, bottoms, tops, params,
                                  tuple(net.bottom_names[name]), tuple(net.top_names[name])))
    return shapes
