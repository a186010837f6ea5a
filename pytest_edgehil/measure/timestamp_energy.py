"""Energy per inference of a board running MLPerf Tiny's energy-mode firmware, through a power monitor
whose digital input samples the board's timestamp GPIO (`measure.timestamp_windows`).

One window = one monitor capture around one `infer N 0%`: the firmware pulses its timestamp line before
and after the N inferences, the monitor streams current and that line on one time base, and the window's
energy / N is the energy per inference. N comes from the plan: `runs_per_window` inferences, or on the
hardware plan as many as fill `min_window_s` (MLPerf Tiny: 5 windows of >= 10 s), sized from a first
window of one inference. A monitor without a digital input is refused (MonitorLimit), as is a timestamp
pulse too short for its sample interval (CannotResolve, before anything is captured).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pytest_edgehil.errors import MonitorLimit
from pytest_edgehil.instruments.base import PowerAnalyzer, Trace
from pytest_edgehil.measure.energy import EnergySamples
from pytest_edgehil.measure.timestamp_windows import (
    REFERENCE_HOLD_S,
    WINDOW_SOURCE_TIMESTAMP,
    energy_from_timestamps,
    hold_refusal,
)

if TYPE_CHECKING:
    from pytest_edgehil.bench import DeviceUnderTest
    from pytest_edgehil.link.eembc_client import EembcClient
    from pytest_edgehil.measure.meter import EnergyMeasurement, EnergyPlan

# Points asked of the monitor per second of window (a streaming monitor keeps what comes; a digitizer
# would need them): the window plus this margin each side.
_MARGIN_S = 5e-3


def measure_timestamp_energy(dut: DeviceUnderTest, monitor: PowerAnalyzer, *, supply_v: float,
                             current_range_a: float, plan: EnergyPlan,
                             max_instrument_rel: float | None = None) -> EnergyMeasurement:
    """Energy per inference of `dut` (EembcClient in energy mode) from timestamp-delimited windows.

    Returns an EnergyMeasurement with one value per window (`window_source` says the timestamp GPIO).
    Raises MonitorLimit when the monitor samples no digital input, CannotResolve when the lab's
    `timestamp_hold_us` (default: the reference's 1 µs) is shorter than two sample intervals or a capture
    shows fewer than two timestamp edges, WindowMisplaced when it shows more.
    """
    from pytest_edgehil.measure.meter import EnergyMeasurement, stated

    client: EembcClient = dut.client  # type: ignore[assignment]  # the bench gives energy-mode boards one
    if getattr(monitor, "digital_inputs", 0) < 1:
        raise MonitorLimit(f"{monitor.model} at {monitor.resource} samples no digital input beside the current: "
                           f"device {dut.name!r} runs MLPerf Tiny energy-mode firmware, whose windows come from "
                           "its timestamp GPIO; wire that GPIO to a monitor with a logic input (PPK2: D0)")
    dt_s = monitor.supported_sample_interval_s(plan.sample_interval_s)
    hold_us = dut.config.timestamp_hold_us
    refusal = hold_refusal(hold_us * 1e-6 if hold_us is not None else REFERENCE_HOLD_S, dt_s)
    if refusal is not None:
        raise refusal
    # A streaming monitor keeps what comes; a digitizer would need room for the longest window planned.
    points = math.ceil((max(plan.min_window_s * 1.5, 1.0) + 2 * _MARGIN_S) / dt_s)
    monitor.configure(voltage_v=supply_v, current_range_a=current_range_a, sample_interval_s=dt_s,
                      points=min(points, monitor.max_points), pretrigger_points=0)
    count = plan.runs_per_window
    if plan.min_window_s > 0:  # size N from one inference's window, on the monitor's own clock
        probe, _ = _window(client, monitor, 1, plan)
        count = max(count, math.ceil(plan.min_window_s / float(probe.trace_inference_s[0])))
    accuracy = monitor.capture_accuracy()
    measurement = EnergyMeasurement(sample_interval_s=dt_s, idn=monitor.idn, instrument=monitor.model,
                                    window_source=WINDOW_SOURCE_TIMESTAMP, accuracy=accuracy)
    for _ in range(plan.windows):
        samples, trace = _window(client, monitor, count, plan)
        # The firmware times nothing itself: no device windows (the refusal's windows are [0, length]).
        measurement.windows.append(stated(samples, trace, accuracy, (), max_rel=max_instrument_rel))
        measurement.timings.append(())
        measurement.last_trace = trace
    return measurement


def _window(client: EembcClient, monitor: PowerAnalyzer, count: int, plan: EnergyPlan
            ) -> tuple[EnergySamples, Trace]:
    monitor.arm("EXT")
    client.infer_window(count, timeout_s=plan.timeout_s)  # a window of >= 10 s on hardware
    monitor.wait_complete(plan.timeout_s)
    trace = monitor.fetch_trace()
    if trace.digital is None:
        raise MonitorLimit(f"{monitor.model} at {monitor.resource} returned no digital channel with the capture; "
                           "the timestamp GPIO cannot be read")
    return energy_from_timestamps(trace.time_s, trace.power_w, trace.digital, count), trace
