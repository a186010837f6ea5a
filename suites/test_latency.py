"""Latency budgets: inference and end-to-end, with the on-device stage split."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.link.eembc import ENERGY_MODE
from pytest_edgehil.measure.latency import stage_timings, timing_arrays_ms


def _timed_ms(dut, runs, stages, info):
    """Stage times in ms; skips, with the reason, on MLPerf Tiny energy-mode firmware (it prints no timestamps:
    its latency is the energy test's timestamp window / N, on the monitor's clock)."""
    if ENERGY_MODE in dut.hello.capabilities:
        pytest.skip(f"device {dut.name!r} runs MLPerf Tiny energy-mode firmware, which prints no timestamps; its "
                    "latency per inference is the energy window / N (test_energy); flash the performance-mode "
                    "build for the latency suite")
    # The outputs ride in each RESULT beside the stage times: a model with large ones gets shorter RUNs.
    output_bytes = sum(spec.size_bytes for spec in info.outputs)
    return timing_arrays_ms(stage_timings(dut, runs, stages, output_bytes=output_bytes))


@pytest.mark.edgehil_metrics("inference_ms", unbudgeted=True)
def test_inference_latency(edgehil_dut, edgehil_record, latency_runs, edgehil_model_info):
    ms = _timed_ms(edgehil_dut, latency_runs, ("inference",), edgehil_model_info)
    edgehil_record.check_median("inference_ms", ms["inference_ms"])


@pytest.mark.edgehil_metrics("end_to_end_ms", "readout_ms", "retrieval_ms", "fps", unbudgeted=True)
def test_end_to_end_latency(edgehil_pair, edgehil_dut, edgehil_record, latency_runs, edgehil_model_info):
    # Stages first, so a failing end-to-end budget comes with the split that explains it. The inference
    # stage too where test_inference_latency does not run (a budget without inference_ms): measured here
    # all the same, it is recorded without a budget, so the split prints it instead of "?".
    stages = ["readout_ms", "retrieval_ms"]
    if edgehil_pair.budget is not None and not edgehil_pair.has_any(("inference_ms",)):
        stages.insert(1, "inference_ms")
    # The stages recorded here must be ones the device's timer resolves (stage_timings refuses the others).
    ms = _timed_ms(edgehil_dut, latency_runs, [s.removesuffix("_ms") for s in stages] + ["end-to-end"],
                   edgehil_model_info)
    for stage in stages:
        edgehil_record.check_median(stage, ms[stage])
    edgehil_record.check_median("end_to_end_ms", ms["end_to_end_ms"])
    # Frames per second of each inference, so the gate can test a fall as it tests a latency rise; the
    # value is the rate at the median end-to-end time.
    edgehil_record.check("fps", 1e3 / float(np.median(ms["end_to_end_ms"])),
                         samples=(1e3 / ms["end_to_end_ms"]).tolist())
