"""Energy budgets: energy per inference and mean power, from a current/voltage trace fetched over PyVISA.

The analyzer arms on the device's trigger line; per-inference windows come from the device's stage
timings; energy is the integral of V·I over each window with step-aware edges (the sample straddling
each edge is split, its outside part priced at the neighbouring outside sample's level; not plain
trapezoids — `pytest_edgehil.measure.stage_edges`), the median of all inferences with a 95 % bootstrap
CI, raw samples kept in the record.
"""

from __future__ import annotations

import numpy as np
import pytest


def _per_inference(energy):
    """Skip, with the meter's typed refusal as the reason, where this analyzer cannot resolve the window or
    its accuracy cannot state it within the budget's tolerance."""
    if energy.inference_refused is not None:
        pytest.skip(f"refused by the meter: {energy.inference_refused}")
    return energy


@pytest.mark.edgehil_metrics("inference_mj", "inference_mw", unbudgeted=True)
def test_inference_energy(edgehil_energy, edgehil_record):
    _per_inference(edgehil_energy)
    edgehil_record.attach_energy_trace(edgehil_energy)
    edgehil_record.check_median("inference_mj", edgehil_energy.inference_j * 1e3)
    edgehil_record.check_median("inference_mw", edgehil_energy.inference_power_w * 1e3)


@pytest.mark.edgehil_metrics("end_to_end_mj", "end_to_end_mw", unbudgeted=True)
def test_end_to_end_energy(edgehil_energy, edgehil_record):
    edgehil_record.attach_energy_trace(edgehil_energy)  # every pair with an energy figure gets its trace
    edgehil_record.check_median("end_to_end_mj", edgehil_energy.end_to_end_j * 1e3)
    edgehil_record.check_median("end_to_end_mw", edgehil_energy.end_to_end_power_w * 1e3)


@pytest.mark.edgehil_metrics("inference_mj", "end_to_end_mj", "trace_inference_ms", unbudgeted=True)
def test_trace_agrees_with_device_timer(edgehil_energy, edgehil_record):
    """The active window seen in the trace is a second latency measurement beside the device's timer."""
    _per_inference(edgehil_energy)
    device_ms = np.concatenate([[t.inference_us / 1e3 for t in run] for run in edgehil_energy.timings])
    trace_ms = edgehil_energy.trace_inference_s * 1e3
    timed = ~np.isnan(trace_ms)
    if not timed.any():
        pytest.skip(f"the trace cannot time the inference stage here: {edgehil_energy.windows[0].trace_latency_note}")
    edgehil_record.check_median("trace_inference_ms", trace_ms[timed])
    if device_ms.size == 0:
        # No device timer to compare with (MLPerf Tiny energy-mode firmware times nothing itself): the trace's
        # window / N, recorded above, is this board's latency.
        return
    dt_ms = edgehil_energy.sample_interval_s * 1e3
    gap_ms = float(np.median(np.abs(trace_ms[timed] - device_ms[timed])))
    assert gap_ms <= max(2 * dt_ms, 0.02 * float(np.median(device_ms))), (
        f"trace says {np.median(trace_ms[timed]):.4f} ms, device timer {np.median(device_ms):.4f} ms "
        f"(median gap {gap_ms:.4f} ms at a {dt_ms * 1e3:.2f} µs sample interval): check the trigger wiring")
