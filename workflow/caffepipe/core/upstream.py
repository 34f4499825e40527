"""Reading what an earlier stage wrote, with errors that name the stage to run.

A stage's inputs are other stages' outputs; when one is missing or damaged, the user needs to hear which
`caffepipe <stage>` makes it, not a traceback.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from caffepipe.core.errors import CaffepipeError


def require(path: Path, stage: str) -> Path:
    if not path.exists():
        raise CaffepipeError(f"{path} not found; it is made by `caffepipe {stage}` (run the pipeline up to it first)")
    return path


def read_json(path: Path, stage: str) -> Any:
    try:
        return json.loads(require(path, stage).read_text())
    except json.JSONDecodeError as error:
        raise CaffepipeError(f"{path} is not valid JSON ({error}); re-run `caffepipe {stage}`") from None
