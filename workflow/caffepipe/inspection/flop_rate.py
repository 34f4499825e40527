"""What share of the CPU's peak FLOP rate a net reaches in `caffe time`: whole passes and each layer that computes.

    achieved GFLOP/s = 2 x multiply-adds per batch / seconds per pass / 1e9
    share of the peak = achieved GFLOP/s / peak GFLOP/s (cpu_peak.py)

Multiply-adds per batch are complexity.py's per-image counts of the deploy net times the batch `caffe time`
ran: the training net it times has the same layers on the same image shapes (netgen builds both; a learned
layer missing from the timed net is an error). Forward counts the Convolution and InnerProduct layers'
multiply-adds; backward counts their weight and input gradients as complexity.py says (about 2x the forward,
1x for the first learned layer). A whole pass's time includes the layers that do no multiply-adds (pooling,
ReLU, the loss, the Data layer's copy), so its share is what the net as a whole gets out of the cores; the
per-layer rows show how fast the matrix products themselves run.
"""
from __future__ import annotations

from typing import Any

from caffepipe.core.errors import CaffepipeError
from caffepipe.inspection.cpu_peak import FLOPS_PER_MULTIPLY_ADD

PASSES = ("forward", "backward", "forward_backward")


def achieved_gflops(multiply_adds: int, milliseconds: float) -> float | None:
    """GFLOP/s of `multiply_adds` done in `milliseconds`; None where caffe time measured no time at all."""
    if milliseconds <= 0:
        return None
    return FLOPS_PER_MULTIPLY_ADD * multiply_adds / (milliseconds * 1e-3) / 1e9


def share_of_peak(gflops: float | None, peak_gflops: float) -> float | None:
    """The fraction (not percent) of the peak; None where the rate is unknown."""
    return None if gflops is None else gflops / peak_gflops


def rate(multiply_adds: int, milliseconds: float, peak_gflops: float) -> dict[str, Any]:
    gflops = achieved_gflops(multiply_adds, milliseconds)
    return {"multiply_adds": multiply_adds, "ms": milliseconds, "gflops": gflops,
            "share_of_peak": share_of_peak(gflops, peak_gflops)}


def layer_rates(cost: dict[str, Any], layer_ms: dict[str, tuple[float, float]], batch_size: int,
                peak_gflops: float) -> list[dict[str, Any]]:
    """One row per layer with multiply-adds, in net order: forward and backward multiply-adds per batch,
    milliseconds, GFLOP/s and share of the peak. layer_ms: caffe time's (forward, backward) ms by layer."""
    rows = []
    for layer in cost["layers"]:
        if layer["multiply_adds"] == 0:
            continue
        if layer["name"] not in layer_ms:
            raise CaffepipeError(f"layer {layer['name']} of the deploy net is not in the timed training net; "
                                 "re-run `caffepipe netgen`")
        row: dict[str, Any] = {"layer": layer["name"], "type": layer["type"]}
        for direction, ms, per_image in (("forward", layer_ms[layer["name"]][0], layer["multiply_adds"]),
                                         ("backward", layer_ms[layer["name"]][1], layer["backward_multiply_adds"])):
            row.update({f"{direction}_{key}": value
                        for key, value in rate(per_image * batch_size, ms, peak_gflops).items()})
        rows.append(row)
    return rows


def net_rates(cost: dict[str, Any], totals: dict[str, float], batch_size: int, peak_gflops: float) -> dict[str, Any]:
    """Per whole pass (forward, backward, forward_backward): multiply-adds per batch, ms, GFLOP/s, share.
    totals: caffe time's forward_ms and backward_ms. The forward-backward time is their sum, not Caffe's own
    "Average Forward-Backward": Caffe takes that from a timer read in whole milliseconds over all iterations, so
    a small net's shows 0 ms (its forward and backward averages are summed from microseconds)."""
    forward = cost["multiply_adds"] * batch_size
    backward = cost["backward_multiply_adds"] * batch_size
    work = {"forward": forward, "backward": backward, "forward_backward": forward + backward}
    ms = {"forward": totals["forward_ms"], "backward": totals["backward_ms"],
          "forward_backward": totals["forward_ms"] + totals["backward_ms"]}
    return {name: rate(work[name], ms[name], peak_gflops) for name in PASSES}


def flop_rates(model: str, cost: dict[str, Any], layer_ms: dict[str, tuple[float, float]],
               totals: dict[str, float], batch_size: int, machine: dict[str, Any]) -> dict[str, Any]:
    """flop_rate.json: the peak it is measured against, the whole passes and the layers."""
    peak = machine["peak_gflops"]
    return {"model": model, "batch_size": batch_size, "peak_gflops": peak, "cores": machine["cores"],
            "passes": net_rates(cost, totals, batch_size, peak),
            "layers": layer_rates(cost, layer_ms, batch_size, peak)}
