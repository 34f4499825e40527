"""People's image files turned into the pixels the nets were trained on. Pure: Pillow and numpy, no Caffe.

The training data is MNIST's: grey, 28×28, a white digit on a black background, uint8. A user's file may be
a phone photo of a digit written on paper (large, colour, EXIF-rotated, dark ink on light paper), a drawing
with a transparent background, or a 16-bit scan. Each step below removes one of those differences:

1. grey_pixels: one uint8 grey channel. Alpha is composited over a background that contrasts with the
   drawn part (a stroke on a transparent canvas is the digit, whatever its colour); 16-bit images are scaled
   to 8 bits (Pillow's own convert("L") clips them at 255, which turns a 16-bit scan all white). load_image
   applies the EXIF orientation, so a rotated phone photo is upright.
2. polarity: MNIST is white on black. `auto` inverts when the border of the image is light: a digit on paper
   has a light background, and the border is where the background is.
3. fit, two ways:
   - `mnist` (the default, for photos): the way MNIST itself was made (LeCun et al.): the background level
     (the border's median) is set to black and the brightest ink to white, the ink's bounding box is scaled,
     aspect ratio kept, to fit a 20×20 box, and that is placed in the 28×28 image with its centre of mass at
     the centre. A digit that fills a tenth of a photo then looks like an MNIST digit, not like a speck.
   - `square`: no crop, no contrast change: the image is padded to a square with the background colour (the
     aspect ratio is kept) and reduced by area averaging (Pillow's BOX filter). For images that already look
     like MNIST (exports of the database, or a 28×28 crop); an image enlarged by an integer factor comes back
     to exactly its original pixels.
The box size scales with the net's input size (20 of 28), so a net with another input size works the same way.

A colour net (CIFAR-10's: RGB, 32×32 photos) gets rgb_pixels instead: the image in RGB, transparency over
black, padded to a square with its border colour and reduced by area averaging, like `square`; no polarity step.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

INVERT_CHOICES = ("auto", "yes", "no")
FIT_CHOICES = ("mnist", "square")

# MNIST: the digit's box is 20 pixels of 28 (LeCun et al., "The MNIST database": size-normalized to 20×20,
# then centred by centre of mass in 28×28).
MNIST_BOX_FRACTION = 20 / 28
# Pixels at least this fraction of the way from the background to the brightest ink count as ink when the
# digit's bounding box is found: it keeps paper texture and JPEG noise out of the box.
INK_THRESHOLD = 0.25
# The border that `auto` polarity and the background level look at: this fraction of each side, at least one pixel.
BORDER_FRACTION = 0.05
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
SIXTEEN_BIT_MAX = 65535


@dataclass(frozen=True)
class ConvertedImage:
    pixels: np.ndarray     # uint8 [height, width], white on black, the net's input size; RGB: [3, height, width]
    inverted: bool         # whether the polarity step inverted it


def _alpha_over_contrasting_background(image: Image.Image) -> np.ndarray:
    """Grey pixels of an image with an alpha channel, composited over black or white, whichever contrasts with
    the opaque part (a black stroke on a transparent canvas goes over white, a white stroke over black)."""
    rgba = image.convert("RGBA")
    grey = np.asarray(rgba.convert("L"), dtype=np.float64)
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255
    drawn_mean = (grey * alpha).sum() / alpha.sum() if alpha.sum() else 0.0
    background = 255.0 if drawn_mean < 128 else 0.0
    return np.rint(grey * alpha + background * (1 - alpha)).astype(np.uint8)


def _sixteen_bit_to_grey(image: Image.Image) -> np.ndarray:
    values = np.asarray(image, dtype=np.float64)
    return np.rint(np.clip(values, 0, SIXTEEN_BIT_MAX) * 255 / SIXTEEN_BIT_MAX).astype(np.uint8)


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def grey_pixels(image: Image.Image) -> np.ndarray:
    """uint8 [height, width]: one grey channel, 8 bits, transparency resolved (step 1 above)."""
    if has_alpha(image):
        return _alpha_over_contrasting_background(image)
    if image.mode in SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_grey(image)
    if image.mode == "F":
        return np.rint(np.clip(np.asarray(image), 0, 1) * 255).astype(np.uint8)
    # ITU-R 601 luma, in integers whose weights sum to 1: a grey RGB pixel (v, v, v) becomes exactly v.
    return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def border_pixels(grey: np.ndarray) -> np.ndarray:
    height, width = grey.shape
    band_y, band_x = max(1, round(height * BORDER_FRACTION)), max(1, round(width * BORDER_FRACTION))
    return np.concatenate([grey[:band_y].ravel(), grey[-band_y:].ravel(),
                           grey[:, :band_x].ravel(), grey[:, -band_x:].ravel()])


def has_light_background(grey: np.ndarray) -> bool:
    """Whether the border is mostly light, that is, the image is dark on light, the opposite of MNIST."""
    return float(np.median(border_pixels(grey))) > 127.5


def apply_polarity(grey: np.ndarray, invert: str) -> tuple[np.ndarray, bool]:
    """White on black (step 2 above); returns the pixels and whether they were inverted."""
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {INVERT_CHOICES}, not {invert!r}")
    flip = invert == "yes" or (invert == "auto" and has_light_background(grey))
    return (255 - grey if flip else grey), flip


def fit_square(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Padded to a square with the background (border median), then reduced by area averaging to `size`."""
    height, width = grey.shape
    side = max(height, width)
    if height != width:
        background = int(np.median(border_pixels(grey)))
        square = np.full((side, side), background, dtype=np.uint8)
        top, left = (side - height) // 2, (side - width) // 2
        square[top:top + height, left:left + width] = grey
        grey = square
    resized = Image.fromarray(grey).resize((size[1], size[0]), Image.Resampling.BOX)
    return np.asarray(resized, dtype=np.uint8).copy()


def stretch_contrast(grey: np.ndarray) -> np.ndarray:
    """float64 in [0, 255]: the background level (border median) to 0, the brightest pixel to 255."""
    background = float(np.median(border_pixels(grey)))
    brightest = float(grey.max())
    if brightest <= background:
        return np.zeros(grey.shape)
    return np.clip((grey.astype(np.float64) - background) * 255 / (brightest - background), 0, 255)


def ink_bounding_box(levels: np.ndarray) -> tuple[slice, slice] | None:
    """Rows and columns that hold ink (INK_THRESHOLD of full brightness), or None for a blank image."""
    rows = np.flatnonzero((levels >= INK_THRESHOLD * 255).any(axis=1))
    columns = np.flatnonzero((levels >= INK_THRESHOLD * 255).any(axis=0))
    if not len(rows):
        return None
    return slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)


def scale_into_box(ink: np.ndarray, box: int) -> np.ndarray:
    """float [h, w] with max(h, w) == box, the aspect ratio kept (Lanczos: MNIST's digits are anti-aliased)."""
    height, width = ink.shape
    factor = box / max(height, width)
    new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    scaled = Image.fromarray(ink.astype(np.float32)).resize(new_size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(scaled, dtype=np.float64), 0, 255)


def centre_by_mass(digit: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`digit` placed in a black image of `size` with its centre of mass at the centre (clipped at the edges)."""
    out = np.zeros(size, dtype=np.float64)
    total = digit.sum()
    rows, columns = np.indices(digit.shape)
    mass_y = (rows * digit).sum() / total if total else (digit.shape[0] - 1) / 2
    mass_x = (columns * digit).sum() / total if total else (digit.shape[1] - 1) / 2
    top = round((size[0] - 1) / 2 - mass_y)
    left = round((size[1] - 1) / 2 - mass_x)
    top = min(max(top, 0), size[0] - digit.shape[0])
    left = min(max(left, 0), size[1] - digit.shape[1])
    out[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    return out


def fit_mnist(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MNIST's own normalisation (step 3 above): contrast, crop to the ink, fit the box, centre by mass."""
    levels = stretch_contrast(grey)
    box = ink_bounding_box(levels)
    if box is None:            # nothing drawn: a black image, which is what the net would see anyway
        return np.zeros(size, dtype=np.uint8)
    digit = scale_into_box(levels[box], max(1, round(min(size) * MNIST_BOX_FRACTION)))
    return np.rint(centre_by_mass(digit, size)).astype(np.uint8)


FITS = {"mnist": fit_mnist, "square": fit_square}


def rgb_pixels(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """uint8 [3, height, width] in Caffe's channel order (R, G, B): padded to a square with the border's colour,
    then reduced by area averaging to `size`."""
    if has_alpha(image):
        rgba = image.convert("RGBA")
        rgb = Image.new("RGB", rgba.size)
        rgb.paste(rgba, mask=rgba.getchannel("A"))
    else:
        rgb = image.convert("RGB")
    planes = [fit_square(np.asarray(rgb.getchannel(band), dtype=np.uint8), size) for band in "RGB"]
    return np.stack(planes)


def convert_image(image: Image.Image, size: tuple[int, int], invert: str = "auto", fit: str = "mnist",
                  channels: int = 1) -> ConvertedImage:
    """A user's image as the net's input of `size` (height, width), uint8: grey, white on black, for a net of
    one channel; RGB (rgb_pixels) for a net of three."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FIT_CHOICES}, not {fit!r}")
    if channels == 3:
        return ConvertedImage(rgb_pixels(image, size), False)
    grey, inverted = apply_polarity(grey_pixels(image), invert)
    return ConvertedImage(FITS[fit](grey, size), inverted)


def load_image(path: Path) -> Image.Image:
    """The decoded image at `path`. Raises OSError (not an image, truncated, missing), SyntaxError (a broken PNG)
    or Image.DecompressionBombError; the caller reports them."""
    with Image.open(path) as image:
        image.load()           # decode now: Pillow is lazy, and a truncated file only fails here
        # upright, as the photo is shown: phones store the camera's orientation in EXIF
        return ImageOps.exif_transpose(image)
