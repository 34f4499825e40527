"""`caffepipe cam`: class activation maps (CAM, Zhou et al. 2016) of a global-average-pooling net: where it looked.

    caffepipe cam --params params.yaml --model gapnet --nets data/nets/gapnet
        --weights data/train/gapnet/final.caffemodel --eval data/eval/gapnet --db data/db --out reports/cam/gapnet

A net whose only InnerProduct reads a global average pooling of feature maps A (K channels of h x w) computes
each class's logit as  z_c = sum_k w_ck * mean(A_k) + b_c = mean(M_c) + b_c  with  M_c = sum_k w_ck * A_k.
M_c, the class activation map, says how much each place of the image adds to class c's score. It is
upsampled (bilinear) to the input's size and drawn over the digit.

Which nets: the one InnerProduct's input must come from a Pooling layer with global_pooling and AVE, with
nothing in between but layers that are the identity at test time (Dropout); find_gap_head reads that from the
deploy net and says why not otherwise. For any other net (lenet, mlp) the stage writes only index.json with
"has_cam": false and the reason, so the stage runs for every model and the report shows what applies.

Which images (select_images): from the model's evaluation (`caffepipe evaluate`, final snapshot), for every
true class, its first `cam.right_per_class` correctly classified test images (in test order: a fixed set) and its
`cam.wrong_per_class` most confident errors. For an error both maps are drawn side by side on one colour
scale: the predicted class's (why it said that) and the true class's (what it saw of the right answer).

The stage checks the identity on every image it draws: mean(M_c) + b_c against the net's own logits, for
every class; a net where they differ by more than IDENTITY_TOLERANCE is refused (not a CAM net after all).

Output folder (--out, written as a whole):
    index.json      {"model", "has_cam", "reason", "features" (blob), "feature_shape" [K, h, w], "classifier",
                     "input_shape", "identity_max_error", "images": [{"index", "label", "prediction",
                     "p_prediction", "p_label", "correct"}], "figures": [{"file", "caption", "kind"}]}
    cams.npz        index [n], label [n], prediction [n], maps [n, C, h, w] float32 (every class's map at the
                    feature resolution), bias [C]
    cam_right.png   one correctly classified image per class with its class's map
    cam_wrong.png   the errors: the image, the predicted class's map, the true class's map
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caffepipe.core.atomic import atomic_output
from caffepipe.core.errors import CaffepipeError
from caffepipe.pipeline.params import add_params_argument, load_params

log = logging.getLogger(__name__)

# Layers that leave a blob unchanged in the TEST phase, so they may sit between the pooling and the classifier.
IDENTITY_AT_TEST = ("Dropout",)
# |mean(M_c) + b_c - z_c|, in logits: float32 sums over K*h*w terms in two different orders.
IDENTITY_TOLERANCE = 1e-3
INPUT_BLOB = "data"


# ---- which nets have CAMs (pure: layer wiring in) ---------------------------------------------------------------

@dataclass(frozen=True)
class LayerWiring:
    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    global_average: bool = False        # a Pooling layer with global_pooling and pool AVE


@dataclass(frozen=True)
class GapHead:
    features: str           # the blob averaged: the A_k
    pooling: str            # the global average pooling layer
    classifier: str         # the one InnerProduct: the w_ck and b_c


def find_gap_head(layers: list[LayerWiring]) -> tuple[GapHead | None, str]:
    """(the GAP head, "") if the net has CAMs, else (None, why not)."""
    classifiers = [layer for layer in layers if layer.type == "InnerProduct"]
    if len(classifiers) != 1:
        return None, f"it has {len(classifiers)} InnerProduct layers; a CAM net has exactly one, after a global average pooling"
    classifier = classifiers[0]
    position = layers.index(classifier)
    pooled = classifier.bottoms[0]
    writers = [layer for layer in layers[:position] if pooled in layer.tops]
    producer = next((layer for layer in reversed(writers) if pooled not in layer.bottoms), None)
    if producer is None or not (producer.type == "Pooling" and producer.global_average):
        what = f"{producer.type} {producer.name!r}" if producer else "no layer"
        return None, f"the InnerProduct {classifier.name!r} reads {what}, not a global average pooling"
    between = [layer for layer in writers[writers.index(producer) + 1:] if layer.type not in IDENTITY_AT_TEST]
    if between:
        return None, f"{between[0].type} {between[0].name!r} changes the pooled features before the classifier"
    features = producer.bottoms[0]
    later = [layer for layer in layers[layers.index(producer) + 1:] if features in layer.tops]
    if later:
        return None, f"{later[0].name!r} changes {features!r} after it is pooled"
    return GapHead(features=features, pooling=producer.name, classifier=classifier.name), ""


# ---- the maps (pure: arrays in) ---------------------------------------------------------------------------------

def class_activation_maps(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """M[n, c] = sum_k weights[c, k] * features[n, k]: features [N, K, h, w], weights [C, K] -> [N, C, h, w]."""
    if features.shape[1] != weights.shape[1]:
        raise ValueError(f"{features.shape[1]} feature channels but classifier weights for {weights.shape[1]}")
    return np.einsum("ck,nkhw->nchw", weights.astype(np.float64), features.astype(np.float64))


def logits_from_maps(maps: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The logits the maps imply: each map's spatial mean plus the class's bias, [N, C]."""
    return maps.mean(axis=(2, 3)) + bias


def linear_resampling(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in] matrix of linear interpolation with pixel centres aligned (as image resizers do)."""
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    centres = np.clip(centres, 0, size_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    fraction = centres - low
    matrix = np.zeros((size_out, size_in))
    matrix[np.arange(size_out), low] += 1 - fraction
    matrix[np.arange(size_out), high] += fraction
    return matrix


def upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of the last two axes to height x width."""
    rows = linear_resampling(maps.shape[-2], height)
    columns = linear_resampling(maps.shape[-1], width)
    return np.einsum("yh,...hw,xw->...yx", rows, maps, columns)


# ---- which images (pure) ----------------------------------------------------------------------------------------

def select_images(labels: np.ndarray, probs: np.ndarray, right_per_class: int, wrong_per_class: int) -> list[dict[str, Any]]:
    """For each true class in order: its first `right_per_class` correct images (test order) and its
    `wrong_per_class` most confident errors (ties: test order). probs [N, C] of the final model."""
    predictions = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    chosen = []
    for label in range(probs.shape[1]):
        of_class = np.flatnonzero(labels == label)
        right = of_class[predictions[of_class] == label][:right_per_class]
        wrong = of_class[predictions[of_class] != label]
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:wrong_per_class]
        chosen.extend(int(index) for index in (*right, *wrong))
    return [{"index": index, "label": int(labels[index]), "prediction": int(predictions[index]),
             "p_prediction": float(probs[index, predictions[index]]), "p_label": float(probs[index, labels[index]]),
             "correct": bool(predictions[index] == labels[index])} for index in chosen]


# ---- the net (Caffe) --------------------------------------------------------------------------------------------

def net_wiring(net_param: Any) -> list[LayerWiring]:
    """LayerWiring of every layer of a NetParameter (the deploy prototxt)."""
    average = 1     # caffe_pb2.PoolingParameter.AVE
    return [LayerWiring(layer.name, layer.type, tuple(layer.bottom), tuple(layer.top),
                        layer.type == "Pooling" and layer.pooling_param.global_pooling
                        and layer.pooling_param.pool == average)
            for layer in net_param.layer]


@dataclass(frozen=True)
class CamResult:
    maps: np.ndarray            # [n, C, h, w]
    bias: np.ndarray            # [C]
    logits: np.ndarray          # [n, C] the net's own
    feature_shape: tuple[int, ...]


def compute_cams(net: Any, head: GapHead, images: np.ndarray, scale: float) -> CamResult:
    """Forward uint8 images [n, C, H, W] through a deploy net; every class's map and the net's logits."""
    net.blobs[INPUT_BLOB].reshape(*images.shape)
    net.reshape()
    net.blobs[INPUT_BLOB].data[...] = images.astype(np.float32) * np.float32(scale)
    net.forward()
    features = np.array(net.blobs[head.features].data, dtype=np.float32)
    classifier = net.params[head.classifier]
    weights, bias = np.array(classifier[0].data), np.array(classifier[1].data)
    logits = np.array(net.blobs[net.top_names[head.classifier][0]].data, dtype=np.float64)
    maps = class_activation_maps(features, weights)
    return CamResult(maps=maps, bias=bias.astype(np.float64), logits=logits, feature_shape=features.shape[1:])


def check_identity(result: CamResult, model: str) -> float:
    """The largest |mean(M_c) + b_c - z_c| over the images and classes; an error above IDENTITY_TOLERANCE."""
    error = float(np.max(np.abs(logits_from_maps(result.maps, result.bias) - result.logits)))
    if error > IDENTITY_TOLERANCE:
        raise CaffepipeError(f"{model}: the class maps' means plus biases differ from the net's logits by {error:.3g} "
                             f"(more than {IDENTITY_TOLERANCE}); the net is not a global-average-pooling net after all")
    return error


# ---- the stage --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CamRequest:
    model: str
    nets: Path
    weights: Path
    eval_dir: Path
    db: Path
    out: Path
    settings: dict[str, Any]       # params `cam`
    backend: str


def not_a_cam_net(request: CamRequest, reason: str) -> dict[str, Any]:
    index = {"model": request.model, "has_cam": False, "reason": reason, "images": [], "figures": []}
    with atomic_output(request.out, directory=True) as folder:
        (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    log.info("%s: no class activation maps (%s)", request.model, reason)
    return index


def run_cam(request: CamRequest) -> dict[str, Any]:
    from caffepipe.core.caffe_env import import_caffe  # noqa: PLC0415 — Caffe only when running the stage
    from caffepipe.data.datum import db_path, read_db  # noqa: PLC0415
    from caffepipe.evaluation import cam_figures  # noqa: PLC0415
    from caffepipe.evaluation.eval_files import read_evaluation  # noqa: PLC0415
    from caffepipe.training.models import INPUT_SCALE  # noqa: PLC0415
    from caffepipe.training.net_files import open_net, read_net  # noqa: PLC0415
    from caffepipe.training.nets_folder import DEPLOY_NET_FILE  # noqa: PLC0415

    caffe = import_caffe(threads=1)
    deploy = request.nets / DEPLOY_NET_FILE
    head, reason = find_gap_head(net_wiring(read_net(caffe.proto.caffe_pb2, deploy)))
    if head is None:
        return not_a_cam_net(request, reason)
    evaluation = read_evaluation(request.eval_dir, request.model)
    images, labels = read_db(db_path(request.db, "test", request.backend), request.backend)
    if not np.array_equal(labels, evaluation.labels):
        raise CaffepipeError(f"{request.eval_dir} was evaluated on other test images than those in {request.db}; "
                             "re-run `caffepipe evaluate`")
    chosen = select_images(evaluation.labels, evaluation.probs[-1], request.settings["right_per_class"],
                           request.settings["wrong_per_class"])
    indices = np.array([entry["index"] for entry in chosen], dtype=np.int64)
    net = open_net(caffe, deploy, request.weights)
    result = compute_cams(net, head, images[indices], INPUT_SCALE)
    identity_error = check_identity(result, request.model)
    predicted = result.logits.argmax(axis=1)
    if not np.array_equal(predicted, [entry["prediction"] for entry in chosen]):
        raise CaffepipeError(f"{request.weights} predicts otherwise than the evaluation in {request.eval_dir} "
                             "(its final snapshot); re-run `caffepipe evaluate`")
    index = {"model": request.model, "has_cam": True, "reason": "", "features": head.features,
             "feature_shape": list(result.feature_shape), "classifier": head.classifier,
             "input_shape": list(images.shape[1:]), "identity_max_error": identity_error, "images": chosen}
    upsampled = upsample(result.maps, *images.shape[-2:])
    with atomic_output(request.out, directory=True) as folder:
        np.savez_compressed(folder / "cams.npz", index=indices, label=labels[indices], prediction=predicted,
                            maps=result.maps.astype(np.float32), bias=result.bias.astype(np.float32))
        index["figures"] = cam_figures.draw_all(request.model, images[indices], upsampled, chosen, head, folder)
        (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    log.info("%s: class activation maps of %d test images (%s, %s), identity holds to %.2g", request.model,
             len(chosen), head.features, "x".join(map(str, result.feature_shape)), identity_error)
    return index


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="caffepipe cam", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_argument(parser)
    parser.add_argument("--model", required=True)
    parser.add_argument("--nets", required=True, type=Path, help="the model's nets folder (deploy.prototxt)")
    parser.add_argument("--weights", required=True, type=Path, help="the trained .caffemodel (final)")
    parser.add_argument("--eval", required=True, type=Path, help="the model's evaluation folder (data/eval/<model>)")
    parser.add_argument("--db", required=True, type=Path, help="the databases folder (data/db)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (reports/cam/<model>)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    run_cam(CamRequest(model=args.model, nets=args.nets, weights=args.weights, eval_dir=args.eval, db=args.db,
                       out=args.out, settings=params["cam"], backend=params["netgen"]["backend"]))
    return 0
