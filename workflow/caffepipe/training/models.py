"""The network architectures: the one place to add a model.

Each model is a function that stacks its layers on a `caffe.NetSpec` on top of the input blob and returns
the logits (the blob the heads read). netgen.py wraps every architecture three times, with nothing but the
input layer and the head changed:

    train net:  Data (TRAIN db)  -> body -> SoftmaxWithLoss "loss"
    test net:   Data (TEST db)   -> body -> Accuracy "accuracy" + SoftmaxWithLoss "loss"
    deploy net: Input "data"     -> body -> Softmax "prob"

To add a model: write its body function here, register it in MODELS, and add its name to the `netgen.models`
enum in workflow/schemas/params/netgen.json (tests/unit/test_netgen.py fails until the two agree).

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


def _inner_product(layers: Any, bottom: Any, outputs: int) -> Any:
    return layers.InnerProduct(bottom, num_output=outputs, param=LEARNING_RATE_MULTIPLIERS,
                               weight_filler=XAVIER, bias_filler=ZERO)


def lenet(caffe: Any, net: Any, data: Any) -> Any:
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


def mlp(caffe: Any, net: Any, data: Any) -> Any:
    """LeNet-300-100 (LeCun et al. 1998): two hidden fully connected layers with ReLU."""
    L = caffe.layers
    net.ip1 = _inner_product(L, data, 300)
    net.relu1 = L.ReLU(net.ip1, in_place=True)
    net.ip2 = _inner_product(L, net.relu1, 100)
    net.relu2 = L.ReLU(net.ip2, in_place=True)
    net.ip3 = _inner_product(L, net.relu2, NUM_CLASSES)
    return net.ip3


@dataclass(frozen=True)
class Architecture:
    name: str                                   # the key in params.yaml `netgen.models`
    net_name: str                               # NetParameter.name written into the prototxt
    body: Callable[[Any, Any, Any], Any]        # (caffe, NetSpec, input top) -> logits top
    description: str


MODELS: dict[str, Architecture] = {
    "lenet": Architecture("lenet", "LeNet", lenet, "conv20-pool-conv50-pool-ip500-relu-ip10"),
    "mlp": Architecture("mlp", "LeNet-300-100", mlp, "ip300-relu-ip100-relu-ip10"),
}


def architecture(name: str) -> Architecture:
    try:
        return MODELS[name]
    except KeyError:
        raise CaffepipeError(f"unknown model {name!r}; known models: {', '.join(MODELS)} (see caffepipe/training/models.py)") from None


# --- CIFAR-10 ------------------------------------------------------------------------------------------------------

def cifar10_quick(caffe: Any, net: Any, data: Any) -> Any:
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
