"""An `--edgehil-ab` baseline is uploaded to the board like the candidate, so a board that runs quantized
models only refuses a float baseline as it refuses a float candidate (test_float_model_on_int8_board.py).

Seen from outside: the float model before quantization as the A/B baseline of its int8 candidate on the
IMX500 was timed and powered by the twin and judged by the A/B gate against the candidate, a comparison
with a figure no IMX500 can give. Whether the baseline file computes in float is read from the file with
LiteRT (float32 weights on its conv layers), not from the analysis under test.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from .conftest import MODELS
from .test_gate_ab import project, run_ab

litert = pytest.importorskip("ai_edge_litert.interpreter")
FLOAT = MODELS / "tinytracker_float.tflite"


def test_a_float_ab_baseline_on_the_imx500_is_refused(pytester: pytest.Pytester) -> None:
    details = litert.Interpreter(model_path=str(FLOAT)).get_tensor_details()
    assert any(d["dtype"] == np.float32 and len(d["shape"]) == 4 for d in details)
    project(pytester, MODELS / "qsegment.tflite")
    baseline = pytester.path / "main-models"
    baseline.mkdir()
    shutil.copy(FLOAT, baseline / "qsegment.tflite")
    result = run_ab(pytester, str(baseline))
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "ModelError" in out and "baseline" in out and "float_compute = false" in out, out[-3000:]
