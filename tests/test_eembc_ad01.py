"""EEMBC `ad01` firmware is refused at HELLO, saying it is not supported and why.

The MLPerf Tiny reference anomaly-detection firmware (mlcommons/tiny benchmark/reference_submissions/
anomaly_detection/submitter_implemented.cpp) reads its input as float32 features and quantizes them on
the board (`th_load_tensor`: `ee_get_buffer(..., kInputSize * sizeof(float))`), and its `th_results()`
prints one number, `m-results-[%0.3f]` of the mean squared error between the 640 dequantized outputs
and that input: an anomaly score, not the output tensor. The host sends the model's own input tensor and
checks and scores the output tensor, so it cannot run ad01; before, the first RUN failed with
"m-results has 1 values ... bytes were dropped on the line; check the cable and the baud rate".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.config.lab import lab_from_data
from pytest_edgehil.errors import ConfigError, DeviceRejected
from pytest_edgehil.link.eembc_client import EembcClient
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.eembc_twin import EembcTwin

from .conftest import MODELS

MODEL = MODELS / "qsegment.tflite"  # any model: the twin's profile% names the firmware's model version


def test_ad01_firmware_is_refused_at_hello_saying_why() -> None:
    runner = ModelRunner(MODEL)
    with EembcTwin(MODEL.read_bytes(), "ad01") as twin:  # profile% answers m-model-[ad01]
        client = EembcClient(twin.port, model_name="ad01", outputs=runner.outputs, kind="cortex-m4", name="mcu")
        client.open()
        try:
            with pytest.raises(DeviceRejected) as refused:
                client.hello()
        finally:
            client.close()
    message = str(refused.value)
    assert "'mcu'" in message and twin.port in message
    assert "ad01" in message and "not supported" in message
    assert "anomaly score" in message and "float32" in message
    assert "cable" not in message and "baud" not in message


def test_a_lab_naming_ad01_firmware_is_refused_at_load(tmp_path: Path) -> None:
    data = {"lab": {"name": "bench"},
            "devices": {"mcu": {"kind": "cortex-m4", "simulated": True, "protocol": "eembc", "firmware_model": "ad01"}}}
    with pytest.raises(ConfigError, match=r"ad01.*not supported.*anomaly score"):
        lab_from_data(data, tmp_path / "lab.toml")
