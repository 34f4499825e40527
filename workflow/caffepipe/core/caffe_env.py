"""Where Caffe is: the `caffe` tools and pycaffe, found without the user touching PATH or LD_LIBRARY_PATH.

envs/setup.sh builds Caffe into a per-machine cache and records its install prefix in the virtual
environment (`<venv>/caffepipe-caffe-root`). A user with a Caffe of their own (a CUDA build, say) sets
CAFFEPIPE_CAFFE_ROOT to its install prefix instead. The binaries carry an RPATH to their libraries, so
no library path needs setting.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

from caffepipe.core.errors import CaffepipeError

ROOT_ENV = "CAFFEPIPE_CAFFE_ROOT"
ROOT_RECORD = "caffepipe-caffe-root"
# pycaffe's place inside an install prefix: Debian's layout (ours), then upstream's `make install` layout.
PYCAFFE_SUBDIRS = ("lib/python3/dist-packages", "python")


def caffe_root() -> Path:
    """The install prefix of the Caffe this project uses."""
    configured = os.environ.get(ROOT_ENV)
    if configured:
        root, origin = Path(configured), f"${ROOT_ENV}"
    else:
        record = Path(sys.prefix) / ROOT_RECORD
        if not record.is_file():
            raise CaffepipeError(
                f"no Caffe is set up for {sys.prefix}; run `envs/setup.sh` (or set {ROOT_ENV} to a Caffe install prefix)"
            )
        root, origin = Path(record.read_text().strip()), str(record)
    if not (root / "bin" / "caffe").is_file():
        raise CaffepipeError(
            f"{root} (from {origin}) holds no bin/caffe; run `envs/setup.sh` to rebuild, or point {ROOT_ENV} at a Caffe install prefix"
        )
    return root


def caffe_tool(name: str = "caffe") -> Path:
    """Path of one of Caffe's tools (caffe, convert_imageset, compute_image_mean, ...)."""
    tool = caffe_root() / "bin" / name
    if not tool.is_file():
        raise CaffepipeError(f"Caffe tool {name} not found at {tool}; rebuild Caffe with `envs/setup.sh`")
    return tool


def pycaffe_dir() -> Path:
    root = caffe_root()
    for sub in PYCAFFE_SUBDIRS:
        if (root / sub / "caffe" / "__init__.py").is_file():
            return root / sub
    raise CaffepipeError(f"no pycaffe under {root} (looked in {', '.join(PYCAFFE_SUBDIRS)}); build Caffe with its Python bindings")


def blas_environment(threads: int) -> dict[str, str]:
    """Variables that set Caffe's BLAS (OpenBLAS or Intel MKL, envs/build_caffe.sh) to `threads` threads; they
    must be set before Caffe is loaded.

    For MKL, also: its GNU OpenMP threading layer (the build ships that one, not Intel's OpenMP runtime), or
    none for one thread; MKL_DYNAMIC off, or MKL may use fewer threads than asked when the machine is busy,
    which splits its sums differently; conditional numerical reproducibility (MKL_CBWR), so that two
    runs with the same thread count give bit-identical results whatever the memory alignment; and OpenMP
    threads that sleep rather than spin between parallel regions: on two cores shared with other jobs, a
    spinning thread takes the core the thread it waits for needs (passive waiting cost nothing measurable
    on a quiet machine, envs/caffe/README.md).
    """
    count = max(1, int(threads))
    value = str(count)
    return {"OPENBLAS_NUM_THREADS": value, "OMP_NUM_THREADS": value, "MKL_NUM_THREADS": value,
            "MKL_THREADING_LAYER": "GNU" if count > 1 else "SEQUENTIAL", "MKL_DYNAMIC": "FALSE", "MKL_CBWR": "AUTO",
            "OMP_WAIT_POLICY": "PASSIVE"}


def caffe_subprocess_env(threads: int | None = None) -> dict[str, str]:
    """The environment for running a Caffe tool as a child process: its glog lines go to stderr, where the
    stage captures them (by default glog would scatter them into files under /tmp)."""
    env = dict(os.environ)
    env["GLOG_logtostderr"] = "1"
    env["GLOG_minloglevel"] = "0"     # complete logs: import_caffe(quiet=True) may have set 2 in os.environ
    if threads is not None:
        env.update(blas_environment(threads))
    return env


def import_caffe(threads: int | None = None, quiet: bool = True) -> ModuleType:
    """Import pycaffe in CPU mode.

    threads caps BLAS threads; it only takes effect if Caffe was not yet loaded in this process.
    quiet keeps glog's INFO lines (one per layer) off the terminal unless GLOG_minloglevel is set.
    """
    if threads is not None and "caffe" not in sys.modules:
        os.environ.update(blas_environment(threads))
    if quiet:
        os.environ.setdefault("GLOG_minloglevel", "2")
    path = str(pycaffe_dir())
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        import caffe  # noqa: PLC0415 — imported late on purpose: most stages never need it
    except ImportError as error:
        raise CaffepipeError(f"pycaffe at {path} does not import ({error}); rebuild it with `envs/setup.sh`") from None
    caffe.set_mode_cpu()
    return caffe
