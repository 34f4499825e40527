"""The files of a model's nets folder (data/nets/<model>), named once: `caffepipe netgen` writes them under
these names and `caffepipe train` reads them by the same."""
from __future__ import annotations

SOLVER_FILE = "solver.prototxt"
TRAIN_NET_FILE = "train.prototxt"
TEST_NET_FILE = "test.prototxt"
DEPLOY_NET_FILE = "deploy.prototxt"

# netgen's three nets of one architecture, by kind
NET_FILES = {"train": TRAIN_NET_FILE, "test": TEST_NET_FILE, "deploy": DEPLOY_NET_FILE}
