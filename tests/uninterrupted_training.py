"""An uninterrupted training whose test_interval changes at one iteration: the reference for a training that was
resumed with another test_interval (tests/integration/test_training.py).

    python -m tests.uninterrupted_training --solver data/nets/lenet/solver.prototxt --switch-at 30 \\
        --intervals 10 15 --weights reference.caffemodel --out reference.json

Run from the folder the solver's paths are relative to. Caffe's solver has a single test_interval, so this runs
netgen's solver one iteration at a time with its own tests turned off, and runs each test pass itself as
Solver::Test does: the test net shares the train net's weights, reads test_iter batches in a row, and each
output is the float32 sum of its values divided by test_iter. Tests run at the start of every iteration that
is a multiple of the first interval before --switch-at and of the second from there on (iteration 0 only
with test_initialization), and, as Solver::Solve does, at max_iter when its interval divides it.
Writes the final weights (--weights) and {"<iteration>": {"<output>": value}} (--out). Nothing here comes
from caffepipe's training code: it is what that code's resume is checked against.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def run_test(solver: Any, test_net: Any, test_iter: int) -> dict[str, float]:
    test_net.share_with(solver.net)
    sums: dict[str, np.float32] = {}
    for _ in range(test_iter):
        outputs = test_net.forward()
        for name in test_net.outputs:
            value = np.float32(outputs[name].item())
            sums[name] = value if name not in sums else np.float32(sums[name] + value)
    return {name: float(np.float32(total / np.float32(test_iter))) for name, total in sums.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.uninterrupted_training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solver", required=True, type=Path)
    parser.add_argument("--switch-at", required=True, type=int)
    parser.add_argument("--intervals", required=True, type=int, nargs=2, metavar=("BEFORE", "FROM"))
    parser.add_argument("--weights", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)

    from caffepipe.core.caffe_env import import_caffe

    caffe = import_caffe(threads=1)
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    param = text_format.Parse(args.solver.read_text(), caffe_pb2.SolverParameter())
    max_iter, test_iter, initialization = param.max_iter, param.test_iter[0], param.test_initialization
    # The tests are run here. Caffe refuses test_interval 0 with a test net, so: one Step never reaches.
    param.test_interval, param.test_initialization = max_iter + 1, False
    param.snapshot = 0
    param.snapshot_after_train = False
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt") as solver_file:
        solver_file.write(text_format.MessageToString(param))
        solver_file.flush()
        solver = caffe.get_solver(solver_file.name)

    def interval(iteration: int) -> int:
        return args.intervals[0] if iteration < args.switch_at else args.intervals[1]

    test_net = solver.test_nets[0]
    tests = {}
    for iteration in range(max_iter):
        if iteration % interval(iteration) == 0 and (iteration > 0 or initialization):
            tests[iteration] = run_test(solver, test_net, test_iter)
        solver.step(1)
    if max_iter % interval(max_iter) == 0:
        tests[max_iter] = run_test(solver, test_net, test_iter)
    solver.net.save(str(args.weights))
    args.out.write_text(json.dumps(tests, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
