"""`caffepipe predict`: label your own image files with a trained model.

    caffepipe predict --nets data/nets/lenet --weights data/train/lenet/final.caffemodel my_digit.jpg
    caffepipe predict --deploy deploy.prototxt --weights model.caffemodel --scale 0.00390625 \\
        --dataset fashion-mnist 'photos/*.png' scans/

Inputs are files, folders (their PNG, JPEG, BMP, GIF, TIFF and WebP files) and globs (quoted, or expanded by the
shell). Each image is converted the way the training data was made: grey, MNIST's white-on-black polarity
(--invert auto|yes|no; auto inverts an image whose border is light), the net's input size (--fit mnist|square,
see caffepipe.inference.images), then scaled as the net's Data layers scale their pixels. The deploy net's
Input layer carries no transform_param, so the scale (and mean) is read from the test net beside it
(test.prototxt, else train.prototxt, as `caffepipe netgen` writes them) or given with --scale: the same
pixels as in training, whatever scale the net was trained with, never a guessed 1/256.

Prints a table of each image's top-k classes with their probabilities (the deploy net's "prob" blob) and writes
into --out: predictions.csv (one row per image and rank: file, rank, class, name, probability, inverted, and
label when known) and predictions.json (the model, the conversion, every image's top k, and the files that
could not be read). Class names come from --dataset, or from the source.json `caffepipe fetch` wrote (--source).

A file that cannot be read (missing, not an image, truncated) is reported on stderr, one line each, and the
rest are still classified; the exit status is non-zero only when no image at all could be classified.

In the pipeline (`--exported data/images`), the stage predicts the first `predict.count` images that
`caffepipe export-images` wrote, in `predict.format`, and writes metrics.json: how often the top class agrees
with the image's label. Those are training images (export-images writes the training set's first images), so
the agreement checks the conversion from files, not how well the model generalises: evaluate does that.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from caffepipe.core.atomic import write_text_atomic
from caffepipe.core.errors import CaffepipeError
from caffepipe.core.upstream import read_json
from caffepipe.data.class_names import CLASS_NAMES
from caffepipe.inference.images import FIT_CHOICES, INVERT_CHOICES, convert_image, load_image
from caffepipe.pipeline.params import load_params
from caffepipe.training.input_transform import InputTransform, transform_beside
from caffepipe.training.nets_folder import DEPLOY_NET_FILE, TEST_NET_FILE, TRAIN_NET_FILE

log = logging.getLogger(__name__)

INPUT_BLOB = "data"
OUTPUT_BLOB = "prob"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GLOB_CHARACTERS = set("*?[")
# Settings a user may give as flags; the pipeline stage takes them from params `predict`.
DEFAULTS = {"top_k": 3, "invert": "auto", "fit": "mnist"}
PREDICTIONS_CSV, PREDICTIONS_JSON, METRICS_JSON = "predictions.csv", "predictions.json", "metrics.json"


@dataclass(frozen=True)
class ImageInput:
    path: Path
    label: int | None = None


@dataclass(frozen=True)
class Prediction:
    path: Path
    probabilities: np.ndarray      # float32 [K]
    inverted: bool
    label: int | None


# ---- which files ------------------------------------------------------------------------------------------

def folder_images(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def expand_inputs(arguments: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files named by files, folders and globs, in order, and (argument, problem) for those that name none."""
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = folder_images(path)
            files += found
            if not found:
                problems.append((argument, f"the folder holds no image file ({', '.join(IMAGE_SUFFIXES)})"))
        elif path.exists() or not GLOB_CHARACTERS & set(argument):
            files.append(path)        # a missing file is reported when it is read, like any unreadable one
        else:
            matches = sorted(Path(match) for match in glob.glob(argument, recursive=True) if Path(match).is_file())
            files += matches
            if not matches:
                problems.append((argument, "no file matches this pattern"))
    return list(dict.fromkeys(files)), problems


def exported_inputs(images: Path, image_format: str, count: int) -> list[ImageInput]:
    """The first `count` images export-images wrote in `image_format`, with their labels (its ImageData list)."""
    manifest = read_json(images / "manifest.json", "export-images")
    entry = manifest.get("formats", {}).get(image_format) if isinstance(manifest, dict) else None
    if entry is None:
        raise CaffepipeError(f"{images / 'manifest.json'} lists no {image_format!r} images; re-run `caffepipe export-images`")
    lines = (images / entry["list"]).read_text().split("\n")
    listed = [line.rsplit(" ", 1) for line in lines if line.strip()]
    if len(listed) < count:
        raise CaffepipeError(f"predict.count is {count} but {images} holds {len(listed)} {image_format} images; "
                             "lower predict.count or raise export_images.count")
    return [ImageInput(images / entry["folder"] / name, int(label)) for name, label in listed[:count]]


# ---- the model --------------------------------------------------------------------------------------------

def input_transform(caffe_pb2: Any, deploy: Path, scale: float | None) -> InputTransform:
    """--scale if given, else what the test (or train) net beside the deploy net does to its pixels (its mean
    image too, for CIFAR-10's nets)."""
    if scale is not None:
        return InputTransform(scale, 0.0, "--scale")
    transform = transform_beside(caffe_pb2, deploy)
    if transform is None:
        raise CaffepipeError(f"no {TEST_NET_FILE} or {TRAIN_NET_FILE} with a transform_param beside {deploy} says how "
                             "the net's pixels were scaled; give --scale (0.00390625 for caffepipe's and Caffe's MNIST nets)")
    return transform


def open_model(caffe: Any, deploy: Path, weights: Path) -> Any:
    """The deploy net with its weights, checked to take grey or RGB images and to output probabilities."""
    from caffepipe.training.net_files import open_net  # noqa: PLC0415

    net = open_net(caffe, deploy, weights)
    if INPUT_BLOB not in net.blobs or OUTPUT_BLOB not in net.blobs:
        raise CaffepipeError(f"{deploy}: a deploy net needs an input blob {INPUT_BLOB!r} and a Softmax output "
                             f"{OUTPUT_BLOB!r} (as `caffepipe netgen` writes them)")
    shape = net.blobs[INPUT_BLOB].data.shape
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise CaffepipeError(f"{deploy} takes input of shape {tuple(shape)}; predict feeds grey (N, 1, H, W) or "
                             "RGB (N, 3, H, W) images")
    return net


def class_names_of(dataset: str | None, source: Path | None, classes: int) -> list[str]:
    """Class names from --dataset, else from fetch's source.json; numbers when neither is given."""
    if dataset is None and source is not None:
        recorded = read_json(source, "fetch")
        dataset = recorded.get("dataset") if isinstance(recorded, dict) else None
        if dataset not in CLASS_NAMES:
            raise CaffepipeError(f"{source} names no known dataset ({dataset!r}); give --dataset "
                                 f"({' or '.join(CLASS_NAMES)}) or re-run `caffepipe fetch`")
    if dataset is None:
        return [str(k) for k in range(classes)]
    names = CLASS_NAMES[dataset]
    if len(names) != classes:
        raise CaffepipeError(f"the net has {classes} outputs but {dataset} has {len(names)} classes; "
                             "give the --dataset the model was trained on")
    return list(names)


def forward(net: Any, pixels: np.ndarray, transform: InputTransform) -> np.ndarray:
    """float32 [N, K]: the "prob" blob for uint8 images [N, H, W] (grey) or [N, C, H, W], transformed as the Data
    layers do."""
    images = pixels if pixels.ndim == 4 else pixels[:, np.newaxis]
    data = net.blobs[INPUT_BLOB]
    data.reshape(*images.shape)
    net.reshape()
    data.data[...] = transform.apply(images)
    net.forward()
    return np.array(net.blobs[OUTPUT_BLOB].data, dtype=np.float32).reshape(len(pixels), -1)


# ---- reading and classifying ------------------------------------------------------------------------------

def convert_all(inputs: list[ImageInput], size: tuple[int, int], invert: str, fit: str, channels: int = 1
                ) -> tuple[list[tuple[ImageInput, np.ndarray, bool]], list[tuple[str, str]]]:
    """Each readable image's net-sized pixels and whether it was inverted; (file, reason) for the others."""
    converted, problems = [], []
    for item in inputs:
        try:
            image = load_image(item.path)
        except FileNotFoundError:
            problems.append((str(item.path), "no such file"))
            continue
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            problems.append((str(item.path), f"not a readable image ({error})"))
            continue
        result = convert_image(image, size, invert=invert, fit=fit, channels=channels)
        converted.append((item, result.pixels, result.inverted))
    return converted, problems


def classify(net: Any, converted: list[tuple[ImageInput, np.ndarray, bool]], transform: InputTransform) -> list[Prediction]:
    probabilities = forward(net, np.stack([pixels for _, pixels, _ in converted]), transform)
    return [Prediction(item.path, probs, inverted, item.label)
            for (item, _, inverted), probs in zip(converted, probabilities)]


def top_classes(probabilities: np.ndarray, k: int) -> list[int]:
    """The k most probable classes, most probable first; the lower class first on a tie."""
    return [int(c) for c in np.argsort(-probabilities, kind="stable")[:k]]


# ---- what it writes ---------------------------------------------------------------------------------------

def format_table(predictions: list[Prediction], names: list[str], k: int) -> str:
    """The printed table: one line per image, its top k classes with their probabilities."""
    k = min(k, len(names))
    header = ["image", "inverted"] + [f"top {rank}" for rank in range(1, k + 1)]
    rows = [[str(p.path), "yes" if p.inverted else "no"] +
            [f"{names[c]} {p.probabilities[c]:.3f}" for c in top_classes(p.probabilities, k)] for p in predictions]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows])


def predictions_csv(predictions: list[Prediction], names: list[str], k: int) -> str:
    with_labels = any(p.label is not None for p in predictions)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "rank", "class", "name", "probability", "inverted"] + (["label"] if with_labels else []))
    for p in predictions:
        for rank, c in enumerate(top_classes(p.probabilities, k), start=1):
            label = [p.label] if with_labels else []
            writer.writerow([str(p.path), rank, c, names[c], f"{p.probabilities[c]:.6f}", int(p.inverted)] + label)
    return buffer.getvalue()


def predictions_record(predictions: list[Prediction], names: list[str], k: int, model: dict[str, Any],
                       problems: list[tuple[str, str]]) -> dict[str, Any]:
    images = []
    for p in predictions:
        top = [{"class": c, "name": names[c], "probability": float(p.probabilities[c])}
               for c in top_classes(p.probabilities, k)]
        images.append({"file": str(p.path), "inverted": p.inverted, "top": top,
                       **({"label": p.label} if p.label is not None else {})})
    return {"model": model, "classes": names, "images": images,
            "unreadable": [{"file": name, "reason": reason} for name, reason in problems]}


def agreement_metrics(predictions: list[Prediction], k: int) -> dict[str, Any]:
    """How often the top class (and the top k) holds the label, over the labelled images."""
    labelled = [p for p in predictions if p.label is not None]
    top1 = sum(top_classes(p.probabilities, 1)[0] == p.label for p in labelled)
    topk = sum(p.label in top_classes(p.probabilities, k) for p in labelled)
    return {"images": len(labelled), "agreement": top1 / len(labelled) if labelled else None,
            f"top_{k}_agreement": topk / len(labelled) if labelled else None,
            "inverted": sum(p.inverted for p in labelled)}


def write_outputs(out: Path, predictions: list[Prediction], names: list[str], k: int, model: dict[str, Any],
                  problems: list[tuple[str, str]]) -> None:
    write_text_atomic(out / PREDICTIONS_CSV, predictions_csv(predictions, names, k))
    record = predictions_record(predictions, names, k, model, problems)
    write_text_atomic(out / PREDICTIONS_JSON, json.dumps(record, indent=2) + "\n")
    if any(p.label is not None for p in predictions):
        metrics = {"model": model.get("name"), **agreement_metrics(predictions, k)}
        write_text_atomic(out / METRICS_JSON, json.dumps(metrics, indent=2) + "\n")


# ---- the command ------------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="caffepipe predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", help="image files, folders or globs")
    net = parser.add_mutually_exclusive_group(required=True)
    net.add_argument("--nets", type=Path, help="a model's nets folder (data/nets/<model>): its deploy.prototxt, and "
                                                "its test.prototxt for the pixel scale")
    net.add_argument("--deploy", type=Path, help="a deploy prototxt (Input 'data' -> ... -> Softmax 'prob')")
    parser.add_argument("--weights", type=Path, required=True, help="the trained .caffemodel")
    parser.add_argument("--scale", type=float, default=None,
                        help="pixel scale (default: the transform_param of test.prototxt or train.prototxt beside the deploy net)")
    names = parser.add_mutually_exclusive_group()
    names.add_argument("--dataset", choices=sorted(CLASS_NAMES), help="whose class names to print")
    names.add_argument("--source", type=Path, help="the source.json `caffepipe fetch` wrote (data/raw/source.json): "
                                                   "its dataset's class names (default: class numbers)")
    parser.add_argument("--top-k", type=int, default=None, help=f"classes shown per image (default {DEFAULTS['top_k']})")
    parser.add_argument("--invert", choices=INVERT_CHOICES, default=None,
                        help="make the image white on black: auto (default) inverts when its border is light")
    parser.add_argument("--fit", choices=FIT_CHOICES, default=None,
                        help="mnist (default): crop to the ink, fit 20x20, centre by mass in 28x28, as MNIST was "
                             "made; square: pad to a square and shrink, pixels otherwise untouched")
    parser.add_argument("--out", type=Path, default=Path("predictions"),
                        help="folder for predictions.csv and predictions.json (default: ./predictions)")
    parser.add_argument("--params", type=Path, default=None,
                        help="params.yaml: take top_k, invert and fit from its `predict` section (the pipeline)")
    parser.add_argument("--exported", type=Path, default=None,
                        help="the folder export-images wrote (data/images): predict its first predict.count images "
                             "in predict.format and write metrics.json; needs --params")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args(argv)
    if args.exported is not None and (args.params is None or args.images):
        parser.error("--exported needs --params and takes no image arguments")
    if args.exported is None and not args.images:
        parser.error("name at least one image file, folder or glob")
    return args


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """top_k, invert and fit: a flag, else params `predict`, else DEFAULTS."""
    section = load_params(args.params)["predict"] if args.params is not None else {}
    chosen = {key: getattr(args, key) if getattr(args, key) is not None else section.get(key, default)
              for key, default in DEFAULTS.items()}
    if chosen["top_k"] < 1:
        raise CaffepipeError(f"--top-k must be at least 1, not {chosen['top_k']}")
    return chosen | {"section": section}


def report_problems(problems: list[tuple[str, str]]) -> None:
    for name, reason in problems:
        print(f"caffepipe predict: skipped {name}: {reason}", file=sys.stderr)


def predict(args: argparse.Namespace) -> list[Prediction]:
    from caffepipe.core.caffe_env import import_caffe  # noqa: PLC0415 — Caffe only when predicting

    chosen = settings(args)
    if args.exported is not None:
        inputs = exported_inputs(args.exported, chosen["section"]["format"], chosen["section"]["count"])
        problems: list[tuple[str, str]] = []
    else:
        files, problems = expand_inputs(args.images)
        inputs = [ImageInput(path) for path in files]
    deploy = args.deploy if args.deploy is not None else args.nets / DEPLOY_NET_FILE
    caffe = import_caffe(threads=args.threads)
    from caffe.proto import caffe_pb2  # noqa: PLC0415
    transform = input_transform(caffe_pb2, deploy, args.scale)
    net = open_model(caffe, deploy, args.weights)
    channels, *size = (int(d) for d in net.blobs[INPUT_BLOB].data.shape[1:])
    size = tuple(size)
    names = class_names_of(args.dataset, args.source, int(np.prod(net.blobs[OUTPUT_BLOB].data.shape[1:])))

    # MNIST's digit normalisation and polarity mean nothing for colour photos: an RGB net's images are fitted square
    fit, invert = (chosen["fit"], chosen["invert"]) if channels == 1 else ("square", "no")
    converted, unreadable = convert_all(inputs, size, invert, fit, channels)
    problems += unreadable
    report_problems(problems)
    if not converted:
        raise CaffepipeError(f"no image could be classified: all {len(problems)} inputs were skipped (each is named above)")
    predictions = classify(net, converted, transform)
    print(format_table(predictions, names, chosen["top_k"]))
    model = {"name": (args.nets or deploy.parent).name, "deploy": str(deploy), "weights": str(args.weights),
             "input_scale": transform.scale, "input_mean": transform.describe_mean(), "transform_from": transform.source,
             "invert": invert, "fit": fit, "channels": channels}
    write_outputs(args.out, predictions, names, chosen["top_k"], model, problems)
    log.info("%d images classified, %d inputs unreadable; wrote %s", len(predictions), len(problems), args.out)
    return predictions


def main(argv: list[str]) -> int:
    predict(parse_args(argv))
    return 0
