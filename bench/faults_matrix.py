"""Run the fault-injection suite (tests/faults/) and write its results as a matrix: fault x stage x outcome.

    .venv/bin/python bench/faults_matrix.py --out bench/results/faults.md

The suite is what `./run-tests` runs too (pytest -m faults); this script only runs it alone, times it, and turns
pytest's JUnit XML (with the properties the tests record: each kill's moment, each damaged input's error line)
into a table a reader can scan.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest", "tests/faults", "-m", "faults", "-q", "-p", "no:cacheprovider",
          "-o", "junit_family=xunit1"]


@dataclass(frozen=True)
class Case:
    file: str
    name: str
    outcome: str            # passed, failed, skipped, xfail
    seconds: float
    detail: str             # why it failed or was skipped
    properties: dict[str, str]


def outcome_of(element: ElementTree.Element) -> tuple[str, str]:
    for tag in ("failure", "error"):
        found = element.find(tag)
        if found is not None:
            return "failed", (found.get("message") or "").splitlines()[0][:300]
    skipped = element.find("skipped")
    if skipped is not None:
        return ("xfail" if skipped.get("type") == "pytest.xfail" else "skipped"), skipped.get("message") or ""
    return "passed", ""


def read_cases(junit_xml: Path) -> list[Case]:
    cases = []
    for element in ElementTree.parse(junit_xml).iter("testcase"):
        outcome, detail = outcome_of(element)
        properties = {p.get("name"): p.get("value") for p in element.iter("property")}
        cases.append(Case(element.get("classname", "").rsplit(".", 1)[-1], element.get("name", ""), outcome,
                          float(element.get("time", 0)), detail, properties))
    return cases


def cell(text: str, limit: int = 220) -> str:
    text = " ".join(str(text).split())
    return (text if len(text) <= limit else text[:limit - 1] + "…").replace("|", "\\|")


def kill_section(cases: list[Case]) -> list[str]:
    lines = ["## kill -9 during training, then resume (test_kill_resume.py)", "",
             "SIGKILL to the whole process group (orchestrator, `caffepipe train`, Caffe) at seeded random moments of "
             "training, three times, each time the same command run again (after `snakemake --unlock`), then a run to "
             "the end. LeNet, 120 iterations, a snapshot every 7, batch 48 over 640 images (every resume point "
             "mid-epoch), 1 BLAS thread. Pass: after every kill each snapshot file on disk, and at the end every "
             "snapshot and final.caffemodel, is byte-identical to an uninterrupted run's.", "",
             "| orchestrator | outcome | s | kills: resumed from, seconds into training, newest snapshot after |",
             "|---|---|---|---|"]
    for case in cases:
        if "[" in case.name:
            lines.append(f"| {case.name.split('[')[1].rstrip(']')} | {case.outcome} | {case.seconds:.0f} | "
                         f"{cell(case.properties.get('kills', case.detail), 400)} |")
    return lines


def disk_section(cases: list[Case]) -> list[str]:
    lines = ["## A full disk while a snapshot is written (test_disk_full.py)", "",
             "A tmpfs as data/train/lenet with room for the snapshot at iteration 10, not the one at 30. Pass: exit 2 "
             "and one line naming ENOSPC and the snapshots folder; snapshot 10 intact (parsed, loaded by Caffe), "
             "nothing of 30 in snapshots/. Grown to fit the snapshots but not final.caffemodel: again one line, all "
             "snapshots intact, no temporary file. Grown again: the run finishes, having resumed from 10.", "",
             "| test | outcome | s |", "|---|---|---|"]
    lines += [f"| {case.name} | {case.outcome}{': ' + cell(case.detail) if case.detail else ''} | {case.seconds:.0f} |"
              for case in cases]
    return lines


def matrix_section(cases: list[Case]) -> list[str]:
    cells = [case for case in cases if "stage" in case.properties]
    counts = {outcome: sum(case.outcome == outcome for case in cells) for outcome in ("passed", "failed", "xfail")}
    lines = ["## Every stage fed a damaged input (test_corrupt_inputs.py)", "",
             f"{len(cells)} cells: {counts['passed']} pass, {counts['failed']} fail, {counts['xfail']} known failures (xfail). "
             "Pass: exit 2, the last stderr line is the one-line error and names the damaged input, no traceback or "
             "Caffe check failure, the stage's outputs unchanged and no temporary file left.", "",
             "| stage | damaged input | damage | outcome | exit | names the stage to re-run | last line on stderr |",
             "|---|---|---|---|---|---|---|"]
    for case in sorted(cells, key=lambda c: c.properties["stage"]):
        p = case.properties
        outcome = case.outcome if case.outcome == "passed" else f"**{case.outcome}**"
        lines.append(f"| {p['stage']} | `{p['input']}` | {p['damage']} | {outcome} | {p.get('exit', '')} | "
                     f"{'yes' if p.get('names_stage_to_run') == 'True' else 'no'} | {cell(p.get('error', ''))} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        junit_xml = Path(work) / "faults.xml"
        started = time.perf_counter()
        result = subprocess.run([*PYTEST, f"--junitxml={junit_xml}"], cwd=REPO, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if not junit_xml.exists():
            raise SystemExit(f"pytest wrote no results (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        cases = read_cases(junit_xml)
    by_file = {name: [case for case in cases if case.file == name]
               for name in ("test_kill_resume", "test_disk_full", "test_corrupt_inputs")}
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else f"exit {result.returncode}"
    lines = [
        "# Fault injection: what a kill, a full disk and damaged inputs do to the pipeline",
        "",
        f"Command: `.venv/bin/python bench/faults_matrix.py --out {args.out}` (runs `{' '.join(['pytest', *PYTEST[3:]])}`)",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; shared with other "
        "test runs, so times are noisy.",
        f"Suite: {summary}; {elapsed:.0f} s wall time "
        + "(" + ", ".join(f"{name}.py {sum(c.seconds for c in group):.0f} s" for name, group in by_file.items()) + ").",
        "",
        *kill_section(by_file["test_kill_resume"]), "",
        *disk_section(by_file["test_disk_full"]), "",
        *matrix_section(by_file["test_corrupt_inputs"]),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
