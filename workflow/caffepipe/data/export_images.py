"""`caffepipe export-images`: the training images as one JPEG and one PNG file each, for the read benchmark.

    caffepipe export-images --params params.yaml --raw data/raw --out data/images

Writes into --out: jpeg/<index>.jpg and png/<index>.png for the first export_images.count training images
(grey for MNIST, RGB colour for CIFAR-10; JPEG at export_images.jpeg_quality), the Caffe ImageData lists jpeg.txt and png.txt
("<file name> <label>" per line; the ImageData layer's root_folder is the format's folder), and manifest.json.
This is the "one file per image" layout that people use before they learn about databases; bench-io reads it
back. The folder is written once, as a stage output, and replaced whole.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from caffepipe.core.atomic import atomic_output
from caffepipe.core.errors import CaffepipeError
from caffepipe.data.raw_images import load_split
from caffepipe.pipeline.params import add_params_argument, load_params

log = logging.getLogger(__name__)

FORMATS = {"jpeg": ".jpg", "png": ".png"}


def image_file_name(index: int, extension: str) -> str:
    return f"{index:05d}{extension}"


def to_pil(image: np.ndarray) -> Image.Image:
    """A (C, H, W) uint8 image as Pillow's grey ("L", one channel) or "RGB" (three, in Caffe's R, G, B order)."""
    if image.shape[0] == 1:
        return Image.fromarray(image[0], mode="L")
    if image.shape[0] == 3:
        return Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), mode="RGB")
    raise CaffepipeError(f"cannot write a {image.shape[0]}-channel image as JPEG/PNG; only 1 (grey) or 3 (RGB)")


def export_images(images: np.ndarray, labels: np.ndarray, out: Path, jpeg_quality: int) -> dict:
    """Write every image (N, C, H, W), or grey (N, H, W), in both formats with their ImageData lists; returns
    the manifest."""
    if images.ndim == 3:
        images = images[:, np.newaxis]
    manifest = {"count": int(len(images)), "channels": int(images.shape[1]), "height": int(images.shape[2]),
                "width": int(images.shape[3]), "jpeg_quality": jpeg_quality, "formats": {}}
    with atomic_output(out, directory=True) as folder:
        for name, extension in FORMATS.items():
            (folder / name).mkdir()
            lines = []
            for index, (image, label) in enumerate(zip(images, labels)):
                file_name = image_file_name(index, extension)
                options = {"quality": jpeg_quality} if name == "jpeg" else {}
                to_pil(image).save(folder / name / file_name, **options)
                lines.append(f"{file_name} {int(label)}")
            (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
            size = sum(path.stat().st_size for path in (folder / name).iterdir())
            manifest["formats"][name] = {"folder": name, "list": f"{name}.txt", "bytes": size}
            log.info("%d %s files, %.1f MB", len(images), name, size / 1e6)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe export-images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--raw", type=Path, required=True, help="folder of what fetch wrote (data/raw)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the image files (data/images)")
    args = parser.parse_args(argv)
    params = load_params(args.params)["export_images"]
    images, labels = load_split(args.raw, "train")
    if params["count"] > len(images):
        raise CaffepipeError(f"export_images.count is {params['count']} but {args.raw} holds {len(images)} training images")
    manifest = export_images(images[:params["count"]], labels[:params["count"]], args.out, params["jpeg_quality"])
    print(f"wrote {manifest['count']} JPEG and PNG images to {args.out}")
    return 0
