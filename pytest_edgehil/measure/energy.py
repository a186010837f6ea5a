"""Energy per inference from a digitized power trace: pure functions on plain arrays, units in names.

A trace is two equal-length 1-D arrays: `time_s` (seconds, strictly increasing, uniformly sampled; t = 0
is the trigger edge the device raised at the start of the first inference of a RUN) and `power_w`
(watts, supply power V·I per sample). A window is `[t0_s, t1_s]` on that time axis; energies are joules.

The production math (`energy_from_trace`) is step-aware, not plain trapezoids: a device changes stage
exactly where its firmware moves the trigger line, so the power steps at each window edge, and each
sample is read as the mean power over its own interval (an integrating converter). The whole samples
inside a window add up exactly; the one sample straddling each edge is split: its energy minus the part
outside the window, priced at the neighbouring outside sample's level (`stage_edges`). For flat stages
that is exact up to the noise of those samples; where the outside level drifts within one sample
interval, each edge errs by at most dt·|ΔP| (ΔP: the outside level's departure from its neighbouring
sample). Plain trapezoids would smear each step over a sample instead, erring by step·dt/4 per edge on
average and step·dt/2 at worst: about 3 % (up to 6 %) of a 0.23 ms window at 200 kS/s (46 samples)
beside the IMX500's 4x readout. The trapezoid integrators are kept in the tests as
reference oracles (`tests/oracles.py`), not here.

Besides energy, the trace times each inference itself (`active_window.active_window_s`, a second latency
beside the device's timer); the trace and its windows are checked first (`trace_checks`). Nothing here does
I/O or knows about instruments or pytest; the device's per-inference timings are duck-typed (attributes `start_us`, `readout_us`, `inference_us`, `retrieval_us`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from pytest_edgehil.errors import CannotResolve, MeasurementError
from pytest_edgehil.measure.active_window import active_window_s
from pytest_edgehil.measure.clock_map import CLOCK_TOLERANCE
from pytest_edgehil.measure.device_windows import (
    device_tick_s,
    end_to_end_windows_s,
    inference_windows_s,
    stage_windows_s,
)
from pytest_edgehil.measure.envelope_window import envelope_end_to_end
from pytest_edgehil.measure.point_sampling import (
    POINT_ERROR_REL,
    point_sampling_refusal,
    unclassified_refusal,
)
from pytest_edgehil.measure.run_envelope import (
    MapEnds,
    clock_within_envelope,
    envelope_tolerance_s,
    map_within_envelope,
    run_envelope_s,
)
from pytest_edgehil.measure.run_window import run_window_energy
from pytest_edgehil.measure.trace_checks import as_trace, check_increasing, trace_sample_interval_s
from pytest_edgehil.measure.trace_latency import trace_inference_s
from pytest_edgehil.measure.trace_windows import locate_edges
from pytest_edgehil.measure.uncertainty_refusal import pricing_refusal, uncertainty_refusal
from pytest_edgehil.measure.window_energies import window_energies
from pytest_edgehil.measure.zero_stages import zero_stage_refusal

# The device's windows (device_windows), the trace's own latency (active_window) and the sample interval
# (trace_checks) stay importable from here, where callers have long found them.
__all__ = ["RESOLVE_FIX", "EnergySamples", "active_window_s", "device_tick_s", "end_to_end_windows_s",
           "energy_from_trace", "inference_windows_s", "mean_power_w", "power_from_current_voltage_w",
           "run_energy_from_trace", "stage_windows_s", "trace_sample_interval_s"]


# ---------------------------------------------------------------------------------------- integration

def power_from_current_voltage_w(current_a: ArrayLike, voltage_v: ArrayLike) -> np.ndarray:
    """Instantaneous supply power, sample by sample (both arrays from the same simultaneous sweep)."""
    i_a = np.asarray(current_a, dtype=np.float64)
    v_v = np.asarray(voltage_v, dtype=np.float64)
    if i_a.shape != v_v.shape:
        raise MeasurementError(f"current_a {i_a.shape} and voltage_v {v_v.shape} differ in length; "
                               "fetch both arrays from the same acquisition")
    return i_a * v_v


def mean_power_w(energy_j: ArrayLike, window_s: ArrayLike) -> np.ndarray | float:
    """Mean power over a window: energy divided by its length (element-wise for arrays)."""
    result = np.asarray(energy_j, dtype=np.float64) / np.asarray(window_s, dtype=np.float64)
    return float(result) if result.ndim == 0 else result


# ------------------------------------------------------------------------------------- per run

@dataclass(frozen=True, eq=False)
class EnergySamples:
    """Per-inference energy of one RUN, with the trace's own timing of each inference stage.

    `trace_inference_s[i]` is NaN where the trace cannot time inference i (its power does not stand out
    from the neighbouring stages); `trace_latency_note` then says why for the first such inference.
    `*_u_j` are 1-sigma (standard) uncertainties: the trace's own part (noise over the window, each edge's
    placement, the clock fit) and, once the meter has stated it (`measure.instrument_accuracy`), the
    instrument's data-sheet limit as a rectangular distribution's; `*_instrument_j` are those limits
    themselves (J, the worst case its offset and gain can move each window; empty until stated).
    `clock_ratio` is analyzer seconds per device second as fitted from the trace's edges.
    """

    inference_j: np.ndarray
    end_to_end_j: np.ndarray
    inference_power_w: np.ndarray
    end_to_end_power_w: np.ndarray
    trace_inference_s: np.ndarray
    sample_interval_s: float
    trace_latency_note: str = ""
    inference_u_j: np.ndarray = field(default_factory=lambda: np.zeros(0))
    end_to_end_u_j: np.ndarray = field(default_factory=lambda: np.zeros(0))
    clock_ratio: float = 1.0
    clock_ratio_u: float = 0.0
    offset_s: float = 0.0
    # Why the inference windows were refused while end to end was measured (a point-sampled trace whose
    # samples cannot price them to 1 %); the inference arrays are then empty. None when measured.
    inference_refusal: CannotResolve | None = None
    inference_instrument_j: np.ndarray = field(default_factory=lambda: np.zeros(0))
    end_to_end_instrument_j: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def count(self) -> int:
        return int(self.inference_j.size)


RESOLVE_FIX = ("use a finer sample interval (SENS:SWE:TINT, FLOG:SRAT) or measure a longer window "
               "(many inferences back to back under one trigger, energy divided by their number)")


def energy_from_trace(time_s: ArrayLike, power_w: ArrayLike, timings: Iterable[Any], *,
                      point_error_rel: float | None = POINT_ERROR_REL, origin_u_s: float = 0.0) -> EnergySamples:
    """Energy of every inference (inference stage and end to end) of a RUN from one trace and its timings.

    The windows are placed from the trace (`trace_windows.locate_edges`: each edge's energy centroid, the
    device/analyzer clock ratio fitted over the run), not from the device's timer alone; each located edge
    is priced from its flat side at its best position, its kind judged over the run (`edge_pricing`). Raises
    MeasurementError when a window lies outside the trace, CannotResolve when a window holds fewer than
    two samples, an edge of it sits beside a stage shorter than two samples or the device's timer read a stage
    as 0 µs (`zero_stages.zero_stage_refusal`, naming its tick), WindowMisplaced when an
    edge in the trace is off the fitted device clock.

    A point-sampled trace prices each edge to one sample of its step (`point_sampling`): an end-to-end
    window it cannot price to `point_error_rel` raises CannotResolve; inference windows it cannot price
    come back empty with `inference_refusal` saying why (end to end still measured). A run with too few
    located steps to tell the sampling model (≤ 3 inferences) is held to point sampling's worst case at
    0.5 % the same way (`point_sampling.unclassified_refusal`). `point_error_rel=None` turns both checks off
    (to test the pricing itself against its closed-form bound). Windows whose edges the trace does not show and an
    unpinned clock places (`uncertainty_refusal.MAX_DRIFT_REL`), and windows whose edges' pricing carries a
    systematic bound over it (`uncertainty_refusal.pricing_refusal`: stage power not flat beside them, edge
    kinds that disagree on the clock map), are refused the same way: inference windows by
    `inference_refusal`, end-to-end by CannotResolve, unless the RUN's envelope stands in for end-to-end
    windows the device's stamps cannot place (`envelope_window`: one value, the envelope's energy / n).
    `origin_u_s`: how far t = 0 may be from the device's time 0 (`trace_windows.locate_edges`).
    """
    t, p = as_trace(time_s, power_w)
    check_increasing(np.diff(t[:2]))
    timing_list = list(timings)
    if (zero := zero_stage_refusal(timing_list, trace_sample_interval_s(t))) is not None:  # the timer's fault
        raise zero
    inference_w = inference_windows_s(timing_list)
    end_to_end_w = end_to_end_windows_s(timing_list)
    # Each edge's kind (readout start, inference start, inference end, retrieval end): the edges of one kind
    # share what lies beside them, so the locator judges and prices them together (`edge_pricing`).
    kinds = np.concatenate([np.broadcast_to([1, 2], inference_w.shape), np.broadcast_to([0, 3], end_to_end_w.shape)])
    tick_s = device_tick_s(timing_list)
    envelope_s = run_envelope_s(t, p)  # read once: the locator's clock until edges pin one, the checks below
    fit = locate_edges(t, p, np.concatenate([inference_w, end_to_end_w]).reshape(-1), origin_u_s=origin_u_s,
                       stamp_u_s=tick_s, kinds=kinds.reshape(-1), envelope_s=envelope_s)
    span_s = float(end_to_end_w[-1, 1] - end_to_end_w[0, 0])
    # The RUN's envelope (its first step out of idle, its last back) checks the map where a wrong ratio or
    # offset shows most: at the RUN's ends, within what the map's own uncertainty and drift bound allow there.
    drift_s = 0.0 if fit.drift_s is None else float(max(fit.drift_s[0], fit.drift_s[-1]))
    map_ends = MapEnds(fit.offset_s, fit.clock_ratio, float(end_to_end_w[0, 0]),
                       envelope_tolerance_s(fit.sample_interval_s, fit.supply_tau_s, tick_s,
                                            fit.residual_s + fit.clock_ratio_u * span_s) + drift_s)
    if not fit.clock_pinned:  # windows placed by the device's timer alone: its envelope checks that clock
        clock_within_envelope(envelope_s, float(t[1] - t[0]), span_s, CLOCK_TOLERANCE, ends=map_ends)
    else:
        map_within_envelope(envelope_s, float(t[1] - t[0]), span_s, fit.clock_ratio, fit.clock_ratio_u, ends=map_ends)
    n = len(timing_list)
    inference_names = [f"inference window {i}" for i in range(n)]
    inference_j, inference_u, _ = window_energies(fit, inference_w, inference_names, RESOLVE_FIX)
    end_to_end_names = [f"end-to-end window {i}" for i in range(n)]
    end_to_end_j, end_to_end_u, _ = window_energies(fit, end_to_end_w, end_to_end_names, RESOLVE_FIX)
    # The trace's own latency: from one power step's centroid to the other's, where the stage stands out.
    trace_s, note = trace_inference_s(fit, inference_w)
    refusal = None
    if point_error_rel is not None:
        e2e_refusal = (point_sampling_refusal(fit, end_to_end_w, end_to_end_j, end_to_end_names, point_error_rel)
                       or unclassified_refusal(fit, end_to_end_w, end_to_end_j, end_to_end_names))
        if e2e_refusal is not None:
            raise e2e_refusal
        refusal = (point_sampling_refusal(fit, inference_w, inference_j, inference_names, point_error_rel)
                   or unclassified_refusal(fit, inference_w, inference_j, inference_names))
    e2e_placement = (uncertainty_refusal(fit, end_to_end_w, end_to_end_j, end_to_end_names)
                     or pricing_refusal(fit, end_to_end_w, end_to_end_j, end_to_end_names))
    # Windows the stamps cannot place inside a RUN the trace shows: end to end from its envelope instead.
    envelope = None if e2e_placement is None else envelope_end_to_end(fit, end_to_end_w, RESOLVE_FIX)
    if e2e_placement is not None and envelope is None:
        raise e2e_placement
    refusal = (refusal or uncertainty_refusal(fit, inference_w, inference_j, inference_names)
               or pricing_refusal(fit, inference_w, inference_j, inference_names))
    if refusal is not None:
        inference_j = inference_u = trace_s = np.zeros(0)
        inference_w = inference_w[:0]
        note = ""
    end_to_end_s = end_to_end_w[:, 1] - end_to_end_w[:, 0]
    if envelope is not None:
        end_to_end_j, end_to_end_u = np.array([envelope.energy_j]), np.array([envelope.u_j])
        end_to_end_s, note = np.array([envelope.window_s]), "; ".join(filter(None, (note, envelope.note)))
    return EnergySamples(
        inference_j=inference_j,
        end_to_end_j=end_to_end_j,
        # Mean power over the device's own stage time (the latency the same record reports).
        inference_power_w=np.asarray(mean_power_w(inference_j, inference_w[:, 1] - inference_w[:, 0])),
        end_to_end_power_w=np.asarray(mean_power_w(end_to_end_j, end_to_end_s)),
        trace_inference_s=trace_s, sample_interval_s=fit.sample_interval_s, trace_latency_note=note,
        inference_u_j=inference_u, end_to_end_u_j=end_to_end_u, clock_ratio=fit.clock_ratio,
        clock_ratio_u=fit.clock_ratio_u, offset_s=fit.offset_s, inference_refusal=refusal)


def run_energy_from_trace(time_s: ArrayLike, power_w: ArrayLike, timings: Iterable[Any], *,
                          tick_s: float | None = None) -> EnergySamples:
    """End-to-end energy per inference as one long window over back-to-back inferences, divided by their
    number (MLPerf Tiny's way): for an analyzer too slow for per-inference windows, or one that keeps no
    pre-trigger samples. The window runs from the end of the second inference's retrieval to the end of
    the last one's (n - 2 of n), needing no sample before the trigger: its end at the RUN's last step back to
    idle, its start placed from the trigger by the device's clock (`run_window`). One end-to-end value and
    its uncertainty; `inference_j` empty, `trace_latency_note` says why. Raises CannotResolve (fewer than 3
    inferences, < 2 samples, the RUN's end not shown) and WindowMisplaced (that end 0.5 % off the device's clock).
    `tick_s`: the device timer's tick (s) as more RUNs' stamps show it (default: this RUN's, `device_tick_s`).
    """
    t, p = as_trace(time_s, power_w)
    timing_list = list(timings)
    end_to_end_w = end_to_end_windows_s(timing_list)
    dt_s = trace_sample_interval_s(t)
    if len(timing_list) < 3:
        raise CannotResolve("run window", (0.0, float(end_to_end_w[-1, 1])), dt_s,
                            "a run window needs at least three inferences", "run more inferences per window")
    stages = stage_windows_s(timing_list)
    tick_s = device_tick_s(timing_list) if tick_s is None else tick_s
    window = run_window_energy(t, p, float(end_to_end_w[1, 1]), float(end_to_end_w[-1, 1]),
                               next_stage_s=float(np.diff(stages["readout"][2])[0]), tick_s=tick_s, fix=RESOLVE_FIX)
    count = len(timing_list) - 2
    return EnergySamples(
        inference_j=np.zeros(0), end_to_end_j=np.array([window.energy_j / count]), inference_power_w=np.zeros(0),
        end_to_end_power_w=np.array([window.energy_j / window.length_s]), trace_inference_s=np.zeros(0),
        sample_interval_s=dt_s,
        trace_latency_note=(f"per-inference windows not measured (the meter's refusal says why: the analyzer "
                            f"or the device's timer): the end-to-end energy is one window over {count} back-to-back "
                            f"inferences / {count}"),
        inference_u_j=np.zeros(0), end_to_end_u_j=np.array([window.u_j / count]), clock_ratio=window.clock_ratio,
        clock_ratio_u=window.clock_ratio_u, offset_s=0.0)
