"""The IMX500 twin's LOAD refuses a model whose arithmetic is float, as the board's loader does (Sony's
IMX500 converter and packager take quantized networks only), by the rule the plugin checks before any
upload (`DeviceKind.refuses`); an int8 graph with float32 I/O still loads (../shared/cases/int8-float-io,
tests/test_case_int8_float_io.py on every device).

Seen from outside: only the plugin's fixture refused tinytracker_float on an imx500; the twin driven
directly (DeviceClient) loaded it and timed it at the float rate, a figure no IMX500 can give. The model's
float tensors (and no integer ones) are read here from the file itself with LiteRT, not from the analysis under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.errors import DeviceRejected
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.messages import ErrorCode
from pytest_edgehil.sim.bench_physics import BenchPhysics
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles

from .conftest import MODELS
from .latency_project import latency_project
from .tflite_builder import Subgraph, Tensor, build

litert = pytest.importorskip("ai_edge_litert.interpreter")
FLOAT = MODELS / "tinytracker_float.tflite"


def _tensor_dtypes(path) -> set[str]:
    return {np.dtype(d["dtype"]).name for d in litert.Interpreter(model_path=str(path)).get_tensor_details()}


def test_the_imx500_twin_refuses_to_load_a_float_model_and_keeps_serving() -> None:
    dtypes = _tensor_dtypes(FLOAT)
    assert "float32" in dtypes and "int8" not in dtypes and "uint8" not in dtypes  # float arithmetic throughout
    with DeviceTwin(load_profiles()["imx500"], "imx500", physics=BenchPhysics()) as twin, \
            DeviceClient(twin.port, timeout_s=10) as client:
        with pytest.raises(DeviceRejected) as refused:
            client.load_model(FLOAT.read_bytes(), "tinytracker_float")
        assert refused.value.code == ErrorCode.UNSUPPORTED
        text = str(refused.value)
        assert "tinytracker_float" in text and "float32" in text and "quantized models only" in text, text
        # The board stays up and takes the quantized model.
        client.load_model((MODELS / "tinytracker.tflite").read_bytes(), "tinytracker")
        assert len(client.run(2).timings) == 2


def test_a_board_that_computes_in_float_loads_it() -> None:
    """The Coral Dev Board Micro runs float models on its Cortex-M7: no refusal there."""
    with DeviceTwin(load_profiles()["coral"], "coral") as twin, DeviceClient(twin.port, timeout_s=30) as client:
        client.load_model(FLOAT.read_bytes(), "tinytracker_float")
        assert len(client.run(1).timings) == 1


def _int8_relu() -> bytes:
    """An int8 network with no conv/matmul: quantized, so a quantized-only board runs it."""
    graph = Subgraph(tensors=[Tensor("x", (1, 8, 8, 3), "INT8", scales=[1 / 128]),
                              Tensor("y", (1, 8, 8, 3), "INT8", scales=[1 / 128])],
                     ops=[("RELU", ["x"], ["y"], None)], inputs=["x"], outputs=["y"])
    return build(graph)


def test_an_int8_model_without_conv_ops_loads_on_the_imx500() -> None:
    data = _int8_relu()
    interpreter = litert.Interpreter(model_content=data)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    with DeviceTwin(load_profiles()["imx500"], "imx500") as twin, DeviceClient(twin.port, timeout_s=10) as client:
        client.load_model(data, "relu8")
        assert len(client.run(1).timings) == 1


def test_the_plugin_measures_an_int8_model_without_conv_ops_on_the_imx500(pytester: pytest.Pytester) -> None:
    """The plugin applies the same rule: this quantized model was refused before any upload (its compute
    dtype, with no conv/matmul op, read as not integer), a false refusal of a sound measurement."""
    models = pytester.path / "models"
    models.mkdir()
    (models / "relu8.tflite").write_bytes(_int8_relu())
    latency_project(pytester, models, "relu8", "imx500")
    result = pytester.runpytest("--device=imx500", "-p", "no:cacheprovider", "-k", "inference")
    result.assert_outcomes(passed=1)
