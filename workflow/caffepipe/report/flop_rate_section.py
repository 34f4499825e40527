"""The Layer timings section's FLOP rates: what share of the CPU's peak each model and each layer reaches.

Every number comes from `caffepipe time`'s files in --time/<model>/: flop_rate.json (multiply-adds per batch,
milliseconds, GFLOP/s and share of the peak of the whole passes and of each Convolution / InnerProduct layer;
inspection/flop_rate.py) and machine.json (the peak and its factors; inspection/cpu_peak.py). Nothing here
looks at the machine the report renders on: the peak is the one of the machine `caffe time` ran on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from caffepipe.core.errors import CaffepipeError
from caffepipe.core.upstream import read_json

PASS_LABELS = {"forward": "forward", "backward": "backward", "forward_backward": "forward-backward"}


def read_rates(time_dir: Path, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """flop_rate.json and machine.json of one model; an older time folder without them is an error."""
    rates = read_json(time_dir / model / "flop_rate.json", "time")
    machine = read_json(time_dir / model / "machine.json", "time")
    if not isinstance(rates, dict) or not {"passes", "layers"} <= set(rates) or "peak_gflops" not in machine:
        raise CaffepipeError(f"{time_dir / model} has no FLOP rates in flop_rate.json and machine.json; "
                             "re-run `caffepipe time`")
    return rates, machine


def percent(share: float | None) -> float | None:
    return None if share is None else 100 * share


def net_rate_frame(rates: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per model: the peak it is measured against, the multiply-adds per batch, and per whole pass
    (forward, backward, forward-backward) the GFLOP/s reached and its share of the peak."""
    rows = []
    for model, rate in rates.items():
        passes = rate["passes"]
        row: dict[str, Any] = {"model": model, "batch": rate["batch_size"], "cores": rate["cores"],
                               "peak GFLOP/s": rate["peak_gflops"],
                               "forward M multiply-adds": passes["forward"]["multiply_adds"] / 1e6,
                               "backward M multiply-adds": passes["backward"]["multiply_adds"] / 1e6}
        for key, label in PASS_LABELS.items():
            row[f"{label} GFLOP/s"] = passes[key]["gflops"]
            row[f"{label} % of peak"] = percent(passes[key]["share_of_peak"])
        rows.append(row)
    return pd.DataFrame(rows)


def layer_rate_frame(rate: dict[str, Any]) -> pd.DataFrame:
    """One row per layer with multiply-adds: per direction, M multiply-adds per batch, ms, GFLOP/s, % of peak."""
    rows = []
    for layer in rate["layers"]:
        row: dict[str, Any] = {"layer": layer["layer"], "type": layer["type"]}
        for direction in ("forward", "backward"):
            row[f"{direction} M multiply-adds"] = layer[f"{direction}_multiply_adds"] / 1e6
            row[f"{direction} ms"] = layer[f"{direction}_ms"]
            row[f"{direction} GFLOP/s"] = layer[f"{direction}_gflops"]
            row[f"{direction} % of peak"] = percent(layer[f"{direction}_share_of_peak"])
        rows.append(row)
    return pd.DataFrame(rows)


def fastest_layer_pass(rate: dict[str, Any]) -> tuple[str, str, float] | None:
    """(layer, direction, share) of the layer pass nearest the peak; None where no layer pass has a rate."""
    candidates = [(layer[f"{direction}_share_of_peak"], layer["layer"], direction)
                  for layer in rate["layers"] for direction in ("forward", "backward")
                  if layer[f"{direction}_share_of_peak"] is not None]
    if not candidates:
        return None
    share, layer, direction = max(candidates)
    return layer, direction, share


def rate_sentence(model: str, rate: dict[str, Any]) -> str:
    """"lenet reaches 14.6% of the 2-core peak over a forward-backward pass (48.5 of 332 GFLOP/s); its
    fastest layer pass, ip1's backward, 28.7%." """
    whole = rate["passes"]["forward_backward"]
    cores = f"{rate['cores']}-core"
    if whole["share_of_peak"] is None:
        text = f"{model}'s forward-backward pass took no measurable time, so it has no rate"
    else:
        text = (f"{model} reaches {100 * whole['share_of_peak']:.1f}% of the {cores} peak over a forward-backward "
                f"pass ({whole['gflops']:.1f} of {rate['peak_gflops']:.0f} GFLOP/s)")
    fastest = fastest_layer_pass(rate)
    if fastest is not None:
        layer, direction, share = fastest
        text += f"; its fastest layer pass, {layer}'s {direction}, {100 * share:.1f}%"
    return text + "."


def peak_sentence(machine: dict[str, Any], models: list[str]) -> str:
    """How the peak is made up, for the models timed on that machine."""
    cores = f"{machine['cores']} core{'s' if machine['cores'] != 1 else ''}"
    return (f"Peak of {', '.join(models)}: {cores} × {machine['clock_mhz']:,.0f} MHz × "
            f"{machine['vector_floats']} floats × 2 flops per multiply-add × {machine['fma_units_per_core']} FMA "
            f"units = {machine['peak_gflops']:,.0f} GFLOP/s ({machine['cpu']}; clock: {machine['clock_source']}; "
            f"{machine['fma_units_basis']}).")


def peak_sentences(machines: dict[str, dict[str, Any]]) -> list[str]:
    """One sentence per distinct peak (models timed on different machines get one each), in model order."""
    groups: list[tuple[dict[str, Any], list[str]]] = []
    for model, machine in machines.items():
        for known, members in groups:
            if known == machine:
                members.append(model)
                break
        else:
            groups.append((machine, [model]))
    return [peak_sentence(machine, members) for machine, members in groups]


def flop_rate_numbers(time_dir: Path, models: list[str]) -> dict[str, Any]:
    """The section's FLOP-rate parts: {"net": frame, "layers": {model: frame}, "sentences", "peaks"}."""
    rates, machines = {}, {}
    for model in models:
        rates[model], machines[model] = read_rates(time_dir, model)
    return {"net": net_rate_frame(rates),
            "layers": {model: layer_rate_frame(rate) for model, rate in rates.items()},
            "sentences": [rate_sentence(model, rate) for model, rate in rates.items()],
            "peaks": peak_sentences(machines)}
