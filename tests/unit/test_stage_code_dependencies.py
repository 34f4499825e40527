"""Each stage declares, as dependencies in both orchestrators, exactly the caffepipe modules it runs.

A stage whose code changes must re-run (so its modules are declared), and a change elsewhere must not re-run
it (so nothing more is). The truth is read from the imports, transitively, starting at the stage's module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from caffepipe.cli import COMMANDS
from caffepipe.stages import SHARED_CODE, STAGES

PACKAGE = Path(__file__).resolve().parents[2] / "workflow" / "caffepipe"


def caffepipe_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "caffepipe":
            if node.module == "caffepipe":
                found |= {alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists()}
            else:
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("caffepipe.")}
    return found


def imported_closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(caffepipe_imports(current))
    return seen


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: stage.name)
def test_declared_code_is_what_the_stage_imports(stage) -> None:
    module = COMMANDS[stage.cli_name]
    shared = {Path(path).stem for path in SHARED_CODE}
    declared = {Path(name).stem for name in stage.code if name.endswith(".py")}
    needed = imported_closure(module) - shared
    assert declared == needed, f"stages.py {stage.name}: declare {sorted(needed - declared)}, drop {sorted(declared - needed)}"


def test_declared_non_python_code_exists() -> None:
    for stage in STAGES:
        for name in stage.code:
            assert (PACKAGE / name).is_file(), f"stages.py {stage.name}: {name} does not exist"
