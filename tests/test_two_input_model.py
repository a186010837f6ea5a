"""A model with two inputs cannot be scored from one image per sample: refused, not run with zeros.

The accuracy path turns each evaluation image into input 0. A device given no tensor for another input runs
it at whatever it holds (zeros on a fresh load, the last test's values after that), so a two-input model
(a face and an eye crop, an image and a prior) would be scored on outputs of an input nobody chose: a
plausible wrong figure. The model here is `out = image + offset`: fed the image alone, the device answers
`image`, not what the model computes for any chosen offset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ModelError
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.measure.latency import infer, infer_many, to_model_input
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles

from .test_op_costs import Net, options


def _image_plus_offset(tmp_path: Path) -> Path:
    net = Net()
    image, offset, out = (net.tensor(name, (1, 4, 4, 1)) for name in ("image", "offset", "out"))
    net.op("ADD", [image, offset], [out], options("Add"))
    path = tmp_path / "two_inputs.tflite"
    path.write_bytes(net.build([image, offset], [out]))
    return path


class _Dut:
    def __init__(self, client: DeviceClient) -> None:
        self.client, self.hello = client, client.hello()


def test_a_two_input_model_is_refused_by_every_scoring_path_naming_its_inputs(tmp_path: Path) -> None:
    model = ModelCatalog(tmp_path).get(str(_image_plus_offset(tmp_path)))
    images = [np.full((4, 4, 1), 255, np.uint8)] * 2
    with DeviceTwin(load_profiles()["coral"], "coral", seed=1) as twin, \
            DeviceClient(twin.port, name="coral", timeout_s=10) as client:
        client.load_model(model.data, model.name)
        dut = _Dut(client)
        calls = {"infer_many": lambda: infer_many(dut, model, images),  # type: ignore[arg-type]
                 "infer": lambda: infer(dut, model, images[0]),  # type: ignore[arg-type]
                 "to_model_input": lambda: to_model_input(model, images[0])}
        for what, call in calls.items():
            with pytest.raises(ModelError) as refused:
                call()
            text = str(refused.value)
            assert "two_inputs" in text and "'image'" in text and "'offset'" in text, what
            assert "2 inputs" in text and "one image" in text, what
