"""The shipped reference models: they load in LiteRT, match their cards, and reproduce their cards' metrics.

Every model runs on every sample of its shipped evaluation set (a few hundred small inferences, about a
second in all), so the comparison with the card is exact up to a small tolerance for a different CPU's
kernels; the metrics are recomputed here with scikit-learn, independently of scripts/build_models.py.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "fixtures" / "models"
DATA = REPO / "fixtures" / "data"
SHIPPED = ["qsegment", "variants/qsegment_wide", "tinytracker", "tinytracker_float", "lowres_seg",
           "variants/lowres_seg_base"]
EVAL_SET_BY_TASK = {
    "binary-segmentation": ("vessels_eval.npz", "masks"),
    "gaze-regression": ("gaze_eval.npz", "gaze_cm"),
    "segmentation-upsampling": ("lowres_eval.npz", "masks"),
}
# A different CPU may pick other int8 kernels; results then move by at most a quantization step or so.
METRIC_ABS_TOL = {"roc_auc": 2e-3, "binary_accuracy": 2e-3, "gaze_error_cm": 0.02, "quantization_gap_cm": 0.02}
CARD_KEYS = {"name", "task", "input", "output", "dataset", "provenance", "parameters", "macs", "file_bytes",
             "sha256", "metrics", "reference", "note"}


def card(name: str) -> dict[str, Any]:
    return json.loads((MODELS / f"{name}.json").read_text(encoding="utf-8"))


@cache
def predictions(name: str) -> np.ndarray:
    """Dequantized outputs of model `name` on every sample of its evaluation set, inputs mapped per card."""
    info = card(name)
    file_name, _ = EVAL_SET_BY_TASK[info["task"]]
    lo, hi = info["input"]["range"]
    interpreter = Interpreter(model_path=str(MODELS / f"{name}.tflite"))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    with np.load(DATA / file_name) as data:
        images = data["images"]
    for image in images:
        x = lo + image.astype(np.float32)[None] / 255.0 * (hi - lo)
        if inp["dtype"] == np.int8:
            scale, zero_point = inp["quantization"]
            x = np.clip(np.rint(x / scale) + zero_point, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] == np.int8:
            scale, zero_point = out["quantization"]
            y = (y.astype(np.float32) - zero_point) * scale
        outputs.append(y)
    return np.stack(outputs)


def targets(name: str) -> np.ndarray:
    file_name, key = EVAL_SET_BY_TASK[card(name)["task"]]
    with np.load(DATA / file_name) as data:
        return data[key]


@pytest.mark.parametrize("name", SHIPPED)
def test_card_is_complete_and_names_its_stand_in_status(name):
    info = card(name)
    assert CARD_KEYS <= info.keys(), CARD_KEYS - info.keys()
    assert info["name"] == Path(name).name
    assert info["task"] in EVAL_SET_BY_TASK
    assert "not the published network" in info["note"]
    assert info["provenance"]["built_by"] == "scripts/build_models.py"
    assert info["metrics"], "card has no metrics: run `python scripts/build_models.py cards`"


@pytest.mark.parametrize("name", SHIPPED)
def test_file_matches_card_hash_and_size(name):
    data = (MODELS / f"{name}.tflite").read_bytes()
    info = card(name)
    assert len(data) == info["file_bytes"]
    assert hashlib.sha256(data).hexdigest() == info["sha256"]


@pytest.mark.parametrize("name", SHIPPED)
def test_io_matches_card(name):
    info = card(name)
    interpreter = Interpreter(model_path=str(MODELS / f"{name}.tflite"))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape"]) == info["input"]["shape"]
    assert list(out["shape"]) == info["output"]["shape"]
    assert np.dtype(inp["dtype"]).name == info["input"]["dtype"]
    assert np.dtype(out["dtype"]).name == info["output"]["dtype"]
    if info["input"]["dtype"] == "int8":
        # full-integer models carry the scale / zero point the host quantizes with
        assert inp["quantization"][0] > 0 and out["quantization"][0] > 0


@pytest.mark.parametrize("name", SHIPPED)
def test_metrics_reproduce_the_card(name):
    info = card(name)
    pred, truth = predictions(name), targets(name)
    if info["task"] == "gaze-regression":
        measured = {"gaze_error_cm": float(np.linalg.norm(pred - truth, axis=1).mean())}
        if "quantization_gap_cm" in info["metrics"]:
            gap = np.linalg.norm(pred - predictions(f"{name}_float"), axis=1).mean()
            measured["quantization_gap_cm"] = float(gap)
    else:
        prob, labels = pred.reshape(-1), truth.reshape(-1)
        measured = {"roc_auc": float(roc_auc_score(labels, prob)),
                    "binary_accuracy": float(accuracy_score(labels, prob > 0.5))}
    assert measured.keys() == info["metrics"].keys()
    for metric, value in measured.items():
        assert value == pytest.approx(info["metrics"][metric], abs=METRIC_ABS_TOL[metric]), metric


def test_models_are_useful_not_just_consistent():
    """The cards' metrics are in the bands the stand-ins were built for (a broken rebuild fails here)."""
    assert 0.85 < card("qsegment")["metrics"]["roc_auc"] < 0.995
    assert card("lowres_seg")["metrics"]["roc_auc"] > 0.9
    tracker = card("tinytracker")["metrics"]
    assert tracker["gaze_error_cm"] < 2.5
    assert tracker["quantization_gap_cm"] < 0.5


def test_relative_costs_the_twins_rely_on():
    qsegment, wide, tracker = card("qsegment"), card("variants/qsegment_wide"), card("tinytracker")
    assert 6e6 <= qsegment["macs"] <= 10e6
    assert tracker["macs"] >= 4 * qsegment["macs"]
    assert 1.8 <= wide["macs"] / qsegment["macs"] <= 2.2
    assert 550_000 <= tracker["file_bytes"] <= 650_000  # the paper's 600 KB int8 model
    head = card("lowres_seg")["upsampling_head"]["parameters"]
    assert 0 < head < 200


def test_the_head_pair_differs_only_by_the_head():
    """lowres_seg and its base: the same encoder, trained the same way; the learned head adds < 200
    parameters (the paper's bound) over the base's 1x1 predictor, and no other parameter differs."""
    head, base = card("lowres_seg"), card("variants/lowres_seg_base")
    extra = head["upsampling_head"]["parameters"] - base["upsampling_head"]["parameters"]
    assert 0 < extra < 200
    assert head["parameters"] - base["parameters"] == extra
    assert head["input"] == base["input"] and head["output"] == base["output"]
    assert {k: v for k, v in head["provenance"].items() if k not in ("date", "final_train_loss", "training_time_s")} \
        == {k: v for k, v in base["provenance"].items() if k not in ("date", "final_train_loss", "training_time_s")}


def test_float_twin_has_the_int8_models_shape_and_parameters():
    int8, float32 = card("tinytracker"), card("tinytracker_float")
    assert int8["parameters"] == float32["parameters"] and int8["macs"] == float32["macs"]
    assert float32["input"]["dtype"] == "float32" and int8["input"]["dtype"] == "int8"
    assert float32["file_bytes"] > 3 * int8["file_bytes"]
