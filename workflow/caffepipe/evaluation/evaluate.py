"""`caffepipe evaluate`: run one model's deploy net at every training snapshot over the whole test set.

    caffepipe evaluate --params params.yaml --model lenet --nets data/nets/lenet
        --snapshots data/train/lenet/snapshots.json --db data/db --out data/eval/lenet
        --out-metrics reports/eval/lenet/metrics.json --threads 2

pycaffe on the CPU, in batches of params `evaluate.batch_size`, BLAS capped at --threads. The test images come
from the `netgen.backend` database (data/db/test_lmdb or test_leveldb), in key order: image i of every array
below is record i of that database. Pixels are transformed as the test net's Data layer does (training/input_transform.py:
scaled by 1/256, after subtracting the mean image for CIFAR-10).

Output folder (--out, e.g. data/eval/lenet/), written as a whole or not at all; S snapshots in iteration
order (the last is the final model), N test images, K classes:

- predictions.npz (numpy, compressed):
    iterations   int64   [S]        snapshot iterations
    labels       uint8   [N]        true class of each test image
    probs        float32 [S, N, K]  softmax output ("prob" blob) of each snapshot for each image
    predictions  uint8   [S, N]     argmax of probs (the lower class on a tie)
    confusion    int64   [S, K, K]  confusion matrices: row = true class, column = predicted
- summary.csv: one row per snapshot: iteration, accuracy, error, loss (mean −log p[true], clamped at FLT_MIN
  like Caffe's SoftmaxWithLoss), errors (count), images, then error_class_0 ... error_class_{K-1} (each true
  class's error rate).
- confusion.csv: every confusion-matrix cell of every snapshot, long format: iteration, true, predicted, count.
- info.json: {"format": 1, "model", "images", "classes", "iterations", "final_iteration", "caffemodels"
  (as listed in the manifest), "fingerprint" (the manifest's), "backend", "input_scale", "deploy_sha256"}.

caffepipe.evaluation.eval_files writes the folder and reads it back (read_evaluation, checked) for `caffepipe analyze`
and the report.

--out-metrics (reports/eval/<model>/metrics.json, a DVC metric): the final snapshot's iteration, accuracy,
error, loss, errors and images.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from caffepipe.evaluation import error_stats
from caffepipe.core.atomic import write_text_atomic
from caffepipe.core.errors import CaffepipeError
from caffepipe.evaluation.eval_files import final_metrics, write_evaluation
from caffepipe.training.input_transform import InputTransform, nets_input_transform
from caffepipe.pipeline.params import add_params_argument, load_params
from caffepipe.core.progress import Progress
from caffepipe.training.net_files import open_net
from caffepipe.training.nets_folder import DEPLOY_NET_FILE
from caffepipe.training.snapshots import Manifest, check_caffemodel, net_param_shapes, read_manifest

log = logging.getLogger(__name__)

INPUT_BLOB = "data"
OUTPUT_BLOB = "prob"


def load_manifest(path: Path, model: str) -> Manifest:
    """The snapshot manifest, checked to be of `model` and to list each iteration once."""
    manifest = read_manifest(path)
    if manifest.model != model:
        raise CaffepipeError(f"{path} lists snapshots of model {manifest.model!r}, not {model!r}; check --snapshots")
    iterations = [snapshot.iteration for snapshot in manifest.snapshots]
    if not iterations:
        raise CaffepipeError(f"{path}: lists no snapshot; re-run `caffepipe train`")
    if len(set(iterations)) != len(iterations):
        raise CaffepipeError(f"{path}: an iteration is listed twice ({iterations}); re-run `caffepipe train`")
    if iterations[-1] != manifest.max_iter:
        log.warning("%s: the last snapshot is at iteration %d, not max_iter %d; evaluating it as the final model",
                    path, iterations[-1], manifest.max_iter)
    return manifest


def forward_probs(net: Any, images: np.ndarray, batch_size: int, transform: InputTransform) -> np.ndarray:
    """The OUTPUT_BLOB of `net` for every image (uint8 [N, C, H, W]), as float32 [N, K]."""
    outputs = []
    data = net.blobs[INPUT_BLOB]
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if data.data.shape[0] != len(batch):
            data.reshape(len(batch), *images.shape[1:])
            net.reshape()
        data.data[...] = transform.apply(batch)
        net.forward()
        outputs.append(np.array(net.blobs[OUTPUT_BLOB].data, dtype=np.float32).reshape(len(batch), -1))
    return np.concatenate(outputs)


def open_deploy_net(caffe: Any, deploy: Path, image_shape: tuple[int, ...]) -> Any:
    net = open_net(caffe, deploy)
    for blob in (INPUT_BLOB, OUTPUT_BLOB):
        if blob not in net.blobs:
            raise CaffepipeError(f"{deploy}: the deploy net has no {blob!r} blob; re-run `caffepipe netgen`")
    wanted = tuple(net.blobs[INPUT_BLOB].data.shape[1:])
    if wanted != tuple(image_shape):
        raise CaffepipeError(f"{deploy} takes inputs of shape {wanted} but the test images are {tuple(image_shape)}; "
                             "re-run `caffepipe netgen` for this database")
    return net


def evaluate(params: dict[str, Any], model: str, nets: Path, snapshots_path: Path, db: Path, out: Path,
             out_metrics: Path, threads: int) -> dict[str, Any]:
    from caffepipe.core.caffe_env import import_caffe  # noqa: PLC0415 — Caffe only when evaluating
    from caffepipe.data.datum import db_path, read_db  # noqa: PLC0415

    backend = params["netgen"]["backend"]
    batch_size = int(params["evaluate"]["batch_size"])
    deploy = nets / DEPLOY_NET_FILE
    if not deploy.is_file():
        raise CaffepipeError(f"{deploy}: no deploy net; run `caffepipe netgen --model {model}` first")
    manifest = load_manifest(snapshots_path, model)
    snapshots = manifest.snapshots
    # Caffe first: the BLAS thread cap and glog's level only take effect if set before it loads (reading the
    # database may load it too, for its protobuf classes).
    caffe = import_caffe(threads=threads)
    from caffe.proto import caffe_pb2  # noqa: PLC0415
    test_db = db_path(db, "test", backend)
    images, labels = read_db(test_db, backend)
    if not len(labels):
        raise CaffepipeError(f"{test_db}: the test database is empty; re-run `caffepipe build-db`")
    log.info("%s: %d test images from %s, %d snapshots (iterations %d..%d)", model, len(labels), test_db,
             len(snapshots), snapshots[0].iteration, snapshots[-1].iteration)

    net = open_deploy_net(caffe, deploy, images.shape[1:])
    transform = nets_input_transform(caffe_pb2, nets)
    expected = net_param_shapes(net)
    all_probs = []
    with Progress(total=len(snapshots), desc=f"evaluate {model}", unit="snapshot") as progress:
        for snapshot in snapshots:
            # Caffe would keep a missing layer's initial weights silently, and abort on a shape mismatch.
            problem = check_caffemodel(caffe_pb2, snapshot.caffemodel, expected)
            if problem:
                raise CaffepipeError(f"{snapshot.caffemodel} is no snapshot of {deploy}: {problem}; re-run "
                                     "`caffepipe train` after `caffepipe netgen`")
            net.copy_from(str(snapshot.caffemodel))
            probs = forward_probs(net, images, batch_size, transform)
            if not np.isfinite(probs).all():
                log.warning("%s at iteration %d: non-finite probabilities (did training diverge?)", model, snapshot.iteration)
            all_probs.append(probs)
            progress.update(step=1, iteration=snapshot.iteration,
                            accuracy=error_stats.accuracy(labels, np.argmax(probs, axis=1)))

    base = snapshots_path.parent
    info = {
        "model": model,
        "caffemodels": [Path(os.path.relpath(snapshot.caffemodel, base)).as_posix() for snapshot in snapshots],
        "fingerprint": manifest.fingerprint,
        "backend": backend,
        "input_scale": transform.scale,
        "input_mean": transform.describe_mean(),
        "deploy_sha256": hashlib.sha256(deploy.read_bytes()).hexdigest(),
    }
    iterations = np.array([snapshot.iteration for snapshot in snapshots], dtype=np.int64)
    summary = write_evaluation(out, iterations, labels, np.stack(all_probs), info)
    metrics = final_metrics(summary)
    write_text_atomic(out_metrics, json.dumps(metrics, indent=2) + "\n")
    log.info("%s at iteration %d: accuracy %.4f, loss %.4f (%d errors of %d)", model, metrics["iteration"],
             metrics["accuracy"], metrics["loss"], metrics["errors"], metrics["images"])
    return metrics


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe evaluate", description=__doc__.split("\n")[0])
    add_params_argument(parser)
    parser.add_argument("--model", required=True, help="model name (lenet, mlp)")
    parser.add_argument("--nets", required=True, type=Path, help="the model's net folder (holds deploy.prototxt)")
    parser.add_argument("--snapshots", required=True, type=Path, help="snapshots.json written by `caffepipe train`")
    parser.add_argument("--db", required=True, type=Path, help="the database folder (data/db)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (data/eval/<model>)")
    parser.add_argument("--out-metrics", required=True, type=Path, help="final snapshot's metrics JSON")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: params evaluate.threads)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    threads = args.threads if args.threads is not None else int(params["evaluate"]["threads"])
    evaluate(params, args.model, args.nets, args.snapshots, args.db, args.out, args.out_metrics, threads)
    return 0
