"""The zoo table of a finished run as Markdown, from the same stage outputs the report's zoo section reads.

    .venv/bin/python bench/zoo_table.py --reports reports --models lenet mlp gapnet lenet_bn resnet inception

For bench/results/zoo.md: one row per model (report/zoo_section.py says where each number comes from).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from caffepipe.report.zoo_section import zoo_table  # noqa: E402

FORMATS = {"caffe time forward ms": "{:.1f}", "caffe time backward ms": "{:.1f}", "training s": "{:.0f}",
           "it/s": "{:.1f}", "peak memory MB": "{:.0f}", "test accuracy": "{:.4f}",
           "parameters": "{:,}", "multiply-adds per image": "{:,}"}


def markdown(frame) -> str:
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" if c == "model" else "---:" for c in columns) + "|"]
    for _, row in frame.iterrows():
        cells = [FORMATS.get(column, "{}").format(row[column]) for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="the run's reports folder")
    parser.add_argument("--models", nargs="+", required=True)
    args = parser.parse_args()
    frame = zoo_table(args.models, args.reports / "train", args.reports / "eval", args.reports / "time")
    print(markdown(frame))
    return 0


if __name__ == "__main__":
    sys.exit(main())
