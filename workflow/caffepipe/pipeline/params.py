"""params.yaml: the only source of parameters, checked against a closed schema on every load.

The schema is one JSON file per params.yaml section in workflow/schemas/params/ (one section per stage).
Each is closed (additionalProperties: false), so a misspelt key is an error that names its path, as is a
wrong type. Every stage loads its parameters through load_params, whichever orchestrator started it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from caffepipe.core.errors import CaffepipeError

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "params"


def params_schema() -> dict[str, Any]:
    """The whole params.yaml schema: every section required, no other section allowed."""
    sections = {path.stem: json.loads(path.read_text()) for path in sorted(SCHEMA_DIR.glob("*.json"))}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "caffepipe params.yaml",
        "type": "object",
        "additionalProperties": False,
        "required": sorted(sections),
        "properties": sections,
    }


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def describe_error(error: jsonschema.ValidationError) -> str:
    """One line naming the key path and what is wrong with it."""
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        prefix = f"{where}." if error.absolute_path else ""
        keys = ", ".join(f"{prefix}{key}" for key in unknown)
        return f"unknown key {keys} (allowed here: {', '.join(allowed)})"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def validate_params(params: Any, source: str = "params.yaml") -> dict[str, Any]:
    validator = jsonschema.Draft202012Validator(params_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: (len(e.absolute_path), _key_path(e)))
    if errors:
        raise CaffepipeError(f"{source}: {describe_error(errors[0])}")
    return params


def load_params(path: str | Path) -> dict[str, Any]:
    """Read and validate the whole params file; raises CaffepipeError naming the bad key."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CaffepipeError(f"{path}: no such params file; pass --params with the path to params.yaml") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(error, "problem", error)).split())   # PyYAML's may span lines: one line
        raise CaffepipeError(f"{path}: not valid YAML{where}: {problem}") from None
    return validate_params(params, str(path))


def reject_snakemake_config(snakemake_config: dict[str, Any]) -> None:
    """Refuse `snakemake --config ...` / `--configfile ...`: the stages read params.yaml, not Snakemake's config,
    so an override there would change the DAG Snakemake plans but not what any stage computes."""
    if snakemake_config:
        keys = ", ".join(sorted(snakemake_config))
        raise CaffepipeError(
            f"snakemake --config/--configfile is not used by caffepipe (got: {keys}); params.yaml is the only source "
            "of parameters: edit params.yaml, or run an experiment with `dvc exp run -S section.key=value`"
        )


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="the params.yaml to read (default: %(default)s)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe check-params", description="Validate params.yaml against its schema.")
    add_params_argument(parser)
    parser.add_argument("--print-schema", action="store_true", help="print the composed JSON schema and exit")
    args = parser.parse_args(argv)
    if args.print_schema:
        print(json.dumps(params_schema(), indent=2))
        return 0
    load_params(args.params)
    print(f"{args.params}: valid")
    return 0
