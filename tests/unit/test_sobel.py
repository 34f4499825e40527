"""The Sobel kernels themselves. (tests/integration/test_sobel.py puts them in a real pycaffe Convolution layer.)"""
from __future__ import annotations

from caffepipe.inspection.sobel import SOBEL_X, SOBEL_Y


def test_kernels_are_the_sobel_operators() -> None:
    assert SOBEL_X.tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert SOBEL_Y.tolist() == [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]
    assert SOBEL_X.sum() == SOBEL_Y.sum() == 0
