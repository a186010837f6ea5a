"""Latency budgets: inference and end-to-end, with the on-device stage split."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.measure.latency import stage_timings, timing_arrays_ms


@pytest.mark.edgehil_metrics("inference_ms", unbudgeted=True)
def test_inference_latency(edgehil_dut, edgehil_record, latency_runs):
    ms = timing_arrays_ms(stage_timings(edgehil_dut, latency_runs))
    edgehil_record.check_median("inference_ms", ms["inference_ms"])


@pytest.mark.edgehil_metrics("end_to_end_ms", "readout_ms", "retrieval_ms", "fps", unbudgeted=True)
def test_end_to_end_latency(edgehil_dut, edgehil_record, latency_runs):
    ms = timing_arrays_ms(stage_timings(edgehil_dut, latency_runs))
    # Stages first, so a failing end-to-end budget comes with the split that explains it.
    for stage in ("readout_ms", "retrieval_ms"):
        edgehil_record.check_median(stage, ms[stage])
    edgehil_record.check_median("end_to_end_ms", ms["end_to_end_ms"])
    # Frames per second of each inference, so the gate can test a fall as it tests a latency rise; the
    # value is the rate at the median end-to-end time.
    edgehil_record.check("fps", 1e3 / float(np.median(ms["end_to_end_ms"])),
                         samples=(1e3 / ms["end_to_end_ms"]).tolist())
