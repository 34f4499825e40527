"""`caffepipe <stage> ...`: the one console command. Snakemake and DVC call nothing else.

Each stage lives in its own module with a `main(argv)`; this file only maps names to modules, imports the
one asked for (so `caffepipe fetch` never loads Caffe), and turns CaffepipeError into one line on stderr
and a non-zero exit.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

from caffepipe.core.errors import CaffepipeError

# stage name on the command line -> module in this package
COMMANDS = {
    "fetch": "data.fetch",
    "build-db": "data.build_db",
    "export-images": "data.export_images",
    "bench-io": "data.bench_io",
    "netgen": "training.netgen",
    "train": "training.train",
    "parse-log": "training.parse_log",
    "finetune": "training.finetune",
    "evaluate": "evaluation.evaluate",
    "analyze": "evaluation.analyze",
    "cam": "evaluation.cam",
    "time": "inspection.time",
    "visualize": "inspection.visualize",
    "sobel": "inspection.sobel",
    "predict": "inference.predict",
    "report": "report.report",
    "doctor": "core.doctor",
    "check-params": "pipeline.params",
    "dvc-yaml": "pipeline.dvc_yaml",
    "digest": "pipeline.digest",
}

EXIT_USER_ERROR = 2


def _usage() -> str:
    names = "\n  ".join(COMMANDS)
    return f"usage: caffepipe <command> [options]\n\ncommands:\n  {names}\n\n`caffepipe <command> --help` for each."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else EXIT_USER_ERROR
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"caffepipe: error: unknown command {command!r}; run `caffepipe --help` for the list", file=sys.stderr)
        return EXIT_USER_ERROR
    logging.basicConfig(
        level=os.environ.get("CAFFEPIPE_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s caffepipe {command}: %(message)s",
        datefmt="%H:%M:%S",
    )
    module = importlib.import_module(f"caffepipe.{COMMANDS[command]}")
    try:
        return int(module.main(rest) or 0)
    except CaffepipeError as error:
        print(f"caffepipe {command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"caffepipe {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
