"""export-images: one JPEG and one PNG file per image, Caffe ImageData lists, a manifest; all or nothing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from caffepipe.core.errors import CaffepipeError
from caffepipe.data.export_images import export_images, image_file_name, main
from tests.conftest import synthetic_digits, tiny_params, write_params


def test_png_files_hold_the_exact_pixels_and_jpeg_files_close_ones(tmp_path: Path) -> None:
    images, labels = synthetic_digits(12)
    manifest = export_images(images, labels, tmp_path / "images", jpeg_quality=95)
    assert manifest["count"] == 12 and (manifest["height"], manifest["width"]) == (28, 28)
    for index, image in enumerate(images):
        png = np.asarray(Image.open(tmp_path / "images/png" / image_file_name(index, ".png")))
        jpeg = np.asarray(Image.open(tmp_path / "images/jpeg" / image_file_name(index, ".jpg")))
        assert np.array_equal(png, image)
        assert jpeg.shape == image.shape and np.abs(jpeg.astype(int) - image).mean() < 8


def test_lists_are_caffe_imagedata_lines_of_file_and_label(tmp_path: Path) -> None:
    images, labels = synthetic_digits(5)
    manifest = export_images(images, labels, tmp_path / "images", jpeg_quality=90)
    for name, extension in (("jpeg", ".jpg"), ("png", ".png")):
        lines = (tmp_path / "images" / manifest["formats"][name]["list"]).read_text().splitlines()
        assert lines == [f"{image_file_name(i, extension)} {int(label)}" for i, label in enumerate(labels)]
        assert manifest["formats"][name]["bytes"] == sum(p.stat().st_size for p in (tmp_path / "images" / name).iterdir())
    assert json.loads((tmp_path / "images/manifest.json").read_text()) == manifest


def test_a_rerun_replaces_the_folder_whole(tmp_path: Path) -> None:
    images, labels = synthetic_digits(6)
    export_images(images, labels, tmp_path / "images", jpeg_quality=95)
    export_images(images[:2], labels[:2], tmp_path / "images", jpeg_quality=95)
    assert len(list((tmp_path / "images/png").iterdir())) == 2


def test_asking_for_more_images_than_the_data_holds_is_an_error_naming_the_key(tmp_path: Path, synthetic_raw: Path) -> None:
    params = write_params(tmp_path / "params.yaml", tiny_params(export_images={"count": 301}))
    with pytest.raises(CaffepipeError, match="export_images.count is 301"):
        main(["--params", str(params), "--raw", str(synthetic_raw), "--out", str(tmp_path / "images")])
    assert not (tmp_path / "images").exists()


def test_main_exports_the_first_count_training_images(tmp_path: Path, synthetic_raw: Path) -> None:
    params = write_params(tmp_path / "params.yaml", tiny_params(export_images={"count": 7}))
    assert main(["--params", str(params), "--raw", str(synthetic_raw), "--out", str(tmp_path / "images")]) == 0
    assert len((tmp_path / "images/jpeg.txt").read_text().splitlines()) == 7
