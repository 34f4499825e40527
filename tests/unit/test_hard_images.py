"""The hard-images selection: wrong in every model against wrong in exactly one."""
from __future__ import annotations

import numpy as np

from caffepipe.evaluation.hard_images import every_model_wrong, hard_image_table, only_one_model_wrong


def test_every_model_against_only_one() -> None:
    labels = np.array([0, 1, 2, 3, 4, 5])
    predictions = {
        "lenet":  np.array([9, 1, 9, 3, 9, 5]),     # wrong: 0, 2, 4
        "mlp":    np.array([9, 1, 2, 9, 9, 5]),     # wrong: 0, 3, 4
        "gapnet": np.array([8, 1, 2, 3, 9, 5]),     # wrong: 0, 4
    }
    table = hard_image_table(labels, predictions)
    assert table["index"].tolist() == [0, 4, 2, 3]          # most models wrong first, then test order
    assert table["wrong_by"].tolist() == [3, 3, 1, 1]
    assert every_model_wrong(table, 3)["index"].tolist() == [0, 4]
    only_one = only_one_model_wrong(table)
    assert list(zip(only_one["index"], only_one["models_wrong"])) == [(2, "lenet"), (3, "mlp")]
    assert table.loc[table["index"] == 0, "predicted_gapnet"].item() == 8
    assert table.loc[table["index"] == 4, "models_wrong"].item() == "lenet mlp gapnet"


def test_no_errors_gives_empty_selections() -> None:
    labels = np.arange(4)
    table = hard_image_table(labels, {"a": labels.copy(), "b": labels.copy()})
    assert table.empty and every_model_wrong(table, 2).empty and only_one_model_wrong(table).empty
