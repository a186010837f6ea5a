"""Suite-level fixtures: which shipped evaluation set goes with which model task."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.config.catalog import CatalogModel
from pytest_edgehil.measure.datasets import load_npz_dataset

DATA_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "data"
EVAL_SET_BY_TASK = {
    "binary-segmentation": "vessels_eval.npz",
    "gaze-regression": "gaze_eval.npz",
    "segmentation-upsampling": "lowres_eval.npz",
}


@pytest.fixture
def eval_set(edgehil_model: CatalogModel, edgehil_pushed_inputs):
    # edgehil_pushed_inputs: a board that infers on its own sensor frames skips, with the reason
    name = EVAL_SET_BY_TASK.get(edgehil_model.task)
    if name is None:
        pytest.skip(f"model {edgehil_model.name!r} has task {edgehil_model.task!r}: no shipped evaluation set")
    return load_npz_dataset(DATA_DIR / name, edgehil_model.task)


@pytest.fixture
def latency_runs(pytestconfig: pytest.Config) -> int:
    return int(pytestconfig.getini("edgehil_latency_runs"))
