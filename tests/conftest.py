"""Shared fixtures: the offline model (loaded once) and real images from the data root.

The data root is $CAMLAB_DATA; in this repository's checkout it defaults to ../shared/data.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("CAMLAB_DATA") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["CAMLAB_DATA"] = str(ROOT.parent / "shared" / "data")

import camlab  # noqa: E402

# Fixtures that need the pretrained weights or the shared images; a test that uses none of them
# (directly or through another fixture) is in the fast tier (`make test-fast`, `pytest -m fast`).
HEAVY_FIXTURES = frozenset({"lite0", "data_root", "dev_records", "real_batch"})
SLOW_FILES = ("test_notebooks.py", "test_browser.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = getattr(item, "fixturenames", None)  # None: not a Python test (nbval's notebook cells)
        if (
            names is not None
            and not HEAVY_FIXTURES & set(names)
            and item.path.name not in SLOW_FILES
            and "slow" not in item.keywords
        ):
            item.add_marker(pytest.mark.fast)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = camlab.data.data_root()
    if not (root / "imagenet-dev").is_dir():
        pytest.fail(f"the test images are missing: {root}/imagenet-dev (set CAMLAB_DATA to the shared data folder)")
    return root


@pytest.fixture(scope="session")
def lite0():
    return camlab.load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def dev_records(data_root):
    return camlab.data.imagenet_folder(data_root / "imagenet-dev")


@pytest.fixture(scope="session")
def real_batch(lite0, dev_records):
    """Three real ImageNet images, preprocessed for efficientnet_lite0."""
    picks = [dev_records[i] for i in (0, 57, 140)]
    return lite0.preprocess([r.path for r in picks])
