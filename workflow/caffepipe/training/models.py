"""The network architectures: the one place to add a model.

Each model is a function that stacks its layers on a `caffe.NetSpec` on top of the input blob and returns
the logits (the blob the heads read). netgen.py wraps every architecture three times, with nothing but the
input layer, the head and the BatchNorm layers' `use_global_stats` changed (see BatchNorm below):

    train net:  Data (TRAIN db)  -> body -> SoftmaxWithLoss "loss"
    test net:   Data (TEST db)   -> body -> Accuracy "accuracy" + SoftmaxWithLoss "loss"
    deploy net: Input "data"     -> body -> Softmax "prob"

To add a model: write its body function here, register it in MODELS, and add its name to the `netgen.models`
enum in workflow/schemas/params/netgen.json and to `train.overrides` in workflow/schemas/params/train.json
(tests/unit/test_netgen.py fails until they agree).

The models:
- lenet, mlp: Caffe's MNIST LeNet and LeNet-300-100, exactly as before this zoo (their results are committed).
- lenet_bn: LeNet with BatchNorm + Scale after each convolution, and Dropout before its classifier.
- gapnet: all-convolutional with BatchNorm, ending in global average pooling and ONE InnerProduct: the class
  activation map (CAM) architecture (evaluation/cam.py). Its last convolution keeps a 7x7 map, so a CAM
  locates at 4-pixel resolution. It is in the default pipeline, so it is kept to about 2x LeNet's multiply-adds.
- resnet: a small residual net: Eltwise-sum blocks with BatchNorm, a 1x1 projection shortcut where the shape
  changes, global average pooling (so it has CAMs too).
- inception: two Inception-style blocks (parallel 1x1 / 3x3 / 5x5 / pool-projection branches joined by
  Concat), then global average pooling.
Widths are chosen for 2 CPU cores: bench/results/zoo.md has each model's multiply-adds and iterations per
second.

BatchNorm. Caffe's BatchNorm layer normalises by the batch's statistics when `use_global_stats` is false (the
train net) and by its running averages when true (test and deploy nets); netgen builds the train net with
train=True. Its three blobs (mean, variance, the averages' scale factor) are running statistics, not weights:
lr_mult 0 keeps the solver from ever changing them. The learned scale and shift are the Scale layer after it
(bias_term: true), so the convolution before it has no bias. Both run in place on the convolution's top.

Input pixels are scaled by INPUT_SCALE (1/256, Caffe's MNIST examples) in the Data layers; the deploy net
takes pixels already multiplied by it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from caffepipe.core.errors import CaffepipeError

# Caffe's MNIST examples scale uint8 pixels by 1/256 (transform_param { scale: 0.00390625 }).
INPUT_SCALE = 0.00390625
INPUT_SHAPE = (1, 28, 28)  # channels, height, width
NUM_CLASSES = 10

# As in Caffe's examples: biases learn twice as fast as weights.
LEARNING_RATE_MULTIPLIERS = [{"lr_mult": 1}, {"lr_mult": 2}]
XAVIER = {"type": "xavier"}
ZERO = {"type": "constant"}
# He et al.'s filler for ReLU nets (Caffe calls it msra); keeps the activations' scale through deep stacks.
MSRA = {"type": "msra"}
# BatchNorm's blobs are statistics Caffe updates itself: the solver must not touch them.
BATCH_NORM_STATISTICS = [{"lr_mult": 0, "decay_mult": 0}] * 3
# BatchNorm's running averages forget at this rate per iteration: a window of about 100 iterations. Caffe's
# default, 0.999 (about 1,000), still holds the statistics of much earlier weights at the end of a training of
# a few thousand iterations: measured, gapnet's test accuracy at iteration 500 was 0.57 with it (train loss 0.14).
MOVING_AVERAGE_FRACTION = 0.99
# The Scale layer after BatchNorm: its scale and shift learn, without weight decay (it would pull the scale
# towards zero, against the normalisation).
SCALE_MULTIPLIERS = [{"lr_mult": 1, "decay_mult": 0}, {"lr_mult": 1, "decay_mult": 0}]


def _inner_product(layers: Any, bottom: Any, outputs: int) -> Any:
    return layers.InnerProduct(bottom, num_output=outputs, param=LEARNING_RATE_MULTIPLIERS,
                               weight_filler=XAVIER, bias_filler=ZERO)


def lenet(caffe: Any, net: Any, data: Any, train: bool = False) -> Any:
    """Caffe's MNIST LeNet (examples/mnist/lenet_train_test.prototxt)."""
    L, P = caffe.layers, caffe.params
    net.conv1 = L.Convolution(data, num_output=20, kernel_size=5, stride=1, param=LEARNING_RATE_MULTIPLIERS,
                              weight_filler=XAVIER, bias_filler=ZERO)
    net.pool1 = L.Pooling(net.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    net.conv2 = L.Convolution(net.pool1, num_output=50, kernel_size=5, stride=1, param=LEARNING_RATE_MULTIPLIERS,
                              weight_filler=XAVIER, bias_filler=ZERO)
    net.pool2 = L.Pooling(net.conv2, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    net.ip1 = _inner_product(L, net.pool2, 500)
    net.relu1 = L.ReLU(net.ip1, in_place=True)
    net.ip2 = _inner_product(L, net.relu1, NUM_CLASSES)
    return net.ip2


def mlp(caffe: Any, net: Any, data: Any, train: bool = False) -> Any:
    """LeNet-300-100 (LeCun et al. 1998): two hidden fully connected layers with ReLU."""
    L = caffe.layers
    net.ip1 = _inner_product(L, data, 300)
    net.relu1 = L.ReLU(net.ip1, in_place=True)
    net.ip2 = _inner_product(L, net.relu1, 100)
    net.relu2 = L.ReLU(net.ip2, in_place=True)
    net.ip3 = _inner_product(L, net.relu2, NUM_CLASSES)
    return net.ip3


# ---- building blocks with BatchNorm ----------------------------------------------------------------------------

def _batch_norm(caffe: Any, net: Any, name: str, top: Any, train: bool) -> Any:
    """BatchNorm + Scale in place on `top` (named <name>_bn, <name>_scale); returns `top`."""
    L = caffe.layers
    setattr(net, f"{name}_bn", L.BatchNorm(top, in_place=True, param=BATCH_NORM_STATISTICS,
                                           batch_norm_param={"use_global_stats": not train,
                                                             "moving_average_fraction": MOVING_AVERAGE_FRACTION}))
    setattr(net, f"{name}_scale", L.Scale(top, in_place=True, bias_term=True, param=SCALE_MULTIPLIERS))
    return top


def _conv_bn(caffe: Any, net: Any, name: str, bottom: Any, outputs: int, kernel: int, train: bool, *,
             stride: int = 1, relu: bool = True, same: bool = True) -> Any:
    """Convolution (no bias; 'same' padding unless same=False) -> BatchNorm -> Scale [-> ReLU], all after the
    first in place."""
    L = caffe.layers
    conv = L.Convolution(bottom, num_output=outputs, kernel_size=kernel, pad=kernel // 2 if same else 0, stride=stride,
                         bias_term=False, param=[{"lr_mult": 1}], weight_filler=MSRA)
    setattr(net, name, conv)
    _batch_norm(caffe, net, name, conv, train)
    if relu:
        setattr(net, f"{name}_relu", L.ReLU(conv, in_place=True))
    return conv


def _max_pool(caffe: Any, bottom: Any, kernel: int = 2, stride: int = 2, pad: int = 0) -> Any:
    P = caffe.params
    return caffe.layers.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=kernel, stride=stride, pad=pad)


def _global_average_pool(caffe: Any, bottom: Any) -> Any:
    return caffe.layers.Pooling(bottom, pool=caffe.params.Pooling.AVE, global_pooling=True)


# ---- the zoo -------------------------------------------------------------------------------------------------

def lenet_bn(caffe: Any, net: Any, data: Any, train: bool = False) -> Any:
    """LeNet with BatchNorm + Scale after each convolution, and Dropout on its 500 hidden units."""
    L = caffe.layers
    net.conv1 = _conv_bn(caffe, net, "conv1", data, 20, 5, train, relu=False, same=False)     # LeNet's 24x24
    net.pool1 = _max_pool(caffe, net.conv1)
    net.conv2 = _conv_bn(caffe, net, "conv2", net.pool1, 50, 5, train, relu=False, same=False)
    net.pool2 = _max_pool(caffe, net.conv2)
    net.ip1 = _inner_product(L, net.pool2, 500)
    net.relu1 = L.ReLU(net.ip1, in_place=True)
    net.drop1 = L.Dropout(net.relu1, in_place=True, dropout_ratio=0.3)
    net.ip2 = _inner_product(L, net.drop1, NUM_CLASSES)
    return net.ip2


def gapnet(caffe: Any, net: Any, data: Any, train: bool = False) -> Any:
    """All-convolutional with BatchNorm: 28x28 -> 14x14 -> 7x7 (two convolutions there), then global average
    pooling and one InnerProduct.

    The CAM architecture: each class's logit is a weighted sum of conv4's channel means, so the same weights
    applied to conv4's 7x7 maps show where the class's evidence is (evaluation/cam.py). Its last layer sees 28x28
    pixels, the whole image. Measured (single runs, 1 thread, base_lr 0.05 poly): with conv3 (96 channels) as the
    last layer, 2.6 M multiply-adds per image, 0.9879 at 4,000 iterations (0.9743 at base_lr 0.01); with conv4
    (4.8 M) 0.9921 at 4,000 and 0.9924 at 5,000; with conv4 and random shifts (netgen.random_shift) 0.9924 at 4,000
    and 0.9937 at 5,000, the default (train.overrides.gapnet) for a margin over the 0.992 target.
    """
    L = caffe.layers
    net.conv1 = _conv_bn(caffe, net, "conv1", data, 16, 5, train)
    net.pool1 = _max_pool(caffe, net.conv1)
    net.conv2 = _conv_bn(caffe, net, "conv2", net.pool1, 32, 3, train)
    net.pool2 = _max_pool(caffe, net.conv2)
    net.conv3 = _conv_bn(caffe, net, "conv3", net.pool2, 64, 3, train)
    net.conv4 = _conv_bn(caffe, net, "conv4", net.conv3, 96, 3, train)
    net.gap = _global_average_pool(caffe, net.conv4)
    net.ip = _inner_product(L, net.gap, NUM_CLASSES)
    return net.ip


def _residual_block(caffe: Any, net: Any, name: str, bottom: Any, inputs: int, outputs: int, stride: int,
                    train: bool) -> Any:
    """y = ReLU(F(x) + shortcut(x)): F is two 3x3 conv-BN; the shortcut is x itself, or a 1x1 conv-BN projection
    where the stride or the width changes (He et al. 2016, option B)."""
    L = caffe.layers
    branch = _conv_bn(caffe, net, f"{name}_a", bottom, outputs, 3, train, stride=stride)
    branch = _conv_bn(caffe, net, f"{name}_b", branch, outputs, 3, train, relu=False)
    shortcut = bottom
    if stride != 1 or inputs != outputs:
        shortcut = _conv_bn(caffe, net, f"{name}_proj", bottom, outputs, 1, train, stride=stride, relu=False)
    total = L.Eltwise(branch, shortcut, operation=caffe.params.Eltwise.SUM)
    setattr(net, f"{name}_sum", total)
    setattr(net, f"{name}_relu", L.ReLU(total, in_place=True))
    return total


def resnet(caffe: Any, net: Any, data: Any, train: bool = False) -> Any:
    """A small residual net: a 3x3 stem, two residual blocks (32 channels at 14x14, then 64 at 7x7 with a
    projection shortcut), global average pooling, Dropout and one InnerProduct."""
    L = caffe.layers
    net.conv1 = _conv_bn(caffe, net, "conv1", data, 32, 3, train)
    net.pool1 = _max_pool(caffe, net.conv1)
    top = _residual_block(caffe, net, "res2", net.pool1, 32, 32, 1, train)
    top = _residual_block(caffe, net, "res3", top, 32, 64, 2, train)
    net.gap = _global_average_pool(caffe, top)
    net.drop = L.Dropout(net.gap, in_place=True, dropout_ratio=0.2)
    net.ip = _inner_product(L, net.drop, NUM_CLASSES)
    return net.ip


def _inception_block(caffe: Any, net: Any, name: str, bottom: Any, widths: dict[str, int], train: bool) -> Any:
    """Four parallel branches over the same input, joined along the channels (Szegedy et al. 2015):
    1x1; 1x1 reduce -> 3x3; 1x1 reduce -> 5x5; 3x3 max pool -> 1x1 projection."""
    L = caffe.layers
    one = _conv_bn(caffe, net, f"{name}_1x1", bottom, widths["1x1"], 1, train)
    three = _conv_bn(caffe, net, f"{name}_3x3_reduce", bottom, widths["3x3_reduce"], 1, train)
    three = _conv_bn(caffe, net, f"{name}_3x3", three, widths["3x3"], 3, train)
    five = _conv_bn(caffe, net, f"{name}_5x5_reduce", bottom, widths["5x5_reduce"], 1, train)
    five = _conv_bn(caffe, net, f"{name}_5x5", five, widths["5x5"], 5, train)
    pooled = _max_pool(caffe, bottom, kernel=3, stride=1, pad=1)
    setattr(net, f"{name}_pool", pooled)
    projection = _conv_bn(caffe, net, f"{name}_pool_proj", pooled, widths["pool_proj"], 1, train)
    joined = L.Concat(one, three, five, projection)
    setattr(net, f"{name}_concat", joined)
    return joined


def inception(caffe: Any, net: Any, data: Any, train: bool = False) -> Any:
    """A 3x3 stem, an Inception block at 14x14 (64 channels out), another at 7x7 (112 out), global average
    pooling, Dropout and one InnerProduct."""
    L = caffe.layers
    net.conv1 = _conv_bn(caffe, net, "conv1", data, 32, 3, train)
    net.pool1 = _max_pool(caffe, net.conv1)
    top = _inception_block(caffe, net, "inc2", net.pool1,
                           {"1x1": 16, "3x3_reduce": 16, "3x3": 24, "5x5_reduce": 8, "5x5": 8, "pool_proj": 16}, train)
    net.pool2 = _max_pool(caffe, top)
    top = _inception_block(caffe, net, "inc3", net.pool2,
                           {"1x1": 32, "3x3_reduce": 24, "3x3": 48, "5x5_reduce": 8, "5x5": 16, "pool_proj": 16}, train)
    net.gap = _global_average_pool(caffe, top)
    net.drop = L.Dropout(net.gap, in_place=True, dropout_ratio=0.2)
    net.ip = _inner_product(L, net.drop, NUM_CLASSES)
    return net.ip


@dataclass(frozen=True)
class Architecture:
    name: str                                   # the key in params.yaml `netgen.models`
    net_name: str                               # NetParameter.name written into the prototxt
    # (caffe, NetSpec, input top, train) -> logits top; train: the train net (BatchNorm uses batch statistics)
    body: Callable[..., Any]
    description: str


MODELS: dict[str, Architecture] = {
    "lenet": Architecture("lenet", "LeNet", lenet, "conv20-pool-conv50-pool-ip500-relu-ip10"),
    "mlp": Architecture("mlp", "LeNet-300-100", mlp, "ip300-relu-ip100-relu-ip10"),
    "lenet_bn": Architecture("lenet_bn", "LeNet-BN", lenet_bn,
                             "conv20-bn-pool-conv50-bn-pool-ip500-relu-dropout-ip10"),
    "gapnet": Architecture("gapnet", "GAPNet", gapnet,
                           "conv16(5x5)-pool-conv32-pool-conv64-conv96-gap-ip10, BatchNorm after every conv"),
    "resnet": Architecture("resnet", "ResNet-small", resnet,
                           "conv32-pool-res32-res64(stride 2, projection)-gap-dropout-ip10"),
    "inception": Architecture("inception", "Inception-small", inception,
                              "conv32-pool-inception(64)-pool-inception(112)-gap-dropout-ip10"),
}


def architecture(name: str) -> Architecture:
    try:
        return MODELS[name]
    except KeyError:
        raise CaffepipeError(f"unknown model {name!r}; known models: {', '.join(MODELS)} (see caffepipe/training/models.py)") from None


# --- CIFAR-10 ------------------------------------------------------------------------------------------------------

def cifar10_quick(caffe: Any, net: Any, data: Any, train: bool = False) -> Any:
    """Caffe's examples/cifar10/cifar10_quick_train_test.prototxt: three 5x5 convolutions of 32, 32 and 64 (pad 2),
    max then two average poolings (3x3, stride 2), ip64, ip10. Any input size works (28x28 MNIST too).

    Caffe's example feeds mean-subtracted pixels unscaled (-128..127); caffepipe's Data layers also scale them
    by INPUT_SCALE, so conv1's initial weights are 1/INPUT_SCALE times Caffe's 0.0001: the same initial
    activations in every layer above it as in Caffe's example."""
    L, P = caffe.layers, caffe.params

    def convolution(bottom: Any, outputs: int, std: float) -> Any:
        return L.Convolution(bottom, num_output=outputs, pad=2, kernel_size=5, stride=1, param=LEARNING_RATE_MULTIPLIERS,
                             weight_filler={"type": "gaussian", "std": std}, bias_filler=ZERO)

    net.conv1 = convolution(data, 32, 0.0001 / INPUT_SCALE)
    net.pool1 = L.Pooling(net.conv1, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    net.relu1 = L.ReLU(net.pool1, in_place=True)
    net.conv2 = convolution(net.relu1, 32, 0.01)
    net.relu2 = L.ReLU(net.conv2, in_place=True)
    net.pool2 = L.Pooling(net.relu2, pool=P.Pooling.AVE, kernel_size=3, stride=2)
    net.conv3 = convolution(net.pool2, 64, 0.01)
    net.relu3 = L.ReLU(net.conv3, in_place=True)
    net.pool3 = L.Pooling(net.relu3, pool=P.Pooling.AVE, kernel_size=3, stride=2)
    net.ip1 = L.InnerProduct(net.pool3, num_output=64, param=LEARNING_RATE_MULTIPLIERS,
                             weight_filler={"type": "gaussian", "std": 0.1}, bias_filler=ZERO)
    net.ip2 = L.InnerProduct(net.ip1, num_output=NUM_CLASSES, param=LEARNING_RATE_MULTIPLIERS,
                             weight_filler={"type": "gaussian", "std": 0.1}, bias_filler=ZERO)
    return net.ip2


MODELS["cifar10_quick"] = Architecture("cifar10_quick", "CIFAR10_quick", cifar10_quick,
                                       "conv32-pool-conv32-pool-conv64-pool-ip64-ip10")
