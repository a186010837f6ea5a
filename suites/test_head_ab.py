"""The low-res-input paper's claim as a same-board A/B: what the learned high-res head buys and costs.

The paper: a high-res ground-truth head of < 200 parameters raises segmentation quality by 5.5 % while
throughput drops from 25 to 20 fps on a Jetson Nano. The pair shipped for it (built by
`scripts/build_models.py`, trained the same way on the same synthetic data) is `lowres_seg` (the head: a
4x4 stride-4 transposed conv, 129 parameters) and `variants/lowres_seg_base` (the same encoder, a 1x1
predictor at 64 px and a bilinear 4x resize: 9 parameters). Both run on the one board of the pair, their
latency rounds interleaved (base, head, head, base, ...) so the board's level is shared; side by side:

* `head_quality_ratio`: binary accuracy of the head over the base's on the shipped evaluation set (the
  paper's +5.5 % is 1.055);
* `head_extra_params`: parameters the head adds (deployed graphs, from the .tflite files);
* `head_fps_ratio`: end-to-end frames per second of the head over the base (paired rounds; the paper's
  25 -> 20 fps is 0.8), the median of the per-round ratios, with both sides' `base_fps` / `head_fps`
  recorded beside it.

The budgets (fixtures/budgets.toml) carry the paper's figures as `published`; docs/gate.md says which
the stand-ins reproduce. Skips for any model other than lowres_seg, or when the base is not shipped.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.config.catalog import CatalogModel
from pytest_edgehil.link.eembc import ENERGY_MODE
from pytest_edgehil.measure.latency import stage_timings, timing_arrays_ms
from pytest_edgehil.measure.metrics import segmentation_scores, to_target_shape

HEAD_MODEL = "lowres_seg"
BASE_PATH = ("variants", "lowres_seg_base.tflite")  # beside the catalog's models, out of its pairs
ROUNDS = 4  # latency rounds per side; the order alternates so a slow drift weighs on both alike


@pytest.fixture
def base_model(edgehil_model: CatalogModel, edgehil_session) -> CatalogModel:
    if edgehil_model.name != HEAD_MODEL:
        pytest.skip(f"the head A/B is about {HEAD_MODEL}; {edgehil_model.name!r} has no base variant")
    path = edgehil_session.catalog.models_dir.joinpath(*BASE_PATH)
    if not path.is_file():
        pytest.skip(f"no base model {path}: build it with `python scripts/build_models.py train --only "
                    "variants/lowres_seg_base` then `cards`")
    return edgehil_session.catalog.get(str(path))


@pytest.mark.edgehil_metrics("head_quality_ratio", "head_extra_params", "head_fps_ratio", "base_fps", "head_fps",
                                "base_binary_accuracy")
def test_head_against_base(edgehil_dut, edgehil_model, base_model, edgehil_record, eval_set, latency_runs,
                           device_outputs):
    if ENERGY_MODE in edgehil_dut.hello.capabilities:
        pytest.skip(f"device {edgehil_dut.name!r} runs energy-mode firmware, which prints no timestamps")
    images = [x for x, _ in eval_set]
    masks = np.stack([np.asarray(y) for _, y in eval_set])
    sides = {"base": base_model, "head": edgehil_model}
    accuracy, fps_rounds = {}, {"base": [], "head": []}
    try:
        for name, model in sides.items():
            prob = device_outputs(model, images)
            accuracy[name] = segmentation_scores(to_target_shape(prob, masks, f"model {model.name!r}"),
                                                 masks).binary_accuracy
        for index in range(ROUNDS):
            for name in (("base", "head") if index % 2 == 0 else ("head", "base")):
                edgehil_dut.ensure_model(sides[name].data, sides[name].name)
                timings = stage_timings(edgehil_dut, latency_runs, ("end-to-end",),
                                        output_bytes=sum(o.size_bytes for o in sides[name].info.outputs))
                ms = timing_arrays_ms(timings)["end_to_end_ms"]
                fps_rounds[name].append(1e3 / float(np.median(ms)))
    finally:
        edgehil_dut.ensure_model(edgehil_model.data, edgehil_model.name)
    # Each round's ratio is one paired difference; their median is the cost (the statistic the gate
    # compares across sessions, so the recorded value and the gate's figure are one number).
    round_ratios = np.array(fps_rounds["head"]) / np.array(fps_rounds["base"])
    edgehil_record.check("base_fps", float(np.median(fps_rounds["base"])), samples=fps_rounds["base"])
    edgehil_record.check("head_fps", float(np.median(fps_rounds["head"])), samples=fps_rounds["head"])
    edgehil_record.check("base_binary_accuracy", accuracy["base"], samples=len(images))
    edgehil_record.check("head_extra_params", edgehil_model.info.parameters - base_model.info.parameters)
    # head fps / base fps, per round and overall (median, with its CI): 0.8 is the paper's 25 -> 20 fps.
    edgehil_record.check_median("head_fps_ratio", round_ratios.tolist())
    edgehil_record.check("head_quality_ratio", accuracy["head"] / accuracy["base"], samples=len(images))
