"""Energy per inference from a board's own energy counters (an agent's ENERGY_READ), without an analyzer.

A low-rate monitor: the agent reads its counters (RAPL, hwmon accumulators, integrated INA rails, NVML)
just before the first and just after the last inference of a RUN, so one window = one RUN of n
back-to-back inferences and energy per inference = Δcounter / n (end to end: copy-in, inference and
copy-out, with the agent's loop between inferences). n is sized from the counter's update period so that
an update period at each end stays under 1 % of the window's energy (`counter_energy.min_window_s`), and
never below the energy plan's windows of `min_window_s`. A window the counter still cannot resolve (given
`runs` too small, a rail whose sampler fell behind) is refused with CannotResolve naming the counter and
the n needed. Per-inference and per-stage energy cannot come from a counter that updates every
millisecond or slower: `EnergyMeasurement.inference_j` raises the CannotResolve that says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from pytest_edgehil.bench import DeviceUnderTest
from pytest_edgehil.errors import CannotResolve, InvalidPayload, MeasurementError, ProtocolError
from pytest_edgehil.link.energy_messages import CAPABILITY, CounterWindow, EnergyCounters
from pytest_edgehil.link.messages import TIMINGS_PER_RUN, StageTiming
from pytest_edgehil.link.replies import ROUND_TRIP_CLOCK_TOLERANCE, ROUND_TRIP_SLACK_S
from pytest_edgehil.measure.counter_energy import (
    DEFAULT_REL,
    CounterReading,
    CounterSpec,
    energy_per_inference_j,
    window_uncertainty_j,
)
from pytest_edgehil.measure.energy import EnergySamples
from pytest_edgehil.measure.meter import EnergyMeasurement, EnergyPlan

PROBE_RUNS = 5
SIZING_MARGIN = 1.25  # run this much longer than the counter's minimum window: the refusal stays the exception


def has_onboard_counters(dut: DeviceUnderTest) -> bool:
    """Whether the board serves ENERGY_READ (its HELLO lists `energy_read`)."""
    return CAPABILITY in dut.hello.capabilities


def window_source(runs: int) -> str:
    return f"on-board counter over {runs} inferences"


def _pick(counters: EnergyCounters, counter_id: str | None, device: str) -> CounterWindow:
    usable = [w for w in counters.windows if counter_id in (None, w.counter_id)]
    if not usable:
        offered = ", ".join(w.counter_id for w in counters.windows) or "none"
        raise MeasurementError(f"device {device!r} offers no on-board counter {counter_id or ''} (it offers: "
                               f"{offered}); name one it offers, or wire a power analyzer")
    return next((w for w in usable if not w.note), usable[0])


def _spec(window: CounterWindow) -> CounterSpec:
    # The agent unwrapped the counter: its values only grow, so no wrap range here (max_range_uj 0).
    return CounterSpec("on-board", window.counter_id, 0, window.resolution_uj, window.update_us * 1e-6)


def runs_for(window: CounterWindow, period_s: float, plan: EnergyPlan, rel: float = DEFAULT_REL) -> int:
    """Inferences per window: the plan's (runs, min_window_s), and enough for the counter's update period
    (2 update periods under `rel` of the window, with SIZING_MARGIN)."""
    needed_s = SIZING_MARGIN * 2 * window.update_us * 1e-6 / rel
    # The plan's 10 s is capped at what one RESULT returns (TIMINGS_PER_RUN, as measure/meter.py does): for a
    # frame that short, 65,536 inferences already make the window's edges negligible.
    planned = min(math.ceil(plan.min_window_s / period_s), TIMINGS_PER_RUN)
    needed = math.ceil(needed_s / period_s)
    if needed > TIMINGS_PER_RUN:  # the counters bracket one RUN, and no RESULT returns a RUN that long
        raise CannotResolve(
            "end-to-end window", (0.0, needed_s), window.update_us * 1e-6,
            f"the on-board counter {window.counter_id} ({window.label}) updates every "
            f"{window.update_us / 1e3:.3g} ms: within {rel:.0%} it needs {needed_s:.3g} s of inferences, {needed:,} "
            f"at {period_s * 1e6:.3g} µs each, over the {TIMINGS_PER_RUN:,} one RUN's RESULT returns",
            "name a faster counter of the board (counter_id), or measure with a power analyzer")
    return max(plan.runs_per_window, planned, needed)


def counter_window_energy(window: CounterWindow, count: int, *, device: str,
                          rel: float = DEFAULT_REL) -> tuple[float, float, float]:
    """(energy per inference J, its uncertainty bound J, mean power W) of one RUN's counter window.
    CannotResolve when the window is too short for the counter; MeasurementError for a window the agent
    marked unusable (a read failed, a possible double wrap)."""
    if window.note:
        raise MeasurementError(f"device {device!r}: on-board counter {window.counter_id} over RUN {count}: "
                               f"{window.note}")
    spec = _spec(window)
    start = CounterReading(window.start_uj, window.start_us * 1e-6)
    end = CounterReading(window.end_uj, window.end_us * 1e-6)
    per_inference_j = energy_per_inference_j(spec, start, end, count, max_power_w=0.0, rel=rel)
    window_s = end.time_s - start.time_s
    total_j = per_inference_j * count
    return per_inference_j, window_uncertainty_j(spec, total_j, window_s) / count, total_j / window_s


def check_window_clock(window: CounterWindow, timings: Sequence[StageTiming], round_trip_s: float, *,
                       device: str, port: str) -> None:
    """The counter window's board-µs stamps against the RUN they bracket: read just before its first
    inference and just after its last, on the clock that timed its stages, the window spans at least the RUN
    (first `start_us` to the end of the last inference) and at most the host's round trip of the RUN (s),
    each within ROUND_TRIP_CLOCK_TOLERANCE and ROUND_TRIP_SLACK_S. Else InvalidPayload: the stamps are not in
    µs (a ns clock makes the mean power 1000x too low, a ms clock 1000x too high) or not the RUN's."""
    if not timings:
        return
    window_us = float(window.end_us) - float(window.start_us)
    last = timings[-1]
    run_us = last.start_us - timings[0].start_us + last.inference_us
    slack_us = ROUND_TRIP_SLACK_S * 1e6
    longest_us = round_trip_s * 1e6 * (1 + ROUND_TRIP_CLOCK_TOLERANCE) + slack_us
    if window_us * (1 + ROUND_TRIP_CLOCK_TOLERANCE) + slack_us < run_us or window_us > longest_us:
        raise InvalidPayload(
            f"device {device!r} on {port}: on-board counter {window.counter_id} brackets RUN {len(timings)} with a "
            f"window of {window_us:.6g} µs (start_us {window.start_us}, end_us {window.end_us}), but the RUN's own "
            f"stage timings span {run_us:.6g} µs and the host's round trip took {round_trip_s * 1e6:.6g} µs: the "
            "window is not stamped in µs on the board clock that times the stages (a ns or ms clock?), so its "
            "mean power would be off by that factor. Nothing was recorded; stamp ENERGY_COUNTERS' start_us/"
            "end_us in board µs (docs/protocol.md, \"On-board energy\"), then rerun.")


def stage_refusal(window: CounterWindow) -> CannotResolve:
    return CannotResolve("inference window", (0.0, 0.0), window.update_us * 1e-6,
                         f"the on-board counter {window.counter_id} updates every {window.update_us / 1e3:.3g} ms, "
                         "far slower than one inference's stages: it gives energy over many inferences only",
                         "per-inference and per-stage energy need a digitizing analyzer (N6705C/N678xA, NGM202)")


def measure_onboard_energy(dut: DeviceUnderTest, plan: EnergyPlan | None = None, *, runs: int | None = None,
                           counter_id: str | None = None, rel: float = DEFAULT_REL) -> EnergyMeasurement:
    """End-to-end energy per inference of the active model (input already set) from the board's counters.

    `plan.windows` RUNs of n inferences, n from `runs` or sized by `runs_for` (from the probe, and once more
    from the first window too short for the counter, the windows then measured again); `counter_id` picks a counter
    (default: the first the agent lists without a note, RAPL package zones first). Raises CannotResolve
    (too short for the counter: names it and the n needed), MeasurementError (no such counter, a window
    the agent marked unusable), ProtocolError (the counters bracket another RUN than the one sent).
    """
    plan = plan or EnergyPlan.simulated()
    # The period sizes n: the shortest of a few (a first inference warms caches up, a loaded CPU stalls
    # some), so that n errs long; the probe's counters say which counters there are.
    probe = dut.client.run(PROBE_RUNS)
    window = _pick(dut.client.energy_counters(), counter_id, dut.name)
    period_s = max(min(t.end_to_end_us for t in probe.timings) * 1e-6, 1e-9)
    n = runs if runs is not None else runs_for(window, period_s, plan, rel)
    measurement = EnergyMeasurement(sample_interval_s=window.update_us * 1e-6, idn=window.counter_id,
                                    instrument=f"on-board {window.label}", window_source=window_source(n),
                                    refusal=stage_refusal(window))
    resized = runs is not None  # a caller's n is run as given
    while len(measurement.windows) < plan.windows:
        began_s = time.monotonic()
        result = dut.client.run(n)
        round_trip_s = time.monotonic() - began_s
        counters = dut.client.energy_counters()
        if counters.run_count != n:
            raise ProtocolError(f"device {dut.name!r}: ENERGY_COUNTERS bracket a RUN of {counters.run_count}, "
                                f"the host sent RUN {n}; update the agent")
        window = _pick(counters, window.counter_id, dut.name)
        check_window_clock(window, result.timings, round_trip_s, device=dut.name, port=dut.client.port)
        try:
            energy_j, u_j, power_w = counter_window_energy(window, n, device=dut.name, rel=rel)
        except CannotResolve:
            if resized:
                raise
            # n came from the probe: the board then ran faster, or the counter's stated period (which carries
            # its read brackets) grew on a loaded board. Sized again from this window, once, every window with
            # the one n; a board that still cannot make it is refused. From its fastest inference, as the probe
            # sizes n: the window's mean per inference carries this RUN's stalls, which the next RUN may not
            # have (a loaded board then ran its n faster and was refused again, a CI flake).
            resized = True
            fastest_s = max(min(t.end_to_end_us for t in result.timings) * 1e-6, 1e-9)
            n = max(n + 1, runs_for(window, fastest_s, plan, rel))
            measurement.window_source = window_source(n)
            measurement.windows.clear()
            measurement.timings.clear()
            continue
        empty = np.zeros(0)
        measurement.windows.append(EnergySamples(
            inference_j=empty, end_to_end_j=np.array([energy_j]), inference_power_w=empty,
            end_to_end_power_w=np.array([power_w]), trace_inference_s=empty,
            sample_interval_s=window.update_us * 1e-6, end_to_end_u_j=np.array([u_j]),
            inference_refusal=measurement.refusal))
        measurement.timings.append(tuple(result.timings))
    return measurement
