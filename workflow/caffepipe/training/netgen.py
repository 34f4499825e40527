"""`caffepipe netgen`: write one model's train, test and deploy nets and its solver as prototxt.

    caffepipe netgen --params params.yaml --model lenet --db data/db --out data/nets/lenet

Output folder (--out), written as a whole or not at all:
    train.prototxt   Data layer (the training DB, TRAIN batch) -> architecture -> SoftmaxWithLoss
    test.prototxt    Data layer (the test DB, TEST batch)      -> architecture -> Accuracy + SoftmaxWithLoss
    deploy.prototxt  Input "data" (N,C,H,W), pixels already transformed as the Data layers do -> architecture -> Softmax "prob"
    solver.prototxt  the `train` section of params.yaml, with the model's `train.overrides` entry applied
                     (solver_settings.py), as a caffe_pb2.SolverParameter
    mean.binaryproto (CIFAR-10 only) build-db's mean training image, which the Data layers subtract

The input's shape (channels, height, width) is the database's, read from its info.json: 1x28x28 for MNIST and
Fashion-MNIST, 3x32x32 for CIFAR-10, so every model of models.py runs on either. The Data layers scale pixels by
models.INPUT_SCALE (Caffe's MNIST examples); for CIFAR-10 they first subtract the mean image, as Caffe's
examples/cifar10 nets do (transform_param mean_file; Caffe computes (pixel - mean) * scale). The mean is copied
into the nets' folder, so every stage that has the nets has the transform they were trained with.

The nets are built with `caffe.net_spec` from the one architecture in models.py and the solver with
`caffe_pb2.SolverParameter`: no prototxt is ever assembled from strings. Paths inside them (the databases,
the nets in the solver) are the ones given on the command line, relative to where the pipeline runs (the
repository root), like Caffe's own examples; `caffe train --solver data/nets/lenet/solver.prototxt` from the
root runs the same training by hand. `caffepipe train` points the solver at its own snapshot folder.

Random shifts (netgen.random_shift): the train net of such a model reads build-db's padded training database
(train_padded_<backend>, build_db.train_pad pixels of black border) with transform_param crop_size = the image
size, so Caffe's DataTransformer takes a random crop per image in TRAIN: the digit shifted by up to train_pad
pixels each way. The test net reads the plain test images uncropped, and the deploy net's input is unchanged.

test_iter covers the whole test set: ceil(test images / test batch), the count read from the database's
info.json (so data/db/info.json is an input of this stage).
"""
from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

from caffepipe.core.atomic import atomic_output
from caffepipe.data.datum import PADDED_TRAIN, db_path
from caffepipe.core.errors import CaffepipeError
from caffepipe.core.upstream import read_json, require
from caffepipe.data.mean_image import MEAN_FILE
from caffepipe.training.models import INPUT_SCALE, architecture
from caffepipe.training.nets_folder import NET_FILES, SOLVER_FILE
from caffepipe.training.solver_settings import solver_settings
from caffepipe.pipeline.params import add_params_argument, load_params

log = logging.getLogger(__name__)

# Batch of the deploy net's Input layer, as in Caffe's examples/mnist/lenet.prototxt; users reshape it.
DEPLOY_BATCH = 64
# Solver settings that are not in params.yaml: Caffe's lenet_solver.prototxt has them the same way.
SOLVER_TYPE = "SGD"
# Datasets whose nets subtract the mean image, as Caffe's own examples do (examples/cifar10: yes; examples/mnist: no).
MEAN_SUBTRACTED_DATASETS = ("cifar10",)


def test_iterations(test_count: int, batch_size: int) -> int:
    """Test batches that cover every test image at least once."""
    if test_count < 1:
        raise CaffepipeError(f"the test database is empty ({test_count} images); rebuild it with `caffepipe build-db`")
    return math.ceil(test_count / batch_size)


def read_db_info(db_dir: Path) -> dict[str, Any]:
    """build-db's info.json, checked to hold what netgen needs: the test set's size and the images' shape."""
    info_path = db_dir / "info.json"
    info = read_json(info_path, "build-db")
    needed = ("test", "channels", "height", "width")
    if not isinstance(info, dict) or not all(isinstance(info.get(key), int) for key in needed):
        raise CaffepipeError(f"{info_path} lacks an integer {', '.join(needed)}; rebuild the databases with `caffepipe build-db`")
    return info


def read_test_count(db_dir: Path) -> int:
    return read_db_info(db_dir)["test"]


def input_shape(info: dict[str, Any]) -> tuple[int, int, int]:
    return info["channels"], info["height"], info["width"]


def subtracts_mean(info: dict[str, Any]) -> bool:
    return info.get("dataset") in MEAN_SUBTRACTED_DATASETS


def check_random_shift(model: str, info: dict[str, Any], db_dir: Path) -> None:
    """A model in netgen.random_shift needs build-db's padded training database, and square images without a
    mean image (Caffe would subtract a mean of the crop's size from the larger padded images)."""
    if not info.get("train_pad"):
        raise CaffepipeError(f"netgen.random_shift lists {model} but {db_dir} has no padded training database: set "
                             "params build_db.train_pad (e.g. 2) and re-run `caffepipe build-db`, or remove the model from random_shift")
    channels, height, width = input_shape(info)
    if subtracts_mean(info) or height != width:
        raise CaffepipeError(f"netgen.random_shift lists {model}, but random shifts are for square images without a mean image "
                             f"(MNIST, Fashion-MNIST), not {info.get('dataset')} ({channels}x{height}x{width}); remove it from random_shift")


def build_nets(caffe: Any, model: str, *, train_source: str, test_source: str, backend: str,
               train_batch_size: int, test_batch_size: int, shape: tuple[int, int, int] = (1, 28, 28),
               mean_file: str | None = None, train_crop: int | None = None) -> dict[str, Any]:
    """The train, test and deploy NetParameters of one model: one architecture, three inputs and heads. The
    inputs are images of `shape` (channels, height width), scaled by INPUT_SCALE after `mean_file` (if given)
    is subtracted. With train_crop, the train net takes random train_crop x train_crop crops of train_source's
    (larger, padded) images: random shifts."""
    arch = architecture(model)
    L, P = caffe.layers, caffe.params
    backend_enum = {"lmdb": P.Data.LMDB, "leveldb": P.Data.LEVELDB}[backend]
    transform = {"scale": INPUT_SCALE, **({"mean_file": mean_file} if mean_file else {})}

    def data_input(net: Any, source: str, batch_size: int, crop: int | None = None) -> Any:
        net.data, net.label = L.Data(source=source, backend=backend_enum, batch_size=batch_size,
                                     transform_param={**transform, **({"crop_size": crop} if crop else {})}, ntop=2)
        return net.data

    train = caffe.NetSpec()
    logits = arch.body(caffe, train, data_input(train, train_source, train_batch_size, train_crop), train=True)
    train.loss = L.SoftmaxWithLoss(logits, train.label)

    test = caffe.NetSpec()
    logits = arch.body(caffe, test, data_input(test, test_source, test_batch_size))
    test.accuracy = L.Accuracy(logits, test.label)
    test.loss = L.SoftmaxWithLoss(logits, test.label)

    deploy = caffe.NetSpec()
    deploy.data = L.Input(shape={"dim": [DEPLOY_BATCH, *shape]})
    deploy.prob = L.Softmax(arch.body(caffe, deploy, deploy.data))

    nets = {"train": train.to_proto(), "test": test.to_proto(), "deploy": deploy.to_proto()}
    for net in nets.values():
        net.name = arch.net_name
    return nets


def build_solver(caffe_pb2: Any, train_params: dict[str, Any], *, train_net: str, test_net: str, test_iter: int,
                 snapshot_prefix: str) -> Any:
    """The SolverParameter: params.yaml's `train` section, CPU mode, a fixed random seed."""
    solver = caffe_pb2.SolverParameter()
    solver.train_net = train_net
    solver.test_net.append(test_net)
    solver.test_iter.append(test_iter)
    solver.test_interval = train_params["test_interval"]
    solver.type = SOLVER_TYPE
    solver.base_lr = train_params["base_lr"]
    solver.momentum = train_params["momentum"]
    solver.weight_decay = train_params["weight_decay"]
    solver.lr_policy = train_params["lr_policy"]
    solver.gamma = train_params["gamma"]
    solver.power = train_params["power"]
    solver.display = train_params["display"]
    solver.max_iter = train_params["max_iter"]
    solver.snapshot = train_params["snapshot_interval"]
    solver.snapshot_prefix = snapshot_prefix
    solver.solver_mode = caffe_pb2.SolverParameter.CPU
    solver.random_seed = train_params["random_seed"]
    return solver


def to_prototxt(message: Any) -> str:
    from google.protobuf import text_format  # noqa: PLC0415

    return text_format.MessageToString(message)


def generate(params: dict[str, Any], model: str, db_dir: Path, out_dir: Path) -> dict[str, str]:
    """Build the four prototxt texts of one model ({file name: text}); pure apart from importing Caffe. The mean
    file the nets name (CIFAR-10) is out_dir's copy, which main writes."""
    from caffepipe.core.caffe_env import import_caffe  # noqa: PLC0415

    netgen_params, train_params = params["netgen"], solver_settings(params["train"], model)
    if model not in netgen_params["models"]:
        raise CaffepipeError(f"model {model!r} is not in params netgen.models ({', '.join(netgen_params['models'])})")
    backend = netgen_params["backend"]
    info = read_db_info(db_dir)
    test_count = info["test"]
    test_iter = test_iterations(test_count, netgen_params["test_batch_size"])
    if test_count % netgen_params["test_batch_size"]:
        log.warning("%d test images are not a multiple of test_batch_size %d: each test pass reads %d images, "
                    "so %d are counted twice", test_count, netgen_params["test_batch_size"],
                    test_iter * netgen_params["test_batch_size"], test_iter * netgen_params["test_batch_size"] - test_count)

    shifted = model in netgen_params["random_shift"]
    if shifted:
        check_random_shift(model, info, db_dir)

    caffe = import_caffe()
    from caffe.proto import caffe_pb2  # noqa: PLC0415

    nets = build_nets(caffe, model,
                      train_source=str(db_path(db_dir, PADDED_TRAIN if shifted else "train", backend)),
                      test_source=str(db_path(db_dir, "test", backend)),
                      backend=backend,
                      train_batch_size=netgen_params["train_batch_size"],
                      test_batch_size=netgen_params["test_batch_size"],
                      shape=input_shape(info),
                      mean_file=str(out_dir / MEAN_FILE) if subtracts_mean(info) else None,
                      train_crop=input_shape(info)[1] if shifted else None)
    solver = build_solver(caffe_pb2, train_params,
                          train_net=str(out_dir / NET_FILES["train"]), test_net=str(out_dir / NET_FILES["test"]),
                          test_iter=test_iter, snapshot_prefix=model)
    texts = {NET_FILES[kind]: to_prototxt(net) for kind, net in nets.items()}
    texts[SOLVER_FILE] = to_prototxt(solver)
    return texts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe netgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--model", required=True, help="a model of params netgen.models (lenet, mlp, ...)")
    parser.add_argument("--db", required=True, type=Path, help="the databases folder (data/db)")
    parser.add_argument("--out", required=True, type=Path, help="the folder to write (data/nets/<model>)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    texts = generate(params, args.model, args.db, args.out)
    with atomic_output(args.out, directory=True) as folder:
        for name, text in texts.items():
            (folder / name).write_text(text)
        if subtracts_mean(read_db_info(args.db)):
            (folder / MEAN_FILE).write_bytes(require(args.db / MEAN_FILE, "build-db").read_bytes())
    log.info("wrote %s (%s)", args.out, ", ".join(texts))
    return 0
