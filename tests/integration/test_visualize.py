"""What `caffepipe visualize` draws: the layers it picks from a real pycaffe net."""
from __future__ import annotations

import numpy as np
import pytest

from caffepipe.core import caffe_env
from caffepipe.inspection.visualize import FILTER_LIMIT, feature_layers, first_layer_filters, forward_samples
from tests.stage_outputs import tiny_nets

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def caffe():
    return caffe_env.import_caffe(threads=1)


def deploy_net(caffe, tmp_path, kind):
    nets, weights = tiny_nets(caffe, tmp_path / kind, kind, train_source="unused_lmdb")
    return caffe.Net(str(nets / "deploy.prototxt"), caffe.TEST, weights=str(weights))


def test_lenet_filters_are_conv1_kernels_and_maps_are_every_conv_and_pool(caffe, tmp_path) -> None:
    net = deploy_net(caffe, tmp_path, "lenet")
    name, kind, filters = first_layer_filters(net, (1, 28, 28))
    assert (name, kind, filters.shape) == ("conv1", "Convolution", (6, 5, 5))
    np.testing.assert_array_equal(filters, net.params["conv1"][0].data[:, 0])
    assert feature_layers(net) == (["conv1", "pool1", "conv2", "pool2"], "feature_maps")


def test_mlp_filters_are_ip1_rows_as_images_and_activations_are_hidden_layers(caffe, tmp_path) -> None:
    net = deploy_net(caffe, tmp_path, "mlp")
    name, kind, filters = first_layer_filters(net, (1, 28, 28))
    assert (name, kind, filters.shape) == ("ip1", "InnerProduct", (min(30, FILTER_LIMIT), 28, 28))
    np.testing.assert_array_equal(filters[3].ravel(), net.params["ip1"][0].data[3])
    assert feature_layers(net) == (["ip1", "ip2"], "activations")


def test_forward_scales_pixels_like_the_data_layers(caffe, tmp_path) -> None:
    net = deploy_net(caffe, tmp_path, "lenet")
    images = np.full((2, 1, 28, 28), 128, dtype=np.uint8)
    blobs = forward_samples(net, images)
    np.testing.assert_allclose(blobs["data"], 0.5)
    assert blobs["prob"].shape == (2, 10)
    np.testing.assert_allclose(blobs["prob"].sum(axis=1), 1.0, rtol=1e-5)
