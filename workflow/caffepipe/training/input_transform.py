"""What a net's Data layers do to the pixels, so the stages that feed its deploy net raw images do the same.

A deploy net has an Input layer without transform_param: it takes pixels already transformed. The train and
test nets beside it say how (their Data layers' transform_param): Caffe's DataTransformer computes
(pixel - mean) * scale in float32, where the mean is a mean file's pixel, a per-channel mean_value, or 0.
evaluate, visualize and predict read it here from the test net (else the train net) that netgen wrote beside
the deploy net, so they feed the net exactly the numbers it was trained on, whatever the dataset: MNIST's
pixels scaled by 1/256, CIFAR-10's with its mean image subtracted first.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caffepipe.core.errors import CaffepipeError
from caffepipe.data.mean_image import decode_blob_proto
from caffepipe.training.nets_folder import NET_FILES


@dataclass(frozen=True)
class InputTransform:
    """What a Data layer's transform_param does to a pixel: (pixel - mean) * scale."""
    scale: float
    mean: float | np.ndarray      # a number, or a mean image (C, H, W) float32
    source: str                   # where it was read from, for the record

    def apply(self, images: np.ndarray) -> np.ndarray:
        """float32 images (N, C, H, W) from uint8 ones, as Caffe's DataTransformer computes them."""
        mean = np.asarray(self.mean, dtype=np.float32)
        if mean.ndim == 3 and mean.shape != images.shape[1:]:
            raise CaffepipeError(f"{self.source}: the mean image is {mean.shape} but the images are {images.shape[1:]}; "
                                 "re-run `caffepipe netgen` for this database")
        return (images.astype(np.float32) - mean) * np.float32(self.scale)

    def describe_mean(self) -> float | str:
        """For records (JSON): the mean number, or where the mean image came from."""
        return float(self.mean) if np.ndim(self.mean) == 0 else f"mean image {np.shape(self.mean)}"


def read_mean_file(mean_file: str, net_file: Path) -> np.ndarray:
    """The mean image a transform_param names: as written (relative to where the pipeline runs), else the file
    of that name beside the net (a nets folder moved elsewhere)."""
    for candidate in (Path(mean_file), net_file.parent / Path(mean_file).name):
        if candidate.is_file():
            return decode_blob_proto(candidate.read_bytes(), str(candidate))
    raise CaffepipeError(f"{net_file}: its mean_file {mean_file} is missing; re-run `caffepipe netgen`")


def transform_from_net(caffe_pb2: Any, net_file: Path) -> InputTransform | None:
    """The transform_param of the first data layer of a train or test prototxt, or None if it has none."""
    from caffepipe.training.net_files import read_net  # noqa: PLC0415 — needs caffe_pb2 anyway

    for layer in read_net(caffe_pb2, net_file).layer:
        if not layer.HasField("transform_param"):
            continue
        transform = layer.transform_param
        if transform.crop_size or len(transform.mean_value) > 1 or transform.mirror:
            raise CaffepipeError(f"{net_file}: layer {layer.name!r} crops, mirrors or subtracts per-channel means, "
                                 "which caffepipe does not reproduce outside Caffe; give --scale for a net fed plain scaled pixels")
        if transform.mean_file:
            mean: float | np.ndarray = read_mean_file(transform.mean_file, net_file)
        else:
            mean = float(transform.mean_value[0]) if transform.mean_value else 0.0
        scale = float(transform.scale) if transform.HasField("scale") else 1.0
        return InputTransform(scale, mean, f"{net_file} layer {layer.name!r}")
    return None


def transform_beside(caffe_pb2: Any, deploy: Path) -> InputTransform | None:
    """What the test (else train) net beside a deploy net does to its pixels; None if neither says."""
    for kind in ("test", "train"):
        if (deploy.parent / NET_FILES[kind]).is_file():
            transform = transform_from_net(caffe_pb2, deploy.parent / NET_FILES[kind])
            if transform is not None:
                return transform
    return None


def nets_input_transform(caffe_pb2: Any, nets: Path) -> InputTransform:
    """The transform of netgen's nets in `nets` (the pipeline's stages: it must be there)."""
    transform = transform_beside(caffe_pb2, nets / NET_FILES["deploy"])
    if transform is None:
        raise CaffepipeError(f"{nets}: no test or train net with a transform_param; re-run `caffepipe netgen`")
    return transform
