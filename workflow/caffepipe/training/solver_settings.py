"""One model's solver settings: params.yaml `train`, with that model's entry of `train.overrides` on top.

The zoo's nets (BatchNorm, residual, Inception) train best with another learning rate and schedule than
Caffe's LeNet example, and gapnet must fit the default pipeline's time budget with fewer iterations. Rather
than a second params section per model, `train.overrides` holds, per model, only the keys that differ:

    train:
      base_lr: 0.01            # every model ...
      overrides:
        gapnet: {base_lr: 0.05, lr_policy: poly, power: 1, max_iter: 3000}   # ... but gapnet

Models without an entry (lenet, mlp) get `train` exactly as before, so their solvers, fingerprints and
committed results do not change. netgen writes the merged settings into the model's solver and `caffepipe
train` checks that solver against the same merge (inputs.check_solver_matches_params).
"""
from __future__ import annotations

from typing import Any

OVERRIDES_KEY = "overrides"


def solver_settings(train_params: dict[str, Any], model: str) -> dict[str, Any]:
    """`train` without its overrides table, then `model`'s overrides applied."""
    settings = {key: value for key, value in train_params.items() if key != OVERRIDES_KEY}
    settings.update(train_params.get(OVERRIDES_KEY, {}).get(model, {}))
    return settings
