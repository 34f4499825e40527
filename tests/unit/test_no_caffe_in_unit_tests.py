"""The guard in tests/unit/conftest.py: a unit test that imports Caffe fails, saying where it belongs.
(tests/integration/test_no_caffe_in_unit_tests.py checks it after a real pycaffe was loaded in the session.)"""
from __future__ import annotations

import importlib
import sys
import types

import pytest

from tests.unit.conftest import MESSAGE, caffe_unimportable


def test_importing_caffe_in_a_unit_test_fails_with_where_the_test_belongs() -> None:
    with pytest.raises(ImportError, match="move this test to tests/integration"):
        import caffe  # noqa: F401
    with pytest.raises(ImportError, match="unit tests must not import Caffe"):
        importlib.import_module("caffe.proto.caffe_pb2")
    assert not any(name == "caffe" or name.startswith("caffe.") for name in sys.modules)


def test_other_modules_whose_names_start_with_caffe_still_import() -> None:
    assert importlib.import_module("caffepipe.core.caffe_env").ROOT_ENV == "CAFFEPIPE_CAFFE_ROOT"


def test_a_caffe_loaded_earlier_in_the_session_is_hidden_and_then_put_back() -> None:
    # Not monkeypatch.setitem: its undo runs in the teardown phase, while the guard hides (and then puts back)
    # every caffe module, so the stand-in would outlive the test and break the integration tests after it.
    loaded = types.ModuleType("caffe")
    sys.modules["caffe"] = loaded
    try:
        with caffe_unimportable():
            assert "caffe" not in sys.modules
            with pytest.raises(ImportError, match=MESSAGE):
                import caffe  # noqa: F401
        assert sys.modules["caffe"] is loaded
    finally:
        del sys.modules["caffe"]
