"""The unit-test guard (tests/unit/conftest.py) in a session that has already loaded the real pycaffe."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_unit_tests_cannot_import_a_caffe_an_integration_test_loaded_before_them() -> None:
    # pytest runs them in the order given: pycaffe is loaded first, hidden from the unit tests, then used again
    # (a pycaffe unloaded instead of hidden could not be imported a second time in the process).
    sobel = "tests/integration/test_sobel.py::test_a_{}_edge_lights_{}"
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", sobel.format("vertical", "gx_and_not_gy"),
                             "tests/unit/test_no_caffe_in_unit_tests.py", sobel.format("horizontal", "gy_and_not_gx")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "5 passed" in result.stdout
