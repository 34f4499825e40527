"""The Sobel net: hand-set kernels in a real pycaffe Convolution layer respond to the edges they should."""
from __future__ import annotations

import numpy as np
import pytest

from caffepipe.core import caffe_env
from caffepipe.inspection.sobel import CONV_LAYER, SOBEL_X, SOBEL_Y, build_sobel_net, sobel_gradients, sobel_net_spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def caffe():
    return caffe_env.import_caffe(threads=1)


def test_net_is_one_convolution_with_two_3x3_outputs_and_no_bias(caffe) -> None:
    spec = sobel_net_spec(caffe, 28, 28)
    assert [layer.type for layer in spec.layer] == ["Input", "Convolution"]
    conv = spec.layer[1].convolution_param
    assert (conv.num_output, list(conv.kernel_size), list(conv.pad), conv.bias_term) == (2, [3], [1], False)
    net, _ = build_sobel_net(caffe, 28, 28)
    assert len(net.params[CONV_LAYER]) == 1, "no bias blob"
    np.testing.assert_array_equal(net.params[CONV_LAYER][0].data[0, 0], SOBEL_X)
    np.testing.assert_array_equal(net.params[CONV_LAYER][0].data[1, 0], SOBEL_Y)


def test_a_vertical_edge_lights_gx_and_not_gy(caffe) -> None:
    image = np.zeros((1, 1, 12, 12), dtype=np.float32)
    image[..., 6:] = 1.0                                   # dark left half, bright right half
    net, _ = build_sobel_net(caffe, 12, 12)
    gx, gy = sobel_gradients(net, image)
    gx, gy = gx[0, 1:-1, :-1], gy[0, 1:-1, :-1]           # away from the zero padding at the edges
    np.testing.assert_allclose(gx[:, 5:7], 4.0)            # 1 + 2 + 1 across the step, positive: dark -> bright
    assert np.abs(gx[:, :5]).max() == 0 and np.abs(gx[:, 7:]).max() == 0
    assert np.abs(gy).max() == 0


def test_a_horizontal_edge_lights_gy_and_not_gx(caffe) -> None:
    image = np.zeros((2, 1, 12, 12), dtype=np.float32)
    image[:, :, 6:, :] = 1.0                               # bright bottom half, in a batch of two
    net, _ = build_sobel_net(caffe, 12, 12, batch=2)
    gx, gy = sobel_gradients(net, image)
    gx, gy = gx[:, :-1, 1:-1], gy[:, :-1, 1:-1]           # away from the zero padding at the edges
    np.testing.assert_allclose(gy[:, 5:7, :], 4.0)
    assert np.abs(gy[:, :5]).max() == 0 and np.abs(gy[:, 7:]).max() == 0
    assert np.abs(gx).max() == 0
