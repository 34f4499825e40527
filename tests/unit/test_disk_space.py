"""Room for a snapshot: the size estimate against a real LeNet snapshot, and the one-line error."""
from __future__ import annotations

from pathlib import Path

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.training.disk_space import disk_full_error, ensure_room_for_snapshot, free_bytes, snapshot_bytes

LENET = {"conv1": [(20, 1, 5, 5), (20,)], "conv2": [(50, 20, 5, 5), (50,)], "ip1": [(500, 800), (500,)],
         "ip2": [(10, 500), (10,)]}
# lenet_iter_10.caffemodel + .solverstate as `caffepipe train` wrote them
LENET_SNAPSHOT_ON_DISK = 1_724_988 + 1_724_480


def test_the_estimate_covers_a_real_snapshot_with_little_to_spare() -> None:
    estimate = snapshot_bytes(LENET)
    assert LENET_SNAPSHOT_ON_DISK <= estimate <= LENET_SNAPSHOT_ON_DISK * 1.05


def test_too_little_room_is_one_line_naming_the_folder_and_enospc(tmp_path: Path) -> None:
    shown = Path("data/train/lenet/snapshots")
    with pytest.raises(CaffepipeError) as raised:
        ensure_room_for_snapshot(tmp_path, free_bytes(tmp_path) + (1 << 40), 30, shown)
    message = str(raised.value)
    assert "ENOSPC" in message and str(shown) in message and "iteration 30" in message and "\n" not in message
    ensure_room_for_snapshot(tmp_path, 1, 30, shown)     # room enough: nothing raised


def test_a_full_disk_elsewhere_names_the_training_folder() -> None:
    message = str(disk_full_error(Path("data/train/mlp")))
    assert "ENOSPC" in message and "data/train/mlp" in message and "resumes" in message
