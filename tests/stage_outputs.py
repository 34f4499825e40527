"""Small stand-ins for the files the time, visualize, sobel and report stages read, shaped like the contracts.

- tiny_db: caffepipe's build-db on synthetic digits;
- tiny_nets: a small LeNet- or MLP-shaped train.prototxt / deploy.prototxt written with caffe.net_spec (same layer
  names as caffepipe's models), and a .caffemodel saved by pycaffe;
- upstream_reports: raw IDX files and source.json, bench-io's, parse-log's, train's reproducibility.json,
  evaluate's and analyze's outputs, with made-up numbers;
- cam_reports: `caffepipe cam`'s index.json per model (a CAM model's with two placeholder figures);
- figure_reports: time's, visualize's (net diagram included), sobel's and weight-stats' outputs;
- report_inputs, report_argv: all of those for `caffepipe report`, and its command line.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.conftest import synthetic_digits, tiny_params, write_params
from caffepipe.data.build_db import build_databases
from caffepipe.inspection.cpu_peak import CpuInfo, peak_flops
from caffepipe.inspection.flop_rate import flop_rates
from tests.idx_files import write_idx

MODEL_KINDS = ("lenet", "mlp")
# The report's stand-ins: the default pipeline's models, one of them with class activation maps
REPORT_MODELS = ("lenet", "mlp", "gapnet")
CAM_MODELS = ("gapnet",)


def tiny_db(folder: Path, train: int = 64, test: int = 32) -> Path:
    """<folder> with train_lmdb, test_lmdb, train_leveldb, test_leveldb, train_padded_* and info.json."""
    raw = folder.parent / f"{folder.name}-raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", train, 1), ("t10k", test, 2)):
        images, labels = synthetic_digits(count, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    build_databases(raw, folder, ["lmdb", "leveldb"], {"train": None, "test": None},
                    tiny_params()["build_db"]["train_pad"])       # the padded database of netgen.random_shift
    return folder


def _body(caffe, net, data, kind: str):
    L, P = caffe.layers, caffe.params
    filler = dict(type="xavier")
    if kind == "lenet":
        net.conv1 = L.Convolution(data, num_output=6, kernel_size=5, weight_filler=filler)
        net.pool1 = L.Pooling(net.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        net.conv2 = L.Convolution(net.pool1, num_output=8, kernel_size=5, weight_filler=filler)
        net.pool2 = L.Pooling(net.conv2, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        net.ip1 = L.InnerProduct(net.pool2, num_output=20, weight_filler=filler)
        net.relu1 = L.ReLU(net.ip1, in_place=True)
        net.ip2 = L.InnerProduct(net.relu1, num_output=10, weight_filler=filler)
        return net.ip2
    net.ip1 = L.InnerProduct(data, num_output=30, weight_filler=filler)
    net.relu1 = L.ReLU(net.ip1, in_place=True)
    net.ip2 = L.InnerProduct(net.relu1, num_output=16, weight_filler=filler)
    net.relu2 = L.ReLU(net.ip2, in_place=True)
    net.ip3 = L.InnerProduct(net.relu2, num_output=10, weight_filler=filler)
    return net.ip3


def tiny_nets(caffe, folder: Path, kind: str, train_source: str, batch_size: int = 8) -> tuple[Path, Path]:
    """Write <folder>/train.prototxt (Data layer reading the LMDB at train_source, as written) and
    deploy.prototxt, and <folder>/final.caffemodel with random weights; returns (nets folder, weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    train = caffe.NetSpec()
    train.data, train.label = caffe.layers.Data(source=train_source, backend=caffe.params.Data.LMDB, batch_size=batch_size,
                                                transform_param=dict(scale=0.00390625), ntop=2)
    train.loss = caffe.layers.SoftmaxWithLoss(_body(caffe, train, train.data, kind), train.label)
    (folder / "train.prototxt").write_text(str(train.to_proto()))
    deploy = caffe.NetSpec()
    deploy.data = caffe.layers.Input(shape=dict(dim=[1, 1, 28, 28]))
    deploy.prob = caffe.layers.Softmax(_body(caffe, deploy, deploy.data, kind))
    (folder / "deploy.prototxt").write_text(str(deploy.to_proto()))
    weights = folder / "final.caffemodel"
    caffe.Net(str(folder / "deploy.prototxt"), caffe.TEST).save(str(weights))
    return folder, weights


def stage_workdir(caffe, work: Path, **params) -> Path:
    """A working directory for the time, visualize and sobel stages: db/ (synthetic digits), nets/<model>/ for
    lenet and mlp (their Data layers read db/train_lmdb, relative to `work`) and params.yaml (tiny settings,
    with any section overrides given)."""
    tiny_db(work / "db")
    for kind in MODEL_KINDS:
        tiny_nets(caffe, work / "nets" / kind, kind, train_source="db/train_lmdb")
    write_params(work / "params.yaml", tiny_params(**{"netgen": {"models": list(MODEL_KINDS)}, **params}))
    return work


def _png(path: Path, seed: int = 0) -> Path:
    from caffepipe.core import figures

    figures.apply_style()
    fig, ax = figures.plt.subplots(figsize=(3, 2))
    ax.plot(np.random.default_rng(seed).random(10))
    return figures.save_figure(fig, path)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def upstream_reports(root: Path, models: tuple[str, ...] = MODEL_KINDS) -> dict[str, Path]:
    """raw/, bench/, train/, eval/, analysis/ (and analysis-metrics.json) and finetune/ under root, as fetch,
    bench-io, parse-log, train (its reproducibility.json, every model bit-reproducible), evaluate, analyze and
    finetune write them; returns the paths by name."""
    raw = root / "raw"
    raw.mkdir(parents=True)
    for prefix, count, seed in (("train", 120, 1), ("t10k", 40, 2)):
        images, labels = synthetic_digits(count, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    _write(raw / "source.json", json.dumps({"dataset": "mnist", "source": "synthetic test digits",
                                            "sha256": {"train-images-idx3-ubyte": "0" * 64}}))

    bench = root / "bench"
    _write(bench / "io.csv", "format,images_per_s,seconds\nlmdb,250000.5,0.1\nleveldb,180000.25,0.2\npng,9000.75,3.1\n")
    _write(bench / "metrics.json", json.dumps({"lmdb_images_per_s": 250000.5, "png_images_per_s": 9000.75,
                                                  "python_lmdb_over_jpeg_warm": 27.78, "caffe_lmdb_over_jpeg_warm": 10.6}))
    _png(bench / "io.png")

    train, eval_dir = root / "train", root / "eval"
    for number, model in enumerate(models):
        iterations = np.arange(0, 45, 5)
        _write(train / model / "train.csv", "iteration,loss,learning_rate\n" + "".join(
            f"{i},{2.3 * np.exp(-i / 20) + 0.05:.5f},0.01\n" for i in iterations))
        _write(train / model / "test.csv", "iteration,accuracy,loss\n" + "".join(
            f"{i},{0.1 + 0.8 * (1 - np.exp(-i / 15)):.4f},{2.3 * np.exp(-i / 15) + 0.1:.4f}\n" for i in (0, 20, 40)))
        _write(train / model / "metrics.json", json.dumps({"iteration": 40, "seconds": 2.0 + number, "test": {"accuracy": 0.78, "loss": 0.5},
                                                                   "train": {"loss": 0.2},
                                                                   "peak_memory_mb": 250.0 + number}))
        _write(train / model / "reproducibility.json", json.dumps({"blas_threads": [1], "bit_reproducible": True,
                                                                   "reproducibility_note": None}))
        _write(eval_dir / model / "metrics.json", json.dumps({"iteration": 40, "accuracy": 0.8 - 0.05 * number,
                                                              "error": 0.2 + 0.05 * number, "loss": 0.6, "errors": 8, "images": 40}))

    analysis = root / "analysis"
    _png(analysis / "errors_gallery_lenet.png", seed=1)
    _write(analysis / "class_error_rates_lenet.csv", "class,images,errors,error_rate\n" + "".join(
        f"{c},4,{c % 3},{(c % 3) / 4}\n" for c in range(10)))
    _png(analysis / "cnn_vs_mlp.png", seed=2)
    summary = {
        "questions": {"which": "Which images are misclassified?", "why": "Why?", "per_class": "Is every class equally likely to be wrong?",
                      "comparison": "CNN against MLP"},
        "models": list(models),
        "items": [
            {"question": "which", "kind": "figure", "path": "errors_gallery_lenet.png", "model": "lenet",
             "caption": "The most confident errors", "headline": {"label": "errors", "value": 8, "text": "8 of 40 test images are wrong"}},
            {"question": "per_class", "kind": "table", "path": "class_error_rates_lenet.csv", "model": "lenet",
             "caption": "Error rate per class", "headline": {"label": "worst class", "value": 2, "text": None}},
            {"question": "why", "kind": "table", "path": "confused_pairs_lenet.csv", "model": "lenet",
             "caption": "Class pairs lenet confuses", "headline": {"label": "most confused pair", "value": "4/9",
                                                                   "text": "4/9: 3 errors (37.50% of all)"}},
            {"question": "comparison", "kind": "figure", "path": "cnn_vs_mlp.png", "model": None,
             "caption": "Error over training", "headline": {"label": "final error", "value": {m: 0.2 for m in models}, "text": None}},
        ],
    }
    _write(analysis / "confused_pairs_lenet.csv", "pair,a,b,a_as_b,b_as_a,count,share,rank\n4/9,4,9,2,1,3,0.375,1\n"
                                                  "3/5,3,5,1,1,2,0.25,2\n")
    _write(analysis / "summary.json", json.dumps(summary))
    _write(root / "analysis-metrics.json", json.dumps({model: {
        "final_iteration": 40, "final_error": 0.2 + 0.05 * number, "final_errors": 8 + 2 * number, "final_loss": 0.6,
        "earliest_iteration": 10, "earliest_error": 0.7, "top_pair_share": 0.375, "chi2_p": 0.2, "worst_class_error": 0.5,
        "forgetting_events": 3, "images_forgotten": 3, "never_learned": 1} for number, model in enumerate(models)}))
    _write(analysis / "total_error_vs_iteration.csv", "model,iteration,error,loss,errors\n" + "".join(
        f"{model},{i},{0.9 * np.exp(-i / 15) + 0.05 * number:.4f},1.0,{int(36 * np.exp(-i / 15))}\n"
        for number, model in enumerate(models) for i in (10, 20, 40)))

    finetune = root / "finetune"
    modes, sizes = ("last_layer", "full", "scratch"), (20, 50)
    _write(finetune / "runs.csv", "mode,size,iterations,accuracy,loss,seconds\n" + "".join(
        f"{mode},{size},20,{0.5 + 0.1 * m + size / 500:.3f},{1.2 - 0.1 * m:.3f},{0.5 + m:.2f}\n"
        for size in sizes for m, mode in enumerate(modes)))
    _write(finetune / "curves.csv", "mode,iteration,accuracy,loss\n" + "".join(
        f"{mode},{i},{0.1 + 0.02 * i + 0.05 * m:.3f},{2.3 - 0.05 * i:.3f}\n" for m, mode in enumerate(modes) for i in (0, 10, 20)))
    _write(finetune / "weight_change.csv", "mode,size,layer,relative_change\n" + "".join(
        f"{mode},{size},{layer},{0.0 if mode == 'last_layer' else 0.01 * (m + 1)}\n"
        for size in sizes for m, mode in enumerate(modes) for layer in ("conv1", "ip1")))
    return {"raw": raw, "bench": bench, "train": train, "eval": eval_dir, "analysis": analysis,
            "analysis_metrics": root / "analysis-metrics.json", "finetune": finetune}


STAND_IN_SVG = ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<svg width="120pt" height="40pt" '
                'viewBox="0 0 120 40" xmlns="http://www.w3.org/2000/svg"><text x="4" y="24">{text}</text></svg>\n')


def weight_stats_reports(folder: Path, model: str) -> None:
    """<folder> as `caffepipe weight-stats` writes it for one model: two snapshots, made-up numbers."""
    _write(folder / "weights.csv", "iteration,layer,blob,count,mean,std,norm,relative_change,change_per_1k\n"
           "10,ip1,weights,100,0.0,0.1,1.0,,\n10,ip1,biases,10,0.0,0.0,0.0,,\n"
           "40,ip1,weights,100,0.0,0.2,2.0,1.0,33.3\n40,ip1,biases,10,0.1,0.01,0.3,,\n")
    _write(folder / "norms.csv", "iteration,layer,weight_norm\n10,ip1,1.0\n40,ip1,2.0\n")
    _write(folder / "histograms.csv", "iteration,layer,left,right,count\n10,ip1,-1.0,0.0,50\n10,ip1,0.0,1.0,50\n")
    _write(folder / "activations.csv", "iteration,layer,type,top,mean,std,dead_fraction\n"
           "10,ip1,InnerProduct,ip1,0.1,1.0,\n10,relu1,ReLU,ip1,0.4,0.5,0.1\n"
           "40,ip1,InnerProduct,ip1,0.2,1.5,\n40,relu1,ReLU,ip1,0.6,0.8,0.125\n")
    figures_index = []
    for number, name in enumerate(("weights", "histograms", "activations")):
        _png(folder / f"{name}.png", seed=6 + number)
        figures_index.append({"file": f"{name}.png", "caption": f"{model}: {name} over training"})
    _write(folder / "summary.json", json.dumps({
        "model": model, "iterations": [10, 40], "activation_images": 8, "settled_change": 0.01, "figures": figures_index,
        "observations": [{"layer": "ip1", "kind": "weights", "text": f"{model}'s ip1 weights still move at the end."},
                         {"layer": "relu1", "kind": "dead_relu", "text": "relu1 (on ip1) has 12% dead units at the end."}]}))


# A made-up AVX2 machine for time's machine.json; one thread: 1 core x 3000 MHz x 8 floats x 2 flops x 2 FMA units
# = 96 GFLOP/s
STAND_IN_CPU = CpuInfo(model_name="Stand-in CPU", vendor="GenuineIntel", family=6, model=85, mhz=3000.0,
                       flags=frozenset({"sse", "avx", "avx2", "fma"}), physical_cores=2)


def time_flop_reports(folder: Path, model: str) -> None:
    """complexity.json, machine.json and flop_rate.json as `caffepipe time` writes them, made by its own functions
    from made-up counts that match figure_reports' layers.csv and totals.json (batch 8; conv1: 0.2 ms forward,
    0.3 ms backward). conv1's 288,000 multiply-adds per image: forward 23.04 GFLOP/s, 24% of the peak; backward
    15.36 GFLOP/s, 16%; the whole forward-backward pass 576,000 x 8 in 4.7 ms: 1.96 GFLOP/s, 2.04%."""
    cost = {"model": model, "parameters": 431080, "statistics": 0, "multiply_adds": 288000,
            "backward_multiply_adds": 288000, "layers": [
                {"name": "conv1", "type": "Convolution", "parameters": 520, "multiply_adds": 288000,
                 "backward_multiply_adds": 288000, "top": [[20, 24, 24]]}]}
    machine = peak_flops(STAND_IN_CPU, threads=1)
    totals = {"forward_ms": 2.4, "backward_ms": 2.3, "forward_backward_ms": 4.7}
    _write(folder / "complexity.json", json.dumps(cost))
    _write(folder / "machine.json", json.dumps(machine))
    _write(folder / "flop_rate.json", json.dumps(flop_rates(model, cost, {"conv1": (0.2, 0.3)}, totals, 8, machine)))


def figure_reports(root: Path, models: tuple[str, ...] = MODEL_KINDS) -> dict[str, Path]:
    """time/, visualize/, sobel/ and weights/ under root as `caffepipe time`, `visualize`, `sobel` and
    `weight-stats` write them, with made-up numbers and placeholder figures; returns the folders by name."""
    time_dir, visualize, sobel, weights = root / "time", root / "visualize", root / "sobel", root / "weights"
    for model in models:
        _write(time_dir / model / "layers.csv", "layer,forward_ms,backward_ms\ndata,0.03,0.0\nconv1,0.2,0.3\nloss,0.01,0.001\n")
        _write(time_dir / model / "totals.json", json.dumps({"model": model, "threads": 1, "forward_ms": 2.4, "backward_ms": 2.3,
                                                            "forward_backward_ms": 4.7, "iterations": 2, "batch_size": 8}))
        _write(time_dir / model / "throughput.json", json.dumps({"model": model, "threads": 1, "net": "deploy", "batch_sizes": [
            {"batch_size": size, "passes": 2, "median_ms_per_batch": 0.2 * size, "min_ms_per_batch": 0.19 * size,
             "ms_per_image": 0.2, "images_per_s": 5000.0} for size in (1, 8)]}))
        _png(time_dir / model / "layers.png", seed=3)
        time_flop_reports(time_dir / model, model)
        _png(visualize / model / "filters.png", seed=4)
        _write(visualize / model / "net.svg", STAND_IN_SVG.format(text=f"{model} net"))
        _write(visualize / model / "index.json", json.dumps({"model": model, "samples": [], "figures": [
            {"file": "filters.png", "caption": f"{model}: first-layer filters", "kind": "filters", "layer": "conv1"}],
            "diagram": {"file": "net.svg", "caption": f"{model}: the deploy net", "layers": ["data", "ip1", "prob"]}}))
        weight_stats_reports(weights / model, model)
    _png(sobel / "sobel.png", seed=5)
    _write(sobel / "index.json", json.dumps({"figures": [{"file": "sobel.png", "caption": "Sobel", "kind": "sobel"}],
                                             "kernels": {"sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
                                                         "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]}}))
    return {"time": time_dir, "visualize": visualize, "sobel": sobel, "weights": weights}


def cam_reports(root: Path, models: tuple[str, ...] = MODEL_KINDS) -> dict[str, Path]:
    """cam/<model>/index.json as `caffepipe cam` writes it: the models of CAM_MODELS with maps (two placeholder
    figures), the others without, with the reason."""
    cam = root / "cam"
    for model in models:
        if model not in CAM_MODELS:
            _write(cam / model / "index.json", json.dumps({"model": model, "has_cam": False, "images": [], "figures": [],
                                                          "reason": "it has 2 InnerProduct layers"}))
            continue
        _png(cam / model / "cam_right.png", seed=6)
        _png(cam / model / "cam_wrong.png", seed=7)
        images = [{"index": 3, "label": 0, "prediction": 0, "p_prediction": 0.99, "p_label": 0.99, "correct": True},
                  {"index": 8, "label": 1, "prediction": 7, "p_prediction": 0.8, "p_label": 0.1, "correct": False}]
        _write(cam / model / "index.json", json.dumps({
            "model": model, "has_cam": True, "reason": "", "features": "conv5", "feature_shape": [64, 7, 7],
            "classifier": "ip", "input_shape": [1, 28, 28], "identity_max_error": 2e-6, "images": images,
            "figures": [{"file": "cam_right.png", "kind": "right", "caption": f"{model}: right answers"},
                        {"file": "cam_wrong.png", "kind": "wrong", "caption": f"{model}: errors"}]}))
    return {"cam": cam}


def report_inputs(root: Path) -> dict[str, Path]:
    """Every folder `caffepipe report` reads (stand-ins, as above), tiny params.yaml, and where the page goes."""
    folders = {**upstream_reports(root, REPORT_MODELS), **figure_reports(root, REPORT_MODELS),
               **cam_reports(root, REPORT_MODELS)}
    folders["params"] = write_params(root / "params.yaml", tiny_params(netgen={"models": list(REPORT_MODELS)}))
    folders["out"] = root / "reports" / "index.html"
    return folders


def report_argv(inputs: dict[str, Path]) -> list[str]:
    """`caffepipe report`'s arguments for the folders of report_inputs."""
    argv = ["--params", str(inputs["params"]), "--out", str(inputs["out"])]
    for name in ("raw", "bench", "train", "eval", "analysis", "analysis_metrics", "time", "visualize", "sobel", "finetune",
                 "cam", "weights"):
        argv += [f"--{name.replace('_', '-')}", str(inputs[name])]
    return argv
