"""Check the environment: where each piece caffepipe runs on is, which version, and what to do if it is broken.

Prints one line per piece (the caffe binary, pycaffe, protobuf, LMDB, LevelDB, OpenBLAS and its thread
count, DVC, Snakemake, npm, Graphviz) and exits non-zero, naming the fix, when any is missing or broken.
Graphviz is optional: without it the pipeline runs and only the net diagrams are left out, so it is reported
as MISSING, with its fix, and does not make the exit status non-zero.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from caffepipe.core import caffe_env
from caffepipe.core.errors import CaffepipeError

SETUP_FIX = "run envs/setup.sh"


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str          # version and location, or what is wrong
    fix: str = ""
    optional: bool = False   # the pipeline runs without it, with less in the report


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise CaffepipeError(f"`{' '.join(command)}` exited {result.returncode}: {(result.stderr or result.stdout).strip()[:200]}")
    return (result.stdout + result.stderr).strip()


def _linked_library(binary: Path, fragment: str) -> str:
    """The path a binary's dynamic linker resolves for a library whose name contains `fragment`."""
    for line in _run(["ldd", str(binary)]).splitlines():
        name, _, target = line.strip().partition(" => ")
        if fragment in name:
            return target.split(" (")[0]
    return "not linked"


def check_caffe_binary() -> Finding:
    binary = caffe_env.caffe_tool("caffe")
    version = _run([str(binary), "--version"]).splitlines()[-1]
    missing = [line.split()[0] for line in _run(["ldd", str(binary)]).splitlines() if "not found" in line]
    if missing:
        return Finding("caffe", False, f"{binary} cannot load {', '.join(missing)}", SETUP_FIX)
    return Finding("caffe", True, f"{version} at {binary}")


def check_pycaffe() -> Finding:
    caffe = caffe_env.import_caffe()
    version = getattr(caffe, "__version__", "unknown version")
    return Finding("pycaffe", True, f"{version} at {Path(caffe.__file__).parent}")


def check_protobuf() -> Finding:
    import google.protobuf

    library = caffe_env.caffe_root() / "lib" / "libcaffe.so"
    return Finding("protobuf", True, f"python {google.protobuf.__version__}; Caffe links {_linked_library(library, 'libprotobuf')}")


def check_lmdb() -> Finding:
    import lmdb

    library = caffe_env.caffe_root() / "lib" / "libcaffe.so"
    c_version = ".".join(map(str, lmdb.version()))
    return Finding("lmdb", True, f"py-lmdb {lmdb.__version__} (liblmdb {c_version}); Caffe links {_linked_library(library, 'liblmdb')}")


def check_leveldb() -> Finding:
    import plyvel

    library = caffe_env.caffe_root() / "lib" / "libcaffe.so"
    return Finding("leveldb", True, f"plyvel {plyvel.__version__} (LevelDB {plyvel.__leveldb_version__}); "
                                    f"Caffe links {_linked_library(library, 'libleveldb')}")


def check_blas() -> Finding:
    """The BLAS libcaffe links, its version and the threads it would use: Intel MKL (envs/build_caffe.sh's
    default on x86-64) or OpenBLAS."""
    library = caffe_env.caffe_root() / "lib" / "libcaffe.so"
    mkl = _linked_library(library, "libmkl_rt")
    if mkl != "not linked":
        return _mkl_finding(mkl)
    openblas = _linked_library(library, "libopenblas")
    if openblas == "not linked":
        return Finding("blas", False, f"{library} links neither Intel MKL nor OpenBLAS", SETUP_FIX)
    blas = ctypes.CDLL(openblas)
    blas.openblas_get_config.restype = ctypes.c_char_p
    config = blas.openblas_get_config().decode()
    threads = blas.openblas_get_num_threads()
    return Finding("blas", True, f"OpenBLAS {config.strip()}; {threads} threads (set OPENBLAS_NUM_THREADS to change); at {openblas}")


def _mkl_finding(path: str) -> Finding:
    # MKL reads its threading layer when first called; caffepipe sets it for every Caffe it runs
    # (caffe_env.blas_environment), and the default, Intel's OpenMP runtime, is not shipped with the build.
    os.environ.setdefault("MKL_THREADING_LAYER", "GNU")
    mkl = ctypes.CDLL(path)
    text = ctypes.create_string_buffer(256)
    mkl.mkl_get_version_string(text, len(text))
    threads = mkl.mkl_get_max_threads()
    return Finding("blas", True, f"{text.value.decode().strip()}; {threads} threads, {os.environ['MKL_THREADING_LAYER']} "
                                 f"threading layer (caffepipe sets MKL_NUM_THREADS per stage); at {path}")


def _python_tool(distribution: str, command: str) -> Finding:
    version = importlib.metadata.version(distribution)
    location = shutil.which(command, path=str(Path(sys.executable).parent)) or shutil.which(command)
    if location is None:
        return Finding(distribution, False, f"{distribution} {version} is installed but `{command}` is not on PATH", SETUP_FIX)
    return Finding(distribution, True, f"{version} at {location}")


def check_dvc() -> Finding:
    return _python_tool("dvc", "dvc")


def check_snakemake() -> Finding:
    return _python_tool("snakemake", "snakemake")


def check_npm() -> Finding:
    location = shutil.which("npm")
    if location is None:
        return Finding("npm", False, "npm not found (caffepipe fetch's package source needs it)", SETUP_FIX)
    return Finding("npm", True, f"{_run([location, '--version'])} at {location}")


def check_graphviz() -> Finding:
    location = shutil.which("dot")
    if location is None:
        return Finding("graphviz", False, "`dot` not found: the report leaves out the net diagrams",
                       "install Debian's graphviz package (apt-get install graphviz)", optional=True)
    return Finding("graphviz", True, f"{_run([location, '-V'])} at {location}")


CHECKS: tuple[Callable[[], Finding], ...] = (
    check_caffe_binary, check_pycaffe, check_protobuf, check_lmdb, check_leveldb, check_blas,
    check_dvc, check_snakemake, check_npm, check_graphviz,
)


def run_checks() -> list[Finding]:
    findings = []
    for check in CHECKS:
        name = check.__name__.removeprefix("check_").replace("_binary", "")
        try:
            findings.append(check())
        except CaffepipeError as error:      # its message already names the fix
            findings.append(Finding(name, False, str(error)))
        except (ImportError, OSError, subprocess.SubprocessError) as error:
            # A broken install shows up as one of these; report it with the rest instead of stopping.
            findings.append(Finding(name, False, f"{type(error).__name__}: {error}", SETUP_FIX))
    return findings


def format_finding(finding: Finding) -> str:
    status = "ok     " if finding.ok else "MISSING " if finding.optional else "BROKEN "
    fix = f"  -> fix: {finding.fix}" if not finding.ok and finding.fix else ""
    return f"{status}{finding.name:<10} {finding.detail}{fix}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe doctor", description=__doc__)
    parser.add_argument("--brief", action="store_true", help="print only problems and a one-line summary")
    args = parser.parse_args(argv)
    findings = run_checks()
    broken = [finding for finding in findings if not finding.ok and not finding.optional]
    missing = [finding for finding in findings if not finding.ok and finding.optional]
    for finding in findings:
        if not args.brief or not finding.ok:
            print(format_finding(finding))
    summary = f"caffepipe doctor: {len(findings) - len(broken) - len(missing)}/{len(findings)} ok"
    summary += "" if not missing else f"; optional, missing: {', '.join(f.name for f in missing)}"
    print(summary + ("" if not broken else f"; broken: {', '.join(f.name for f in broken)}"))
    if broken:
        detail = re.sub(r"\s+", " ", broken[0].detail)
        fix = f" ({broken[0].fix})" if broken[0].fix else ""
        raise CaffepipeError(f"{broken[0].name}: {detail}{fix}")
    return 0
