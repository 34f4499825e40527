"""Figures as small PNGs for the one-file report: palette quantisation, deterministic bytes.

The page embeds every figure as base64 (a third larger than the file), so the figures' PNG bytes are most of the
page (bench/results/report.md: about 95%). Matplotlib writes 8-bit RGBA; a chart holds a few colours plus the
anti-aliasing shades between them, and a digit gallery is grey. Quantised to a 256-colour palette (median cut,
no dithering: dithering adds noise that PNG's filters cannot predict), a figure is typically 2–3 times smaller
and looks the same at the page's scale. Images with at most 256 colours already (the digit grids) convert
without any loss. The result is kept only when smaller than the original.

Pillow's median cut and its PNG encoder are deterministic, so the same figure gives the same bytes, which the
report's byte-identity (DVC compares its hash) needs.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

PALETTE_COLOURS = 256
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def compact_png(data: bytes) -> bytes:
    """The PNG `data` re-encoded with a palette of at most 256 colours, or `data` itself when that is not smaller
    (or it is not a PNG Pillow can read)."""
    if not data.startswith(PNG_SIGNATURE):
        return data
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            palette = to_palette(image)
    except OSError:     # a damaged PNG goes into the page as it is, where the browser check reports it
        return data
    buffer = io.BytesIO()
    palette.save(buffer, format="png", optimize=True)
    smaller = buffer.getvalue()
    return smaller if len(smaller) < len(data) else data


def to_palette(image: Image.Image) -> Image.Image:
    """A 'P' (or 'L') image: exact when the image has at most 256 colours, else median-cut quantised."""
    if image.mode in ("P", "L", "1"):
        return image
    has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    # The figures have opaque backgrounds; a fully opaque alpha channel only costs bytes.
    if has_alpha and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")
    elif has_alpha:
        return image.quantize(PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    image = image.convert("RGB")
    # Pillow counts colours in C and gives up past the limit: the cheap test (numpy's unique would sort every pixel)
    if image.getcolors(PALETTE_COLOURS) is not None:
        return exact_palette(np.asarray(image))
    # Median cut, not the faster octree: octree averages its buckets, so a chart's white background comes out
    # 254 and lines shift by several levels; median cut keeps them (mean error 0.05 of 255 on the report's figures)
    return image.quantize(PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def exact_palette(rgb: np.ndarray) -> Image.Image | None:
    """The image (H, W, 3 uint8) on a palette of exactly its own colours, sorted, so the bytes depend only on
    the pixels; None when it has more than 256. (Pillow's quantize onto a given palette rounds colours, so it
    would not be lossless.)"""
    keys = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    colours, index = np.unique(keys, return_inverse=True)
    if len(colours) > PALETTE_COLOURS:
        return None
    image = Image.fromarray(index.reshape(keys.shape).astype(np.uint8), "P")
    image.putpalette(np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1).astype(np.uint8).tobytes())
    return image
