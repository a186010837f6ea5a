"""A float32 model on a board that runs quantized models only: refused naming the model, the board and the
fix, never measured.

Seen from outside: a lab engineer's float32 classifier (and the shipped TinyTracker float model) on the
IMX500 twin gave an inference time, an energy and an accuracy, though the IMX500 runs quantized networks
only (Sony's IMX500 converter takes int8 models; a float32 .tflite has no deployment on the sensor). Each
figure was a number no board can produce. The model's compute dtype is read here from the file itself
(LiteRT's tensor details: float32 weights on its conv layers), not from the analysis under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import MODELS
from .latency_project import latency_project

litert = pytest.importorskip("ai_edge_litert.interpreter")
FLOAT = MODELS / "tinytracker_float.tflite"


def _has_float_weights() -> bool:
    interpreter = litert.Interpreter(model_path=str(FLOAT))
    return any(d["dtype"] == np.float32 and len(d["shape"]) == 4 for d in interpreter.get_tensor_details())


def _project(pytester: pytest.Pytester, device: str) -> pytest.Pytester:
    return latency_project(pytester, MODELS, "tinytracker_float", device)


def test_a_float_model_on_the_imx500_is_refused_naming_the_kind(pytester: pytest.Pytester) -> None:
    assert _has_float_weights()
    result = _project(pytester, "imx500").runpytest("--device=imx500", "-p", "no:cacheprovider", "-k", "inference")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "ModelError" in out and "tinytracker_float" in out and "float_compute = false" in out, out[-3000:]


def test_a_float_model_on_a_board_that_computes_in_float_is_measured(pytester: pytest.Pytester) -> None:
    """The Coral Dev Board Micro runs a float model on its Cortex-M7 (no false refusal)."""
    result = _project(pytester, "coral").runpytest("--device=coral", "-p", "no:cacheprovider", "-k", "inference")
    result.assert_outcomes(passed=1)
