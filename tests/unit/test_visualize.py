"""What `caffepipe visualize` draws: the layout helpers. (tests/integration/test_visualize.py checks the layers
it picks from a real pycaffe net.)"""
from __future__ import annotations

import numpy as np

from caffepipe.inspection.visualize import mosaic, unit_grid


def test_mosaic_tiles_channels_row_by_row_with_nan_gaps() -> None:
    maps = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    tiled = mosaic(maps, columns=2, gap=1)
    assert tiled.shape == (5, 5)
    np.testing.assert_array_equal(tiled[:2, :2], maps[0])
    np.testing.assert_array_equal(tiled[:2, 3:], maps[1])
    np.testing.assert_array_equal(tiled[3:, :2], maps[2])
    assert np.isnan(tiled[2]).all() and np.isnan(tiled[:, 2]).all() and np.isnan(tiled[3:, 3:]).all()


def test_unit_grid_is_near_square_and_pads_with_nan() -> None:
    grid = unit_grid(np.arange(10.0))
    assert grid.shape == (3, 4)
    np.testing.assert_array_equal(grid.ravel()[:10], np.arange(10.0))
    assert np.isnan(grid.ravel()[10:]).all()
