"""Accuracy on the device: segmentation ROC AUC / binary accuracy, gaze error, float-vs-int8 gap.

Outputs come back through the device protocol from the device (or its twin, which runs the model with
LiteRT); the metrics are computed on the host with scikit-learn.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from pytest_edgehil.measure.datasets import CHASE_DB1_FOV_NOTE, describe_chase_db1_split, load_chase_db1
from pytest_edgehil.measure.latency import infer_many
from pytest_edgehil.measure.metrics import (
    gaze_scores,
    quantization_gap_cm,
    quantization_loss_cm,
    segmentation_scores,
    to_target_shape,
)
from pytest_edgehil.model.runtime import ModelRunner

# Published CHASE_DB1 figures are test-set figures: the literature's last 8 images (docs/datasets.md).
CHASE_SPLIT = "test"


def _inputs_targets(dataset):
    pairs = list(dataset)
    return [x for x, _ in pairs], np.stack([np.asarray(y) for _, y in pairs])


@pytest.mark.edgehil_metrics("roc_auc", "binary_accuracy")
def test_segmentation_accuracy(device_outputs, edgehil_model, edgehil_record, eval_set):
    images, masks = _inputs_targets(eval_set)
    prob = to_target_shape(device_outputs(edgehil_model, images), masks, f"model {edgehil_model.name!r}")
    scores = segmentation_scores(prob, masks)
    edgehil_record.check("roc_auc", scores.roc_auc, samples=len(images))
    edgehil_record.check("binary_accuracy", scores.binary_accuracy, samples=len(images))


@pytest.mark.edgehil_metrics("gaze_error_cm")
def test_gaze_error(device_outputs, edgehil_model, edgehil_record, eval_set):
    images, gaze_cm = _inputs_targets(eval_set)
    pred = to_target_shape(device_outputs(edgehil_model, images), gaze_cm, f"model {edgehil_model.name!r}")
    edgehil_record.check("gaze_error_cm", gaze_scores(pred, gaze_cm).mean_cm, samples=len(images))


@pytest.mark.edgehil_metrics("quantization_loss_cm", "quantization_gap_cm")
def test_float_int8_gap(device_outputs, edgehil_model, edgehil_session, edgehil_record, eval_set):
    float_model = edgehil_session.catalog.models_dir / f"{edgehil_model.name}_float.tflite"
    if not float_model.is_file():
        pytest.skip(f"no float twin {float_model.name} beside {edgehil_model.name}")
    images, gaze_cm = _inputs_targets(eval_set)
    pred_int8 = device_outputs(edgehil_model, images).reshape(len(images), -1)
    # The float reference is host work while the board idles: every core the host has (XNNPACK splits
    # each layer's outputs over its threads; the same values as one thread).
    runner = ModelRunner(float_model, num_threads=min(4, os.cpu_count() or 1))
    scored = edgehil_session.catalog.get(str(float_model)).scored_output  # its card's `output.name`, if several
    lo, hi = edgehil_model.input_range
    pred_float = np.stack([
        runner.run([(lo + np.asarray(x, np.float32) / 255.0 * (hi - lo)).reshape(runner.inputs[0].shape)])[scored]
        for x in images]).reshape(len(images), -1)
    # TinyTracker's 0.16 cm is the accuracy lost (int8 error − float error), both errors beside it; how far
    # the points move is an upper bound of it, recorded for information.
    errors = {"int8_error_cm": gaze_scores(pred_int8, gaze_cm).mean_cm,
              "float_error_cm": gaze_scores(pred_float, gaze_cm).mean_cm}
    edgehil_record.check("quantization_loss_cm", quantization_loss_cm(pred_int8, pred_float, gaze_cm),
                         samples=len(images), context=errors)
    edgehil_record.check("quantization_gap_cm", quantization_gap_cm(pred_int8, pred_float), samples=len(images))


@pytest.mark.edgehil_metrics("chase_roc_auc", "chase_binary_accuracy")
def test_chase_db1_accuracy(edgehil_pushed_inputs, edgehil_model, edgehil_record, edgehil_dataset_root):
    if edgehil_dataset_root is None:
        pytest.skip("CHASE_DB1 not available: pass --dataset-root DIR (Image_NNx.jpg + Image_NNx_1stHO.png) "
                    "or set dataset_root in the lab file")
    size = edgehil_model.info.inputs[0].shape[1]
    data = load_chase_db1(edgehil_dataset_root, size=size, split=CHASE_SPLIT)
    images, masks = _inputs_targets(data)
    prob = to_target_shape(infer_many(edgehil_pushed_inputs, edgehil_model, images), masks,
                           f"model {edgehil_model.name!r} on CHASE_DB1")
    scores = segmentation_scores(prob, masks)
    # How the figures were made, beside them: a reader comparing with a paper sees the protocol.
    protocol = {"eval_split": describe_chase_db1_split(CHASE_SPLIT), "eval_pixels": CHASE_DB1_FOV_NOTE,
                "eval_size": f"{size}x{size} (images bilinear, first-observer masks nearest neighbour)",
                "eval_scoring": "pooled pixels; ROC AUC exact (scikit-learn); accuracy of probability > 0.5"}
    edgehil_record.check("chase_roc_auc", scores.roc_auc, samples=len(images), context=protocol)
    edgehil_record.check("chase_binary_accuracy", scores.binary_accuracy, samples=len(images), context=protocol)
