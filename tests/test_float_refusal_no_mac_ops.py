"""The IMX500's float refusal reads the compute dtype of the model's arithmetic, also where it has no
conv/matmul op: an int8 model made of pooling alone computes in int8 and is measured, not refused.

Seen from outside: an all-int8 MAX_POOL_2D model (every tensor INT8, written here) was refused on the IMX500
as computing in "none", while the IMX500 twin itself times it at the int8 rate. The expected dtype is
the file's own tensor types, read back with LiteRT, not the analysis under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from .latency_project import latency_project
from .test_op_costs import Net, options

litert = pytest.importorskip("ai_edge_litert.interpreter")


def _pool_model(dtype: str) -> bytes:
    net = Net()
    x, y = net.tensor("x", (1, 16, 16, 3), dtype), net.tensor("y", (1, 8, 8, 3), dtype)
    net.op("MAX_POOL_2D", [x], [y], options("Pool2D", filterHeight=2, filterWidth=2, strideH=2, strideW=2))
    return net.build([x], [y])


def _project(pytester: pytest.Pytester, dtype: str) -> pytest.Pytester:
    models = pytester.path / "models"
    models.mkdir()
    (models / "pool.tflite").write_bytes(_pool_model(dtype))
    details = litert.Interpreter(model_path=str(models / "pool.tflite")).get_tensor_details()
    assert {np.dtype(d["dtype"]) for d in details} == {np.dtype(dtype.lower())}
    return latency_project(pytester, models, "pool", "imx500")


def test_an_int8_model_without_conv_or_matmul_is_measured_on_the_imx500(pytester: pytest.Pytester) -> None:
    result = _project(pytester, "INT8").runpytest("--device=imx500", "-p", "no:cacheprovider", "-k", "inference")
    result.assert_outcomes(passed=1)


def test_a_float_model_without_conv_or_matmul_is_refused_on_the_imx500(pytester: pytest.Pytester) -> None:
    result = _project(pytester, "FLOAT32").runpytest("--device=imx500", "-p", "no:cacheprovider", "-k", "inference")
    result.assert_outcomes(errors=1)
    assert "float_compute = false" in result.stdout.str()
