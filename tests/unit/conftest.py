"""Unit tests are fast and pure: in them, importing Caffe fails and says where the test belongs.

The guard covers the unit test modules' own imports (made while pytest collects them) and every unit test's
setup, call and teardown. In a session that also runs integration tests, a pycaffe one of them already
loaded is taken out of sys.modules for the time of a unit test and put back afterwards: pycaffe's compiled
extension cannot be loaded twice in one process, so it must be hidden, not unloaded.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import sys
from collections.abc import Iterator

import pytest

MESSAGE = "unit tests must not import Caffe; move this test to tests/integration"


def is_caffe_module(name: str) -> bool:
    return name == "caffe" or name.startswith("caffe.")


class CaffeImportBlocker(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: refuses `caffe` and `caffe.*` before any finder could locate pycaffe."""

    def find_spec(self, fullname, path=None, target=None):
        if is_caffe_module(fullname):
            raise ImportError(MESSAGE, name=fullname)
        return None


@contextlib.contextmanager
def caffe_unimportable() -> Iterator[None]:
    hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if is_caffe_module(name)}
    blocker = CaffeImportBlocker()
    sys.meta_path.insert(0, blocker)
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)
        sys.modules.update(hidden)


# These hooks run only for collectors and tests under tests/unit/ (pytest scopes a conftest's hooks to its folder).

@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    with caffe_unimportable():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with caffe_unimportable():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with caffe_unimportable():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with caffe_unimportable():
        return (yield)
