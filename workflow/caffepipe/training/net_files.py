"""A net's prototxt and a model's weights, checked before Caffe reads them.

Caffe does not report a bad file: a prototxt that does not parse, or a .caffemodel that is truncated or
belongs to another net, makes glog abort the whole process ("Check failed: ReadProtoFromTextFile ...",
SIGABRT), with no message a user can act on and no chance to clean up. So the stages that hand Caffe
netgen's nets or trained weights (evaluate, time, visualize) parse them here first, with the same protobuf
messages Caffe uses, and turn a bad file into a CaffepipeError that names it and the stage that remakes it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from caffepipe.core.errors import CaffepipeError
from caffepipe.training.snapshots import check_caffemodel, net_param_shapes


def read_net(caffe_pb2: Any, path: Path) -> Any:
    """The NetParameter in a prototxt that netgen wrote; CaffepipeError if it is missing or not a net."""
    from google.protobuf import text_format  # noqa: PLC0415

    try:
        return text_format.Parse(path.read_text(), caffe_pb2.NetParameter())
    except FileNotFoundError:
        raise CaffepipeError(f"{path} not found; it is made by `caffepipe netgen`") from None
    except (UnicodeDecodeError, text_format.ParseError) as error:
        raise CaffepipeError(f"{path} is not a valid net prototxt ({error}); re-run `caffepipe netgen`") from None


def open_net(caffe: Any, prototxt: Path, weights: Path | None = None) -> Any:
    """caffe.Net in the TEST phase from a checked prototxt, with `weights` (a .caffemodel) checked to fit it
    (every parameter blob complete and of the net's shape) before Caffe copies them in."""
    from caffe.proto import caffe_pb2  # noqa: PLC0415

    read_net(caffe_pb2, prototxt)
    net = caffe.Net(str(prototxt), caffe.TEST)
    if weights is None:
        return net
    if not weights.is_file():
        raise CaffepipeError(f"{weights} not found; it is made by `caffepipe train`")
    problem = check_caffemodel(caffe_pb2, weights, net_param_shapes(net))
    if problem:
        raise CaffepipeError(f"{weights} is not a model of {prototxt}: {problem}; re-run `caffepipe train` "
                             "(after `caffepipe netgen` if the net changed)")
    net.copy_from(str(weights))
    return net
