"""Parameters and multiply-adds per image from blob shapes, checked on Caffe's LeNet by hand."""
from __future__ import annotations

from caffepipe.inspection.complexity import LayerShapes, backward_multiply_adds, complexity, layer_multiply_adds

# Caffe's MNIST LeNet for one 1x28x28 image: shapes as caffe.Net reports them (batch axis dropped).
LENET = [
    LayerShapes("conv1", "Convolution", ((1, 28, 28),), ((20, 24, 24),), ((20, 1, 5, 5), (20,))),
    LayerShapes("pool1", "Pooling", ((20, 24, 24),), ((20, 12, 12),), ()),
    LayerShapes("conv2", "Convolution", ((20, 12, 12),), ((50, 8, 8),), ((50, 20, 5, 5), (50,))),
    LayerShapes("pool2", "Pooling", ((50, 8, 8),), ((50, 4, 4),), ()),
    LayerShapes("ip1", "InnerProduct", ((50, 4, 4),), ((500,),), ((500, 800), (500,))),
    LayerShapes("relu1", "ReLU", ((500,),), ((500,),), ()),
    LayerShapes("ip2", "InnerProduct", ((500,),), ((10,),), ((10, 500), (10,))),
    LayerShapes("prob", "Softmax", ((10,),), ((10,),), ()),
]


def test_lenet_multiply_adds_by_hand() -> None:
    # conv1: 24*24 positions x 20 kernels x 5*5 taps = 288,000
    # conv2: 8*8 x 50 x (20*5*5) = 1,600,000
    # ip1: 800 x 500 = 400,000; ip2: 500 x 10 = 5,000
    per_layer = {layer.name: layer_multiply_adds(layer) for layer in LENET}
    assert per_layer == {"conv1": 288_000, "pool1": 0, "conv2": 1_600_000, "pool2": 0, "ip1": 400_000,
                         "relu1": 0, "ip2": 5_000, "prob": 0}
    assert complexity(LENET)["multiply_adds"] == 2_293_000


def test_lenet_parameters_by_hand() -> None:
    # 20*25+20 + 50*500+50 + 800*500+500 + 500*10+10 = 520 + 25,050 + 400,500 + 5,010
    assert complexity(LENET)["parameters"] == 431_080


def test_batch_norm_statistics_are_not_parameters_and_groups_divide_the_taps() -> None:
    layers = [
        LayerShapes("conv", "Convolution", ((4, 10, 10),), ((8, 10, 10),), ((8, 2, 3, 3),)),   # group 2: 2 inputs each
        LayerShapes("conv_bn", "BatchNorm", ((8, 10, 10),), ((8, 10, 10),), ((8,), (8,), (1,))),
        LayerShapes("conv_scale", "Scale", ((8, 10, 10),), ((8, 10, 10),), ((8,), (8,))),
    ]
    result = complexity(layers)
    assert result["multiply_adds"] == 8 * 10 * 10 * 2 * 3 * 3
    assert result["parameters"] == 8 * 2 * 9 + 16
    assert result["statistics"] == 17


def test_backward_counts_input_gradients_only_below_a_learned_layer() -> None:
    # conv1 reads the data: its backward is the weight gradient only (1x); conv2 and the ip layers also pass
    # the gradient down to their input (2x). Blob names as Caffe's LeNet deploy net has them.
    blobs = {"conv1": ("data", "conv1"), "pool1": ("conv1", "pool1"), "conv2": ("pool1", "conv2"),
             "pool2": ("conv2", "pool2"), "ip1": ("pool2", "ip1"), "relu1": ("ip1", "ip1"), "ip2": ("ip1", "ip2"),
             "prob": ("ip2", "prob")}
    named = [LayerShapes(layer.name, layer.type, layer.bottoms, layer.tops, layer.params,
                         (blobs[layer.name][0],), (blobs[layer.name][1],)) for layer in LENET]
    assert backward_multiply_adds(named) == {"conv1": 288_000, "pool1": 0, "conv2": 3_200_000, "pool2": 0,
                                             "ip1": 800_000, "relu1": 0, "ip2": 10_000, "prob": 0}
    assert complexity(named)["backward_multiply_adds"] == 4_298_000


def test_batch_norm_statistics_alone_do_not_make_a_gradient_flow() -> None:
    # data -> bn (statistics only, nothing learns) -> conv: conv is still the first learned layer.
    layers = [
        LayerShapes("bn", "BatchNorm", ((1, 4, 4),), ((1, 4, 4),), ((1,), (1,), (1,)), ("data",), ("bn",)),
        LayerShapes("conv", "Convolution", ((1, 4, 4),), ((2, 4, 4),), ((2, 1, 3, 3),), ("bn",), ("conv",)),
        LayerShapes("scale", "Scale", ((2, 4, 4),), ((2, 4, 4),), ((2,),), ("conv",), ("conv",)),
        LayerShapes("ip", "InnerProduct", ((2, 4, 4),), ((3,),), ((3, 32),), ("conv",), ("ip",)),
    ]
    assert backward_multiply_adds(layers) == {"bn": 0, "conv": 2 * 16 * 9, "scale": 0, "ip": 2 * 3 * 32}
