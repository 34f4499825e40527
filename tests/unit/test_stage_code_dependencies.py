"""Each stage declares, as dependencies in both orchestrators, exactly the caffepipe modules it runs.

A stage whose code changes must re-run (so its modules are declared), and a change elsewhere must not re-run
it (so nothing more is). The truth is read from the imports, transitively, starting at the stage's module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from caffepipe.cli import COMMANDS
from caffepipe.pipeline.stages import SHARED_CODE, STAGES

PACKAGE = Path(__file__).resolve().parents[2] / "workflow" / "caffepipe"


def module_file(module: str) -> Path:
    """'data.fetch' -> workflow/caffepipe/data/fetch.py"""
    return PACKAGE / (module.replace(".", "/") + ".py")


def caffepipe_imports(module: str) -> set[str]:
    """The caffepipe modules one module imports, as dotted names under the package ('core.atomic')."""
    tree = ast.parse(module_file(module).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "caffepipe":
            inner = node.module.removeprefix("caffepipe").lstrip(".")
            for alias in node.names:     # `from caffepipe.core import figures` imports a module
                candidate = f"{inner}.{alias.name}" if inner else alias.name
                if module_file(candidate).is_file():
                    found.add(candidate)
            if inner and module_file(inner).is_file():
                found.add(inner)
        elif isinstance(node, ast.Import):
            found |= {alias.name.removeprefix("caffepipe.") for alias in node.names if alias.name.startswith("caffepipe.")}
    return found


def imported_closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(caffepipe_imports(current))
    return seen


def dotted(path: str) -> str:
    """'workflow/caffepipe/core/atomic.py' or 'core/atomic.py' -> 'core.atomic'"""
    return path.removeprefix("workflow/caffepipe/").removesuffix(".py").replace("/", ".")


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: stage.name)
def test_declared_code_is_what_the_stage_imports(stage) -> None:
    module = COMMANDS[stage.cli_name]
    shared = {dotted(path) for path in SHARED_CODE}
    declared = {dotted(name) for name in stage.code if name.endswith(".py")}
    needed = imported_closure(module) - shared
    assert declared == needed, f"stages.py {stage.name}: declare {sorted(needed - declared)}, drop {sorted(declared - needed)}"


def test_declared_non_python_code_exists() -> None:
    for stage in STAGES:
        for name in stage.code:
            assert (PACKAGE / name).is_file(), f"stages.py {stage.name}: {name} does not exist"
