"""caffepipe.inference.images: a user's image file turned into MNIST-like pixels (no Caffe)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from caffepipe.inference.images import (apply_polarity, convert_image, fit_mnist, fit_square, grey_pixels,
                                        has_light_background, load_image)
from caffepipe.inference.predict import expand_inputs, format_table, top_classes, Prediction

SIZE = (28, 28)


def digit(seed: int = 0) -> np.ndarray:
    """A 28×28 white-on-black 'digit': a bright off-centre block with grey edges and faint noise, like MNIST."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 3, size=SIZE).astype(np.uint8)
    image[6:22, 9:17] = 120
    image[7:21, 10:16] = 255
    return image


def enlarged(image: np.ndarray, factor: int) -> np.ndarray:
    return np.kron(image, np.ones((factor, factor), dtype=np.uint8))


@pytest.mark.parametrize("factor", [1, 2, 5])
@pytest.mark.parametrize("mode", ["L", "RGB", "I;16"])
def test_square_fit_gives_back_an_integer_enlargement_exactly_in_every_mode(factor, mode) -> None:
    pixels = enlarged(digit(), factor)
    if mode == "L":
        image = Image.fromarray(pixels)
    elif mode == "RGB":
        image = Image.fromarray(np.stack([pixels] * 3, axis=-1))
    else:
        image = Image.fromarray(pixels.astype(np.uint16) * 257)   # 16 bits: 255 -> 65535
    assert image.mode == mode
    converted = convert_image(image, SIZE, invert="auto", fit="square")
    assert converted.pixels.shape == SIZE and converted.pixels.dtype == np.uint8
    np.testing.assert_array_equal(converted.pixels, digit())
    assert not converted.inverted


def test_sixteen_bit_images_are_scaled_not_clipped() -> None:
    """Pillow's convert('L') clips 16-bit values at 255: a mid-grey scan would come out white."""
    image = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))    # 128 * 257
    assert grey_pixels(image).tolist() == [[128] * 4] * 4


def test_dark_ink_on_light_paper_is_inverted_back_exactly() -> None:
    converted = convert_image(Image.fromarray(255 - digit()), SIZE, invert="auto", fit="square")
    assert converted.inverted
    np.testing.assert_array_equal(converted.pixels, digit())


@pytest.mark.parametrize("invert, expected", [("yes", True), ("no", False)])
def test_the_invert_flag_overrides_detection(invert, expected) -> None:
    pixels, inverted = apply_polarity(digit(), invert)
    assert inverted is expected
    np.testing.assert_array_equal(pixels, 255 - digit() if expected else digit())


def test_polarity_looks_at_the_border_not_the_amount_of_ink() -> None:
    """A thick dark digit covering most of a light page is still dark on light."""
    page = np.full((100, 100), 230, dtype=np.uint8)
    page[5:95, 5:95] = 10
    assert has_light_background(page)
    assert not has_light_background(255 - page)


def test_rgba_stroke_on_a_transparent_canvas_is_the_digit_whatever_its_colour() -> None:
    for stroke in (0, 255):
        rgba = np.zeros((56, 56, 4), dtype=np.uint8)
        rgba[..., :3] = 255 - stroke              # the invisible canvas has the other colour
        rgba[10:46, 20:34, :3] = stroke
        rgba[10:46, 20:34, 3] = 255
        converted = convert_image(Image.fromarray(rgba), SIZE, fit="square")
        assert converted.pixels[14, 14] == 255 and converted.pixels[0, 0] == 0, stroke


def test_palette_image_with_transparency_and_colour_palette() -> None:
    base = Image.fromarray(np.stack([enlarged(255 - digit(), 2)] * 3, axis=-1)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert base.mode == "P"
    converted = convert_image(base, SIZE, fit="square")
    assert converted.inverted and converted.pixels.shape == SIZE
    assert converted.pixels[14, 13] > 200 and converted.pixels[0, 0] < 10


def test_palette_png_with_a_transparent_index(tmp_path: Path) -> None:
    indices = np.zeros((40, 40), dtype=np.uint8)              # index 0: transparent white canvas
    indices[5:35, 15:25] = 1                                  # index 1: a blue stroke
    image = Image.fromarray(indices)
    image = image.convert("P")
    image.putpalette([255, 255, 255, 20, 20, 200] + [0] * 762)
    image.save(tmp_path / "stroke.png", transparency=0)
    reloaded = load_image(tmp_path / "stroke.png")
    assert reloaded.mode == "P" and "transparency" in reloaded.info
    converted = convert_image(reloaded, SIZE, fit="square")
    # the canvas went white, then inverted to black; blue (20, 20, 200) has luma 41, inverted 214 (square fit keeps levels)
    assert converted.inverted and converted.pixels[0, 0] == 0 and converted.pixels[14, 14] == 255 - 41


def test_square_fit_keeps_the_aspect_ratio_by_padding_with_the_background() -> None:
    wide = np.zeros((28, 56), dtype=np.uint8)
    wide[:, 24:32] = 255                          # a vertical bar in the middle, full height
    out = fit_square(wide, SIZE)
    assert out.shape == SIZE
    assert out[:7].max() == 0 and out[-7:].max() == 0        # padding above and below, not a stretched bar
    assert out[14, 12:16].min() == 255


def test_mnist_fit_puts_a_small_digit_in_a_20_pixel_box_centred_by_mass() -> None:
    photo = np.full((300, 400), 200, dtype=np.uint8)        # light paper, a dark stroke in a corner
    photo[20:80, 30:50] = 30
    converted = convert_image(Image.fromarray(photo), SIZE, invert="auto", fit="mnist")
    pixels = converted.pixels.astype(float)
    ink_rows = np.flatnonzero(pixels.max(axis=1) > 64)
    ink_columns = np.flatnonzero(pixels.max(axis=0) > 64)
    assert converted.inverted
    assert ink_rows[-1] - ink_rows[0] + 1 == 20             # the long side fills the box
    assert ink_columns[-1] - ink_columns[0] + 1 in (6, 7, 8)    # the aspect ratio 3:1 kept
    rows, columns = np.indices(SIZE)
    assert abs((rows * pixels).sum() / pixels.sum() - 13.5) <= 0.5
    assert abs((columns * pixels).sum() / pixels.sum() - 13.5) <= 0.5
    assert pixels.max() == 255 and pixels[0, 0] == 0         # contrast: paper black, ink white


def test_mnist_fit_of_a_blank_page_is_black() -> None:
    assert fit_mnist(np.full((50, 50), 240, dtype=np.uint8), SIZE).max() == 0


def test_jpeg_of_a_colour_photo_converts(tmp_path: Path) -> None:
    rgb = np.stack([enlarged(255 - digit(), 10)] * 3, axis=-1).astype(np.int16)
    rgb[..., 0] = np.clip(rgb[..., 0] - 20, 0, 255)           # a warm paper tint
    Image.fromarray(rgb.astype(np.uint8)).save(tmp_path / "photo.jpg", quality=80)
    converted = convert_image(load_image(tmp_path / "photo.jpg"), SIZE, fit="mnist")
    assert converted.inverted and converted.pixels.max() == 255


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    tall = np.zeros((40, 20), dtype=np.uint8)
    image = Image.fromarray(tall)
    exif = image.getexif()
    exif[0x0112] = 6                                          # "rotate 90° clockwise to view"
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (40, 20)


@pytest.mark.parametrize("content", [b"not an image at all", b""])
def test_unreadable_files_raise_oserror(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(OSError):
        load_image(tmp_path / "bad.png")


def test_a_truncated_png_raises_when_loaded(tmp_path: Path) -> None:
    Image.fromarray(enlarged(digit(), 4)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises((OSError, SyntaxError)):
        load_image(tmp_path / "cut.png")


def test_inputs_expand_folders_and_globs_and_name_what_matches_nothing(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    files, problems = expand_inputs([str(tmp_path), str(tmp_path / "*.png"), str(tmp_path / "*.gif"),
                                     str(tmp_path / "empty"), str(tmp_path / "missing.png")])
    assert files == [tmp_path / "a.JPG", tmp_path / "b.png", tmp_path / "missing.png"]
    assert [argument for argument, _ in problems] == [str(tmp_path / "*.gif"), str(tmp_path / "empty")]


def test_top_classes_and_the_printed_table() -> None:
    probabilities = np.array([0.1, 0.6, 0.1, 0.2], dtype=np.float32)
    assert top_classes(probabilities, 3) == [1, 3, 0]                  # ties: the lower class first
    table = format_table([Prediction(Path("seven.jpg"), probabilities, True, None)], ["a", "b", "c", "d"], 2)
    assert table.splitlines() == ["image      inverted  top 1    top 2", "seven.jpg  yes       b 0.600  d 0.200"]
