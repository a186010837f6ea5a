"""A model with several outputs: the accuracy tests score the output its card names, never silently output 0.

A converter orders outputs as it likes (often by signature name), so a segmentation net exported with its
pre-sigmoid logits beside the probability can list the logits first. Scored as probabilities, the logits
give a plausible binary accuracy (`logit > 0.5` instead of `prob > 0.5`) that no gate questions. The models
here are the shipped Q-Segment with its logits tensor made an extra graph output, in either order; the
right values come from LiteRT run on the shipped single-output file directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.config.catalog import CatalogModel, ModelCatalog
from pytest_edgehil.errors import ConfigError, ModelError
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.measure.latency import infer, infer_many
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")
litert = pytest.importorskip("ai_edge_litert.interpreter")

QSEGMENT = Path(__file__).resolve().parent.parent / "fixtures" / "models" / "qsegment.tflite"
PROB = "StatefulPartitionedCall_1:0"  # the shipped model's only output: LOGISTIC's result


def _with_logits_output(logits_first: bool) -> tuple[bytes, str]:
    """Q-Segment with LOGISTIC's input (the logits) as a second graph output; and that tensor's name."""
    model = schema.ModelT.InitFromPackedBuf(QSEGMENT.read_bytes(), 0)
    sub = model.subgraphs[0]
    (prob,) = sub.outputs
    (logistic,) = [op for op in sub.operators if prob in op.outputs]
    logits = int(logistic.inputs[0])
    sub.outputs = [logits, prob] if logits_first else [prob, logits]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), sub.tensors[logits].name.decode()


def _catalog_model(tmp_path: Path, data: bytes, card: dict | None) -> CatalogModel:
    path = tmp_path / "two_heads.tflite"
    path.write_bytes(data)
    if card is not None:
        path.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    return ModelCatalog(tmp_path).get(str(path))


def _litert_probabilities(images: list[np.ndarray]) -> np.ndarray:
    """The shipped model's probabilities by LiteRT alone: input p - 128 (scale 1/255, zero point -128 maps
    p / 255 onto it exactly), output dequantized with the tensor's own parameters."""
    interpreter = litert.Interpreter(model_content=QSEGMENT.read_bytes())
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["quantization"] == (pytest.approx(1 / 255), -128)
    probs = []
    for image in images:
        interpreter.set_tensor(inp["index"], (image.astype(np.int16) - 128).astype(np.int8)[np.newaxis])
        interpreter.invoke()
        scale, zero_point = out["quantization"]
        probs.append((interpreter.get_tensor(out["index"]).astype(np.float64) - zero_point) * scale)
    return np.stack(probs)


class _Dut:
    def __init__(self, client: DeviceClient) -> None:
        self.client, self.hello = client, client.hello()


def _images(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, size=(128, 128, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("logits_first", [True, False])
def test_the_card_s_output_name_picks_the_scored_output(tmp_path: Path, logits_first: bool) -> None:
    data, _ = _with_logits_output(logits_first)
    model = _catalog_model(tmp_path, data, {"task": "binary-segmentation", "output": {"name": PROB}})
    images = _images()
    expected = _litert_probabilities(images)
    with DeviceTwin(load_profiles()["coral"], "coral", seed=1) as twin, \
            DeviceClient(twin.port, name="coral", timeout_s=10) as client:
        client.load_model(model.data, model.name)
        dut = _Dut(client)
        got_many = infer_many(dut, model, images)  # type: ignore[arg-type]
        got_one = infer(dut, model, images[0])  # type: ignore[arg-type]
    np.testing.assert_allclose(got_many, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_one, expected[0], rtol=0, atol=1e-6)


def test_several_outputs_and_no_name_in_the_card_is_refused_naming_them(tmp_path: Path) -> None:
    data, logits = _with_logits_output(logits_first=True)
    for card in (None, {"task": "binary-segmentation"}, {"output": {"name": "prob"}}):
        model = _catalog_model(tmp_path, data, card)
        with pytest.raises(ModelError) as refused:
            model.scored_output  # noqa: B018
        text = str(refused.value)
        assert "two_heads" in text and PROB in text and logits in text and "output.name" in text
        assert str(model.card_path) in text


def test_a_single_output_model_needs_no_name_and_a_wrong_name_is_refused(tmp_path: Path) -> None:
    shipped = ModelCatalog(QSEGMENT.parent).get("qsegment")
    assert shipped.scored_output == 0
    model = _catalog_model(tmp_path, QSEGMENT.read_bytes(), {"output": {"name": "logits"}})
    with pytest.raises(ModelError, match=r"'logits'.*StatefulPartitionedCall_1:0"):
        model.scored_output  # noqa: B018


def test_output_name_must_be_a_non_empty_string(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="name"):
        _catalog_model(tmp_path, QSEGMENT.read_bytes(), {"output": {"name": ""}})
