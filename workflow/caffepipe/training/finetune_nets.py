"""Net surgery for fine-tuning: a source model's deploy net turned into the train, test and deploy nets of one
fine-tuning mode on a target dataset.

Why from the deploy net (a NetParameter) rather than from models.py's net_spec functions: the source may be
any .caffemodel with its deploy prototxt (finetune.weights / finetune.deploy), not only a model this
pipeline defines, and the pipeline's own models have their deploy net in data/nets/<model>/ anyway. One
path serves both. The nets keep every layer of the source's body unchanged (names, shapes, fillers), so
Caffe's `Net::CopyTrainedLayersFrom` copies the source weights into them by layer name; only three things
change:

- the input: the deploy net's Input layer becomes a Data layer (the target's database, pixels scaled by
  models.INPUT_SCALE, as netgen's nets read them), and the head becomes SoftmaxWithLoss (+ Accuracy);
- the classifier (the last layer with parameters, which feeds the Softmax) is renamed `<name>_target`, so
  Caffe does not copy the source's weights into it and it starts from its fillers, with as many outputs as
  the target has classes;
- the learning-rate multipliers, by mode:
    last_layer  lr_mult 0 and decay_mult 0 on every other layer. Caffe then decides by itself that no layer
                below the classifier needs a backward pass (a layer needs one only if a parameter of its
                learns or a bottom needs a gradient; Net::Init logs "<layer> does not need backward
                computation"), and the classifier gets propagate_down: false, so not even its bottom diff
                is computed. SGD's update of a blob with lr_mult 0 is exactly zero, so the frozen weights
                stay byte-identical to the source.
    full        every layer learns, the transferred ones at finetune.base_lr_mult times their multiplier.
    scratch     the same net trained from its fillers (no weights copied) at the source's multipliers:
                the baseline that says what the transfer is worth.

The weights themselves are checked against the net by `caffepipe train` (initial_weights.py). plan_surgery
and the other functions before the proto section are pure (layer names in, decisions out), so
tests/unit/test_finetune_nets.py checks them without Caffe.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caffepipe.core.errors import CaffepipeError

MODES = ("last_layer", "full", "scratch")
CLASSIFIER_SUFFIX = "_target"
# A parameter spec Caffe assumes when a layer gives none: lr_mult 1, decay_mult 1.
DEFAULT_MULT = 1.0


@dataclass(frozen=True)
class Surgery:
    """What changes in the net for one mode."""
    mode: str
    classifier: str                      # the source's classifier layer, renamed to `renamed`
    transferred: tuple[str, ...]         # layers whose weights come from the source (none for scratch)
    lr_scale: dict[str, float]           # each parameter layer's factor on its lr_mults (0: frozen)

    @property
    def renamed(self) -> str:
        return self.classifier + CLASSIFIER_SUFFIX

    @property
    def frozen(self) -> tuple[str, ...]:
        return tuple(name for name, scale in self.lr_scale.items() if scale == 0)


def plan_surgery(param_layers: list[str], mode: str, base_lr_mult: float) -> Surgery:
    """The surgery of a net whose parameter layers are `param_layers`, in order (the last is the classifier)."""
    if mode not in MODES:
        raise CaffepipeError(f"unknown fine-tuning mode {mode!r}; modes: {', '.join(MODES)}")
    if len(param_layers) < 2:
        only = f" (only {param_layers[0]!r}, the classifier)" if param_layers else ""
        raise CaffepipeError(f"the source model has no layer left to transfer{only}: fine-tuning replaces its "
                             f"classifier and needs at least one layer with weights below it")
    *base, classifier = param_layers
    base_scale = {"last_layer": 0.0, "full": base_lr_mult, "scratch": 1.0}[mode]
    lr_scale = {name: base_scale for name in base}
    lr_scale[classifier] = 1.0
    transferred = () if mode == "scratch" else tuple(base)
    return Surgery(mode, classifier, transferred, lr_scale)


def scaled_multipliers(multipliers: list[float], blobs: int, scale: float) -> list[float]:
    """A layer's lr_mult per blob times `scale`; blobs without a param spec count as Caffe's default 1."""
    full = list(multipliers) + [DEFAULT_MULT] * (blobs - len(multipliers))
    return [multiplier * scale for multiplier in full]


# ---- the proto side (caffe_pb2 messages) ------------------------------------------------------------------

def param_layers_of(deploy: Any, weights: dict[str, list]) -> list[str]:
    """The deploy net's layers that have weights in the source .caffemodel, in the net's order."""
    return [layer.name for layer in deploy.layer if layer.name in weights]


def _input_layer(deploy: Any, path: Path) -> Any:
    inputs = [layer for layer in deploy.layer if layer.type == "Input"]
    if len(inputs) != 1 or len(inputs[0].top) != 1:
        raise CaffepipeError(f"{path}: a deploy net with one Input layer of one top is needed, "
                             f"found {len(inputs)} Input layers")
    return inputs[0]


def _softmax_head(deploy: Any, path: Path) -> Any:
    last = deploy.layer[-1]
    if last.type != "Softmax":
        raise CaffepipeError(f"{path}: the deploy net must end in a Softmax layer (the class probabilities), "
                             f"not {last.type} {last.name!r}")
    return last


def _body(caffe_pb2: Any, deploy: Any, surgery: Surgery, classes: int, blobs: dict[str, int],
          training: bool = False) -> list[Any]:
    """The deploy net's layers between Input and Softmax, with the classifier renamed and the lr_mults set.

    A deploy net's BatchNorm layers use their stored statistics (use_global_stats: true); in the train net
    they normalise by each batch's, as netgen's train nets do (models.py), unless the mode freezes them
    (last_layer): a frozen BatchNorm keeps the source's statistics, byte for byte like every frozen weight."""
    body = []
    for source in deploy.layer[:-1]:
        if source.type == "Input":
            continue
        layer = caffe_pb2.LayerParameter()
        layer.CopyFrom(source)
        if layer.type == "BatchNorm":
            learns = training and surgery.lr_scale.get(layer.name, DEFAULT_MULT) != 0
            layer.batch_norm_param.use_global_stats = not learns
        if layer.name in surgery.lr_scale:
            _set_multipliers(layer, blobs[layer.name], surgery.lr_scale[layer.name])
        if layer.name == surgery.classifier:
            _make_classifier(layer, surgery, classes)
        body.append(layer)
    return body


def _set_multipliers(layer: Any, blobs: int, scale: float) -> None:
    multipliers = scaled_multipliers([spec.lr_mult for spec in layer.param], blobs, scale)
    while len(layer.param) < blobs:
        layer.param.add()
    for spec, multiplier in zip(layer.param, multipliers):
        spec.lr_mult = multiplier
        if scale == 0:
            spec.decay_mult = 0      # frozen: no weight decay either (it would be multiplied by 0 anyway)


def _make_classifier(layer: Any, surgery: Surgery, classes: int) -> None:
    layer.name = surgery.renamed
    for index, top in enumerate(layer.top):
        if top == surgery.classifier:
            layer.top[index] = surgery.renamed
    for field in ("inner_product_param", "convolution_param"):
        if layer.HasField(field):
            getattr(layer, field).num_output = classes
            break
    else:
        raise CaffepipeError(f"the classifier {surgery.classifier!r} is a {layer.type} layer; fine-tuning renames an "
                             f"InnerProduct or Convolution classifier")
    if surgery.mode == "last_layer":
        del layer.propagate_down[:]
        layer.propagate_down.extend([False] * len(layer.bottom))


def _rename_bottoms(layer: Any, old: str, new: str) -> None:
    for index, bottom in enumerate(layer.bottom):
        if bottom == old:
            layer.bottom[index] = new


@dataclass(frozen=True)
class DataInput:
    source: str            # an LMDB folder
    batch_size: int


def finetune_nets(caffe_pb2: Any, deploy: Any, deploy_path: Path, surgery: Surgery, classes: int,
                  blobs: dict[str, int], train: DataInput, test: DataInput, input_scale: float,
                  mean_file: str | None = None) -> dict[str, Any]:
    """{"train", "test", "deploy"}: NetParameters for one mode. `blobs` is each parameter layer's blob count; the
    Data layers subtract `mean_file` (CIFAR-10's mean image), when given, before scaling by input_scale."""
    data_top = _input_layer(deploy, deploy_path).top[0]
    head = _softmax_head(deploy, deploy_path)
    logits = surgery.renamed if head.bottom[0] == surgery.classifier else head.bottom[0]

    def net() -> Any:
        return caffe_pb2.NetParameter(name=deploy.name or "source")

    def with_body(message: Any, training: bool = False) -> Any:
        for layer in _body(caffe_pb2, deploy, surgery, classes, blobs, training):
            message.layer.add().CopyFrom(layer)
        return message

    def data_layer(message: Any, data: DataInput) -> None:
        layer = message.layer.add(name="data", type="Data", top=[data_top, "label"])
        layer.data_param.source = data.source
        layer.data_param.backend = caffe_pb2.DataParameter.LMDB
        layer.data_param.batch_size = data.batch_size
        layer.transform_param.scale = input_scale
        if mean_file:
            layer.transform_param.mean_file = mean_file

    train_net = net()
    data_layer(train_net, train)
    with_body(train_net, training=True)
    train_net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=[logits, "label"], top=["loss"])

    test_net = net()
    data_layer(test_net, test)
    with_body(test_net)
    test_net.layer.add(name="accuracy", type="Accuracy", bottom=[logits, "label"], top=["accuracy"])
    test_net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=[logits, "label"], top=["loss"])

    deploy_net = net()
    deploy_net.layer.add().CopyFrom(_input_layer(deploy, deploy_path))
    with_body(deploy_net)
    softmax = deploy_net.layer.add()
    softmax.CopyFrom(head)
    _rename_bottoms(softmax, surgery.classifier, surgery.renamed)
    return {"train": train_net, "test": test_net, "deploy": deploy_net}
