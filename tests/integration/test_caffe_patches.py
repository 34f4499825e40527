"""Our patches to Caffe (envs/caffe/*.patch) against Caffe's own unit tests and a numpy reference.

envs/build_caffe.sh compiles Caffe's gtest suites for every layer the patches touch into
<prefix>/bin/caffe-layer-tests (the whole `make runtest` takes far longer than CI can spend); here they run,
float and double, gradient checks included. The batched convolution's chunking of large batches is beyond
the gtests' small blobs, so a convolution big enough to be split is checked against numpy as well.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

# The suites of the layers the patches touch: the batched convolution (base_conv_layer.cpp, shared with
# deconvolution) and the max pooling forward pass (also used by the max-pooling + dropout tests); and of what
# the choice of BLAS (MKL or OpenBLAS) changes: the math functions and the fully connected layer.
LAYER_SUITES = ("ConvolutionLayerTest", "DeconvolutionLayerTest", "PoolingLayerTest", "MaxPoolingDropoutTest",
                "CPUMathFunctionsTest", "InnerProductLayerTest")
GRADIENT_CHECKS = ("ConvolutionLayerTest", "DeconvolutionLayerTest", "PoolingLayerTest", "InnerProductLayerTest")


def layer_test_binary() -> Path:
    from caffepipe.core.caffe_env import caffe_root

    binary = caffe_root() / "bin" / "caffe-layer-tests"
    assert binary.is_file(), f"{binary} missing: this Caffe was not built by envs/build_caffe.sh with the layer tests"
    return binary


def test_caffe_gtest_suites_of_the_patched_layers_pass() -> None:
    from caffepipe.core.caffe_env import blas_environment

    gtest_filter = ":".join(f"{suite}/*" for suite in LAYER_SUITES)
    result = subprocess.run([str(layer_test_binary()), f"--gtest_filter={gtest_filter}"], capture_output=True,
                            text=True, timeout=300, env={**os.environ, **blas_environment(2)})
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "FAILED" not in output, output[-5000:]
    passed = re.search(r"\[  PASSED  \] (\d+) tests?\.", output)
    assert passed and int(passed[1]) >= 80, output[-2000:]
    for suite in LAYER_SUITES:   # both types (float, double) of every suite ran (the math functions' are plain types)
        for dtype in ("float", "double"):
            assert re.search(rf"from {suite}/\d+, where TypeParam = (caffe::CPUDevice<{dtype}>|{dtype})\n", output), (suite, dtype)
    for suite in GRADIENT_CHECKS:
        assert re.search(rf"\[       OK \] {suite}/\d+\.Test\w*Gradient", output), suite


def reference_convolution(images: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid 2-D convolution (stride 1) in float64, and the patches it multiplied (n, c*kh*kw, oh*ow)."""
    n, c = images.shape[:2]
    out_channels, _, kh, kw = weights.shape
    windows = np.lib.stride_tricks.sliding_window_view(images, (kh, kw), axis=(2, 3))   # n c oh ow kh kw
    oh, ow = windows.shape[2:4]
    patches = windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow).astype(np.float64)
    top = np.einsum("ok,nks->nos", weights.reshape(out_channels, -1).astype(np.float64), patches)
    return (top + bias[None, :, None]).reshape(n, out_channels, oh, ow), patches


def test_convolution_split_into_chunks_matches_numpy(tmp_path: Path) -> None:
    """60 images of 3x68x68 through a 5x5 convolution: 75 x 4096 column entries per image, so the batched
    path's 16M-element column buffer takes 54 images and the batch runs as two chunks. Forward, the weight
    and bias gradients (summed over both chunks) and the input gradient all match float64 numpy."""
    from caffepipe.core.caffe_env import import_caffe

    caffe = import_caffe(threads=2)
    spec = caffe.NetSpec()
    spec.data = caffe.layers.Input(shape={"dim": [60, 3, 68, 68]})
    spec.conv = caffe.layers.Convolution(spec.data, num_output=20, kernel_size=5, weight_filler={"type": "xavier"},
                                         bias_filler={"type": "uniform", "min": -1, "max": 1})
    proto = spec.to_proto()
    proto.force_backward = True
    (tmp_path / "net.prototxt").write_text(str(proto))
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TRAIN)
    rng = np.random.default_rng(3)
    images = rng.standard_normal((60, 3, 68, 68)).astype(np.float32)
    top_diff = rng.standard_normal((60, 20, 64, 64)).astype(np.float32)
    net.blobs["data"].data[...] = images
    net.forward()
    net.blobs["conv"].diff[...] = top_diff
    for param in net.params["conv"]:
        param.diff[...] = 0
    net.backward()

    weights, bias = net.params["conv"][0].data, net.params["conv"][1].data
    top, patches = reference_convolution(images, weights, bias)
    np.testing.assert_allclose(net.blobs["conv"].data, top, rtol=1e-4, atol=1e-4)
    flat_diff = top_diff.reshape(60, 20, -1).astype(np.float64)
    weight_diff = np.einsum("nos,nks->ok", flat_diff, patches).reshape(weights.shape)
    np.testing.assert_allclose(net.params["conv"][0].diff, weight_diff, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(net.params["conv"][1].diff, flat_diff.sum(axis=(0, 2)), rtol=1e-4, atol=1e-2)
    # The input gradient: the adjoint of the forward pass, <top_diff, conv(x)> = <input_diff, x> for bias 0.
    linear_part = top - bias[None, :, None, None]
    assert np.isclose((net.blobs["data"].diff.astype(np.float64) * images).sum(), (top_diff * linear_part).sum(),
                      rtol=1e-4)
