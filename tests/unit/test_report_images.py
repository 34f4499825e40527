"""The report's figures re-encoded with a palette (report/images.py): smaller, the same bytes every time, and
lossless for images of at most 256 colours."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from caffepipe.core import figures
from caffepipe.report.images import compact_png


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="png")
    return buffer.getvalue()


def chart_png() -> bytes:
    figures.apply_style()
    fig, ax = figures.plt.subplots(figsize=(6, 4))
    rng = np.random.default_rng(0)
    for line in range(4):
        ax.plot(np.cumsum(rng.normal(size=200)), label=f"line {line}")
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    figures.plt.close(fig)
    return buffer.getvalue()


def test_a_matplotlib_chart_shrinks_and_stays_the_same_picture() -> None:
    original = chart_png()
    compact = compact_png(original)
    assert len(compact) < 0.7 * len(original)
    before = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), dtype=int)
    after = np.asarray(Image.open(io.BytesIO(compact)).convert("RGB"), dtype=int)
    assert before.shape == after.shape
    assert np.abs(before - after).mean() < 1.0          # quantisation moves few pixels, and little
    assert compact_png(original) == compact              # deterministic: the page's bytes depend on it


def test_an_image_of_few_colours_converts_without_loss() -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, size=(60, 80), dtype=np.uint8)
    rgba = Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 255)]), "RGBA")
    original = png(rgba)
    compact = compact_png(original)
    assert len(compact) < len(original)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(compact)).convert("RGB"))[..., 0], grey)


def test_not_a_png_or_nothing_to_gain_is_returned_as_it_is() -> None:
    assert compact_png(b"GIF89a...") == b"GIF89a..."
    tiny = png(Image.new("P", (1, 1)))
    assert compact_png(tiny) == tiny
