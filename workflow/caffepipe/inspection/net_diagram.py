"""A model's net as a diagram: its deploy net drawn left to right by Caffe's own drawing code, as SVG.

`caffepipe visualize` calls draw_net_diagram for every model and writes reports/visualize/<model>/net.svg.

caffe.draw (the library behind Caffe's python/draw_net.py) turns the NetParameter into a pydot graph: a box per
layer coloured by type (convolution red, pooling orange, inner product purple, in-place neurons green), an
octagon per blob, and each layer's edge labelled with its number of outputs. Graphviz's `dot` lays it out. We
hand the graph's DOT text to `dot -Tsvg` ourselves instead of calling caffe.draw.draw_net, which goes through
pydot's create(): that one prints dot's errors to stdout and raises a bare AssertionError; here a failure is one
line naming the net.

Graphviz writes comments into the SVG (its own version, the graph's and every node's name). They are stripped,
so the bytes depend only on the net and on graphviz's layout, which is deterministic for one graphviz version.

Without graphviz (no `dot` on PATH) there is no diagram: the entry returned says what to install, the visualize
stage still succeeds, and the report shows that note in place of the diagram. `caffepipe doctor` says so too.
"""
from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from caffepipe.core.atomic import write_bytes_atomic
from caffepipe.core.errors import CaffepipeError
from caffepipe.training.net_files import read_net

DIAGRAM_FILE = "net.svg"
RANKDIR = "LR"                    # left to right: a net reads like a sentence, input to output
DOT_PROGRAM = "dot"
DOT_TIMEOUT_S = 60
FONT = "DejaVu Sans"              # the report's font (Debian's fonts-dejavu-core)
MISSING_GRAPHVIZ_NOTE = ("No net diagram: Graphviz's `dot` is not installed. Install Debian's graphviz package "
                         "(`apt-get install graphviz`), then re-run the visualize stage (`dvc repro --force visualize` "
                         "or `snakemake --forcerun visualize`).")
SVG_COMMENT = re.compile(rb"<!--.*?-->\n?", re.DOTALL)


def dot_program() -> str | None:
    """The path of Graphviz's `dot`, or None when it is not installed."""
    return shutil.which(DOT_PROGRAM)


def net_graph(caffe_draw: Any, net_param: Any) -> Any:
    """Caffe's own pydot graph of the net, left to right, edges labelled with each layer's outputs; in the
    report's font and packed tighter than Graphviz's defaults, which make LeNet's row of 17 shapes 2,700 px wide."""
    graph = caffe_draw.get_pydot_graph(net_param, RANKDIR, label_edges=True)
    graph.set("ranksep", "0.2")
    graph.set("nodesep", "0.15")
    # set on each element: DOT's `node [...]` defaults would only reach the elements after them, and caffe.draw
    # has added every one already
    for element, size in [(node, "11") for node in graph.get_nodes()] + [(edge, "10") for edge in graph.get_edges()]:
        element.set("fontname", FONT)
        element.set("fontsize", size)
    return graph


def run_dot(dot: str, dot_text: str, what: str) -> bytes:
    """Lay out DOT text as SVG with graphviz."""
    result = subprocess.run([dot, "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=DOT_TIMEOUT_S)
    if result.returncode != 0:
        message = " ".join(result.stderr.decode(errors="replace").split())[:300]
        raise CaffepipeError(f"graphviz could not draw {what} (`dot -Tsvg` exited {result.returncode}: {message}); "
                             "check `dot -V` and `caffepipe doctor`")
    return result.stdout


def strip_svg_comments(svg: bytes) -> bytes:
    """The SVG without its comments (graphviz's version, node names): same net, same bytes."""
    return SVG_COMMENT.sub(b"", svg)


def layer_names(net_param: Any) -> list[str]:
    return [layer.name for layer in net_param.layer]


def draw_net_diagram(deploy: Path, out_file: Path) -> dict[str, Any]:
    """Write the deploy net's diagram to `out_file` (SVG) and return its entry for visualize's index.json:
    {"file", "caption", "layers"}, or {"file": None, "note"} when graphviz is missing."""
    from caffe.proto import caffe_pb2  # noqa: PLC0415 — Caffe only where a net is drawn

    net_param = read_net(caffe_pb2, deploy)
    names = layer_names(net_param)
    dot = dot_program()
    if dot is None:
        return {"file": None, "note": MISSING_GRAPHVIZ_NOTE, "layers": names}
    caffe_draw = importlib.import_module("caffe.draw")
    svg = run_dot(dot, net_graph(caffe_draw, net_param).to_string(), str(deploy))
    write_bytes_atomic(out_file, strip_svg_comments(svg))
    caption = (f"{net_param.name or deploy.parent.name}: the deploy net ({deploy.name}) drawn by Caffe's caffe.draw: "
               f"{len(names)} layers as boxes (convolution red, pooling orange, inner product purple, in-place "
               "neurons green), blobs as octagons, edges labelled with each layer's outputs")
    return {"file": out_file.name, "caption": caption, "layers": names}
