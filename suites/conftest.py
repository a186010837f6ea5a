"""Suite-level fixtures: which shipped evaluation set goes with which model task, and the board's outputs on
it, evaluated once per board, model and set in a session and scored by every accuracy test that needs them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.config.catalog import CatalogModel
from pytest_edgehil.errors import ModelError
from pytest_edgehil.measure.datasets import load_npz_dataset
from pytest_edgehil.measure.latency import infer_many

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
    data = load_npz_dataset(DATA_DIR / name, edgehil_model.task)
    # The card's task picks the set: a model of another task (a classifier carded as a segmenter) would
    # otherwise be refused per image, without a word of where the images came from.
    image, model_input = data.images.shape[1:], edgehil_model.info.inputs[0].shape
    if tuple(d for d in image if d != 1) != tuple(d for d in model_input if d != 1):
        raise ModelError(f"model {edgehil_model.name!r}: its card {edgehil_model.card_path} says task "
                         f"{edgehil_model.task!r}, whose evaluation set {DATA_DIR / name} holds images of "
                         f"{list(image)}, and the model's input is {list(model_input)}: the model is not a "
                         f"{edgehil_model.task} model of that size. Correct the card's `task`, or score the model "
                         "on an evaluation set of its own in a test of yours (docs/extending.md)")
    return data


@pytest.fixture
def latency_runs(pytestconfig: pytest.Config) -> int:
    return int(pytestconfig.getini("edgehil_latency_runs"))


@pytest.fixture(scope="session")
def _device_outputs() -> dict[tuple[str, str, str], np.ndarray]:
    return {}


@pytest.fixture
def device_outputs(edgehil_dut, _device_outputs) -> Callable[[CatalogModel, Sequence[np.ndarray]], np.ndarray]:
    """`outputs(model, images)`: `infer_many` on this test's board, made active first, shape (n_images,
    *output shape). The same board, model (by SHA-256) and images (by their bytes) are evaluated once per
    session: the gaze error and the quantization gap score one set of TinyTracker outputs, the head A/B the
    outputs the segmentation test scored. A read-only array (shared between tests)."""

    def outputs(model: CatalogModel, images: Sequence[np.ndarray]) -> np.ndarray:
        digest = hashlib.sha256()
        for image in images:
            digest.update(np.ascontiguousarray(image).tobytes())
        key = (edgehil_dut.name, hashlib.sha256(model.data).hexdigest(), digest.hexdigest())
        if key not in _device_outputs:
            edgehil_dut.ensure_model(model.data, model.name)
            result = infer_many(edgehil_dut, model, images)
            result.setflags(write=False)
            _device_outputs[key] = result
        return _device_outputs[key]

    return outputs
