"""Where a RUN starts in a record that has no trigger: the first power step out of the opening level.

A FastLog stream (R&S NGM202) starts when the host sends `FLOG 1`, some tens of milliseconds (on the
simulated bench, tens of microseconds) before the device starts its RUN; nothing in the data marks
the device's trigger (R&S documents no trigger input for FastLog). The RUN's first stage, the sensor
readout, draws more than the idle board (every profile we model; a board whose readout draws its idle
power would be refused here, not mis-placed), so the RUN starts where the power first steps away from
the level the record opens with. That instant is located to a fraction of a sample (half-level
crossing of an integrated step), close enough for `trace_windows.locate_edges`, which then fits every
edge's exact place and the clock ratio itself.

A record that opens on the previous command's activity still decaying through a slow supply path (a
12.5 µs decoupling RC, a 5 kHz front end) may not reach idle before the RUN begins: its start cannot be
told, and the refusal names the path's time constant fitted from that decay (`SupplyPathTooSlow`), not
a missing RUN.

Pure functions on arrays; time in seconds, power in watts.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from pytest_edgehil.errors import MeasurementError, SupplyPathTooSlow
from pytest_edgehil.measure.settling import SETTLE_COVER, SETTLE_STAGE_TAUS, opening_decay_tau_s

# The opening level is read from this many samples at least (the idle lead before the RUN) ...
LEAD_SAMPLES = 4
# ... and a departure counts when it stands this many noise sigmas and this fraction of the larger level
# away from it (the same bar trace_windows sets for a locatable edge), for this many samples in a row.
_MIN_STEP_SIGMAS = 8.0
_MIN_STEP_REL = 0.02
_PERSIST_SAMPLES = 3
# The idle level is the median of the record's last 1/_IDLE_TAIL_PARTS (at least 4·LEAD_SAMPLES samples), and
# its own excursions there (their 99th percentile, twice over) never count as a departure from it.
_IDLE_TAIL_PARTS = 64
_IDLE_EXCURSION_QUANTILE = 0.99


def record_noise_w(power_w: ArrayLike) -> float:
    """Per-sample noise (W) of a record: the median absolute deviation of its first differences about their
    median, scaled to a Gaussian sigma of one sample. Steps are rare, so they do not count.

    What `run_start_s` and `run_envelope.run_end_s` measure a departure from idle against. It is centred on
    the median difference, unlike `edge_locator.noise_w` (which the edge locator keeps): two medians over the
    whole record (10-20 ms per million samples), so a caller with several checks on one record computes it
    once and passes it to each.
    """
    diffs = np.diff(np.asarray(power_w, dtype=np.float64))
    return 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / float(np.sqrt(2.0))


def idle_level_w(power_w: np.ndarray, noise_w: float) -> tuple[float, float]:
    """(the idle level W the record ends at, the departure from it W that counts as activity).

    Read from the record's tail (its last 1/_IDLE_TAIL_PARTS: the plan leaves a tenth of the RUN after it),
    not from its last few samples: a board's idle is not flat (a DC-DC converter's power-save bursts, a timer),
    and 16 samples (82 µs) read a 1 kHz ripple at one phase of it. A departure counts when it stands
    _MIN_STEP_SIGMAS noise sigmas, _MIN_STEP_REL of the record's peak and twice the idle's own excursions
    away: a 3 mW ripple on a 12 mW idle counted as activity against a 5.3 mW bar and ran the RUN on to the
    record's end (a sound capture refused)."""
    p = np.asarray(power_w, dtype=np.float64)
    tail = p[-max(4 * LEAD_SAMPLES, p.size // _IDLE_TAIL_PARTS):]
    idle_w = float(np.median(tail))
    excursion_w = float(np.quantile(np.abs(tail - idle_w), _IDLE_EXCURSION_QUANTILE))
    threshold_w = max(_MIN_STEP_SIGMAS * noise_w, _MIN_STEP_REL * float(np.max(np.abs(p))), 2.0 * excursion_w)
    return idle_w, threshold_w


def run_start_s(time_s: ArrayLike, power_w: ArrayLike, *, noise_w: float | None = None,
                shortest_stage: tuple[str, float] | None = None) -> float:
    """Trace time (s) of the first power step away from the idle level (read at the record's end)
    after the record has first settled there.

    `noise_w`: the record's `record_noise_w`, when the caller has it (else computed here).
    `shortest_stage`: (name, seconds) of the RUN's shortest stage, to say in a SupplyPathTooSlow what a
    supply path must allow.

    Raises SupplyPathTooSlow when the record opens on a first-order decay that had not settled at idle
    when the RUN began (its fitted time constant named); MeasurementError when the record never settles at
    idle, holds fewer than LEAD_SAMPLES idle samples before the step (the device started before the record
    did), or holds no step at all (the RUN is not in it).
    """
    t = np.asarray(time_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    if p.size < LEAD_SAMPLES + _PERSIST_SAMPLES + 1:
        raise MeasurementError(f"a record of {p.size} samples is too short to find where the RUN starts")
    noise = record_noise_w(p) if noise_w is None else noise_w
    # The idle level from the record's end: the record runs past the RUN (the plan leaves a margin),
    # while its opening may still hold the tail of the previous command's activity settling.
    idle_w, threshold_w = idle_level_w(p, noise)
    away = np.abs(p - idle_w) > threshold_w
    first_idle = _first_idle(away, idle_w)
    # Persistent departures only: a noise spike is one sample, a stage many. run[j]: samples j to
    # j + _PERSIST_SAMPLES - 1 all away (boolean ANDs: a convolution cost ~3 ms per million samples).
    run = away[first_idle:p.size - _PERSIST_SAMPLES + 1].copy()
    for lag in range(1, _PERSIST_SAMPLES):
        run &= away[first_idle + lag:p.size - _PERSIST_SAMPLES + 1 + lag]
    if not run.any():
        _refuse_slow_opening(t, p, idle_w, threshold_w, first_idle, None, shortest_stage)
        raise MeasurementError(
            f"the record ({t[-1] - t[0]:.4g} s) shows no power step away from the idle level "
            f"({idle_w:.6g} W): the RUN is not in it. Start the device after arming, or collect a longer record")
    i = first_idle + int(np.argmax(run))
    if i - first_idle < LEAD_SAMPLES:
        _refuse_slow_opening(t, p, idle_w, threshold_w, first_idle, i, shortest_stage)
        raise MeasurementError(
            f"the record holds fewer than {LEAD_SAMPLES} idle samples before its first power step: the device "
            "was already active when it started, so the RUN's start cannot be told. Arm the analyzer with the "
            "device idle, then start the RUN (or use a finer FLOG:SRAT)")
    base_w = idle_w
    after_w = float(np.median(p[i + 1:i + 1 + _PERSIST_SAMPLES]))
    half_w = 0.5 * (base_w + after_w)
    # Sub-sample: where the samples around the departure cross the half level (each sample is the mean
    # over its own interval, so an ideal step crosses half way exactly at the edge).
    k = max(i - 1, 0)
    while k + 1 < p.size and (p[k + 1] - half_w) * (after_w - base_w) < 0:
        k += 1
    if k + 1 >= p.size or p[k + 1] == p[k]:
        return float(t[i])
    return float(t[k] + (half_w - p[k]) / (p[k + 1] - p[k]) * (t[k + 1] - t[k]))


def settled_index(power_w: ArrayLike, *, noise_w: float | None = None) -> int:
    """Index of the first sample of a record at its idle level (`idle_level_w`): where the opening, the previous
    command's activity draining through the supply path, has settled. Samples before it hold nothing of the
    RUN and no level an edge may be read against. MeasurementError when the record never settles."""
    p = np.asarray(power_w, dtype=np.float64)
    idle_w, threshold_w = idle_level_w(p, record_noise_w(p) if noise_w is None else noise_w)
    return _first_idle(np.abs(p - idle_w) > threshold_w, idle_w)


def _first_idle(away: np.ndarray, idle_w: float) -> int:
    first_idle = int(np.argmin(away))  # the first sample at idle (argmin stops at the first False)
    if away[first_idle] or first_idle + LEAD_SAMPLES > away.size:
        raise MeasurementError(
            f"the record never settles at the idle level ({idle_w:.6g} W, from its end): the RUN's start cannot "
            "be told. Collect a longer record, or check that the supply path settles between commands")
    return first_idle


def _refuse_slow_opening(t: np.ndarray, p: np.ndarray, idle_w: float, threshold_w: float, first_idle: int,
                         run_index: int | None, shortest_stage: tuple[str, float] | None) -> None:
    """Raise SupplyPathTooSlow when the record opens on a first-order decay toward idle that was still
    under way when the RUN began, so the RUN's start is lost in it; nothing otherwise.

    `first_idle`: the first sample at idle; `run_index`: the first step after it, found too soon after it
    (None: no step follows, so the RUN can only be inside the opening: the power rose again after the
    decay's fall, before reaching idle)."""
    decay = opening_decay_tau_s(t, p, idle_w, threshold_w)
    if decay is None:
        return
    tau_s, fitted = decay
    if run_index is None:
        departure = np.abs(p[fitted:max(first_idle, fitted + 1)] - idle_w)
        rose = np.flatnonzero(departure > departure[0] + threshold_w)
        if rose.size == 0:
            return  # the decay settled and nothing followed: the RUN is not in the record
        run_index = fitted + int(rose[0])
    began_s = float(t[run_index] - t[0])
    tau_us = tau_s * 1e6
    message = (
        f"cannot tell where the RUN starts: the record opens on a first-order decay toward the idle level "
        f"({idle_w:.6g} W, from its end), τ ≈ {tau_us:.3g} µs fitted to its first {fitted} samples, still "
        f"settling when the RUN began {began_s * 1e6:.4g} µs in. The RUN is in the record; the supply path "
        f"between analyzer and load (board decoupling RC, or the analyzer's analog front end: τ ≈ {tau_us:.3g} µs "
        f"is a {_bandwidth_hz(tau_s) / 1e3:.3g} kHz first-order low-pass) drains the previous activity that "
        f"slowly. That path allows stages of ≥ {SETTLE_STAGE_TAUS:g} τ ≈ {SETTLE_STAGE_TAUS * tau_us:.3g} µs")
    allowed_s: float | None = None
    if shortest_stage is not None:
        name, stage_s = shortest_stage
        allowed_s = stage_s / SETTLE_STAGE_TAUS
        message += (f"; this RUN's shortest stage ({name}, {stage_s * 1e6:.4g} µs) needs τ ≤ {allowed_s * 1e6:.3g} µs "
                    f"(a front end of ≥ {_bandwidth_hz(allowed_s) / 1e3:.3g} kHz)")
    if allowed_s is None or tau_s > allowed_s:
        message += (". Use a faster analyzer front end (the N6705C/N678xA digitizer, trigger line wired), a smaller "
                    "board decoupling capacitance, or a sense point at the load side")
    else:
        message += (f". The path is fast enough for these stages, but the RUN began before the opening settled "
                    f"(≈ {SETTLE_COVER:g} τ = {SETTLE_COVER * tau_us:.3g} µs): arm the analyzer longer before the RUN, or use a triggered "
                    "analyzer (the N6705C/N678xA, trigger line wired)")
    raise SupplyPathTooSlow(message, tau_s=tau_s, allowed_tau_s=allowed_s)


def _bandwidth_hz(tau_s: float) -> float:
    """-3 dB bandwidth (Hz) of a first-order low-pass of time constant `tau_s`."""
    return 1.0 / (2.0 * np.pi * tau_s)
