"""The device's clock checked against the analyzer's from the RUN's envelope, when no stage edge pins it.

The windows of a RUN are placed by a clock map fitted to the stage edges the trace shows. Where too few
show to pin its ratio, the device's own timer places them, and the meter bounds the drift by an RC
oscillator's 0.5 % (`trace_windows._PASS1_TOLERANCE`). A board further off than that would drift its
windows past the bound without a word (a 1 % slow timer: end to end 1.2 % off, inference +270 %). The RUN's
envelope still shows its clock: the first step out of idle is the first readout's start, the last step back
to idle the last retrieval's end, and their distance in the trace over the device's own account of it is
the clock ratio, to a sample or two over the whole RUN.

Pure functions on arrays; seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytest_edgehil.errors import MeasurementError, WindowMisplaced
from pytest_edgehil.measure.clock_map import CLOCK_TOLERANCE
from pytest_edgehil.measure.edge_locator import EdgeLocator
from pytest_edgehil.measure.run_start import idle_level_w, record_noise_w, run_start_s
from pytest_edgehil.measure.settling import SETTLE_COVER


def run_end_s(time_s: np.ndarray, power_w: np.ndarray, *, noise_w: float | None = None) -> float | None:
    """Trace time (s) of the last step back to the idle level the record ends at (the last retrieval's end),
    to a fraction of a sample (half-level crossing); None when the record does not end at idle after at
    least 3 samples away from it. `noise_w`: the record's `run_start.record_noise_w`, when the caller has
    it (else computed here)."""
    p = np.asarray(power_w, dtype=np.float64)
    t = np.asarray(time_s, dtype=np.float64)
    if p.size < 32:
        return None
    noise = record_noise_w(p) if noise_w is None else noise_w
    idle_w, threshold_w = idle_level_w(p, noise)
    away = np.flatnonzero(np.abs(p - idle_w) > threshold_w)
    if away.size < 3 or away[-1] >= p.size - 16:
        return None  # no activity, or the record ends before it has settled back at idle
    j = int(away[-1])
    if not (away[-3:] == np.arange(j - 2, j + 1)).all():
        return None  # a spike, not a stage: no RUN end to read
    before_w = float(np.median(p[j - 2:j + 1]))
    half_w = 0.5 * (before_w + idle_w)
    # The crossing lies after the last sample on the stage's side of the half level. The last sample away
    # from idle need not be on it: an integrating digitizer's last cell may hold a sliver of the stage, a mean
    # past the departure threshold but short of the half level; interpolated from there to the idle sample
    # after it (both below the half level), the crossing was extrapolated up to 15 samples early.
    k = j
    while k > 0 and (p[k] - half_w) * (before_w - idle_w) <= 0:
        k -= 1
    while k + 1 < p.size and (p[k + 1] - half_w) * (before_w - idle_w) > 0:
        k += 1  # a step barely past the threshold: samples within it may still be past the half level
    if k + 1 >= p.size or p[k + 1] == p[k]:
        return float(t[k])
    return float(t[k] + (half_w - p[k]) / (p[k + 1] - p[k]) * (t[k + 1] - t[k]))


def run_envelope_s(time_s: np.ndarray, power_w: np.ndarray, *,
                   noise_w: float | None = None) -> tuple[float, float] | None:
    """(trace time s of the RUN's first step out of idle, of its last step back to it), or None when the record
    does not show both (no idle lead or tail, no step). `noise_w`: as for `envelope_ratio`."""
    if time_s.size < 2:
        return None
    noise = record_noise_w(power_w) if noise_w is None else noise_w
    try:
        start_s = run_start_s(time_s, power_w, noise_w=noise)
    except MeasurementError:
        return None
    end_s = run_end_s(time_s, power_w, noise_w=noise)
    return None if end_s is None else (start_s, end_s)


def envelope_ratio(time_s: np.ndarray, power_w: np.ndarray, device_span_s: float, *,
                   noise_w: float | None = None) -> tuple[float, float] | None:
    """(trace span / device span of the RUN, its uncertainty) from the first step out of idle and the last
    step back to it; None when the record does not show both (no idle lead or tail, no step).

    `noise_w`: the record's `run_start.record_noise_w` when the caller has it; else it is computed once
    here for both ends (two medians over the whole record: 10-20 ms per million samples).
    """
    if device_span_s <= 0:
        return None
    ends = run_envelope_s(time_s, power_w, noise_w=noise_w)
    if ends is None:
        return None
    dt = float(time_s[1] - time_s[0])
    return (ends[1] - ends[0]) / device_span_s, 2 * dt / device_span_s


def check_clock_within(time_s: np.ndarray, power_w: np.ndarray, device_span_s: float, tolerance: float,
                       *, run: str = "the RUN", noise_w: float | None = None, ends: MapEnds | None = None) -> None:
    """Raise WindowMisplaced when the RUN's envelope shows the device's clock further off the analyzer's
    than `tolerance` (the drift the unpinned windows were bounded by); nothing when it cannot tell.
    `noise_w`: as for `envelope_ratio`. With `ends`, also where the map puts the RUN's first and last edge
    against the envelope (as `check_map_against_envelope` does): the drift bound the windows carry need not
    be the whole `tolerance` (a few located edges that fit a line loosely bound it by their own ratio), and a
    0.2 % clock under a bound of 0.03 % left end-to-end windows 0.2 % off with 0.01-0.04 % stated."""
    found = run_envelope_s(time_s, power_w, noise_w=noise_w) if device_span_s > 0 else None
    clock_within_envelope(found, float(time_s[1] - time_s[0]), device_span_s, tolerance, run=run, ends=ends)


def clock_within_envelope(found: tuple[float, float] | None, sample_interval_s: float, device_span_s: float,
                          tolerance: float, *, run: str = "the RUN", ends: MapEnds | None = None) -> None:
    """`check_clock_within` on the RUN's envelope as already read (`run_envelope_s`: trace s of its first step
    out of idle and last back; None where the record does not show both), so one reading serves every check."""
    if found is None or device_span_s <= 0:
        return
    start_s, end_s = found
    ratio, ratio_u = (end_s - start_s) / device_span_s, 2 * sample_interval_s / device_span_s
    if abs(ratio - 1.0) > tolerance + 3 * ratio_u:
        raise WindowMisplaced(
            f"{run} lasts {ratio * device_span_s * 1e3:.4f} ms in the trace but {device_span_s * 1e3:.4f} ms by the "
            f"device's clock: its timer runs {(1 / ratio - 1) * 100:+.2f} % against the analyzer, beyond the "
            f"{tolerance:.1%} the meter allows where the trace shows too few stage edges to fit the clock. Check "
            "the board's clock source (an internal RC oscillator; a crystal is within 0.01 %), or make the stage "
            "edges visible (a finer sample interval, the trigger line wired) so the clock is fitted; if the clock is "
            "right, the record does not hold the whole RUN (its start or end lies outside it)")
    _check_ends(start_s, end_s, device_span_s, ends, run, sample_interval_s)


# The envelope's ends are read to this many sample intervals (a half-level crossing of integrated or point samples).
ENVELOPE_SAMPLES = 3.0


@dataclass(frozen=True)
class MapEnds:
    """Where a clock map (trace_t = offset_s + ratio · device_t) puts the RUN's first edge (its first
    readout's start, `first_device_s` on the device's axis) and, the device's span later, its last (the last
    retrieval's end), and how far (s) the RUN's envelope may sit from those places (`envelope_tolerance_s`)."""

    offset_s: float
    ratio: float
    first_device_s: float
    tolerance_s: float


def envelope_tolerance_s(sample_interval_s: float, supply_tau_s: float, tick_s: float, map_u_s: float) -> float:
    """How far (s) a sound RUN's envelope may sit from where its clock map puts the RUN's first and last edge.

    Each end is a half-level crossing read to a sample or two (`ENVELOPE_SAMPLES` of them), behind a supply
    path of time constant `supply_tau_s` that lags it by up to a few τ (the last step's level is read in its
    decay, ≤ ln(2·step/threshold) τ ≈ 4.6 τ: SETTLE_COVER τ covers it); the device stamps its edges to its
    timer's tick `tick_s`; and the map itself is known to `map_u_s` (1σ, taken three times). A map matched to
    the wrong device edges is off by a whole stage (0.23 ms and more on the modelled boards) at the ends.
    """
    return ENVELOPE_SAMPLES * sample_interval_s + SETTLE_COVER * supply_tau_s + tick_s + 3.0 * map_u_s


def check_map_against_envelope(time_s: np.ndarray, power_w: np.ndarray, device_span_s: float, ratio: float,
                               ratio_u: float, *, run: str = "the RUN", noise_w: float | None = None,
                               ends: MapEnds | None = None) -> None:
    """Raise WindowMisplaced when the clock map's `ratio` (fitted to located edges) disagrees with the ratio
    the RUN's envelope shows: its first step out of idle and its last step back (`run_end_s`) over the
    device's own span. A map fitted to mismatched edges (a clock past the locator's 0.5 % search: a 0.8 %
    fast board pinned 0.9954 against the true 0.9921, and the last end-to-end window came out −2.6 %) is
    caught here. Nothing when the record does not show both ends. `noise_w`: as for `envelope_ratio`.

    With `ends`, also where the map puts the RUN's first and last edge against where the envelope shows
    them (`MapEnds.tolerance_s`): a map whose located edges are each another kind's (a record placed 0.3 ms
    off, a 0.2 % clock: inference ends matched as inference starts) can fit a ratio within the slack below
    (0.99741 against the true 0.99800, 4 edges 6 µs about it) and measure +284 % on every inference window,
    yet it puts the RUN's ends a stage (0.7-0.9 ms) from the envelope's."""
    found = run_envelope_s(time_s, power_w, noise_w=noise_w) if device_span_s > 0 else None
    map_within_envelope(found, float(time_s[1] - time_s[0]), device_span_s, ratio, ratio_u, run=run, ends=ends)


def map_within_envelope(found: tuple[float, float] | None, sample_interval_s: float, device_span_s: float,
                        ratio: float, ratio_u: float, *, run: str = "the RUN", ends: MapEnds | None = None) -> None:
    """`check_map_against_envelope` on the RUN's envelope as already read (`run_envelope_s`; None: not seen)."""
    if found is None or device_span_s <= 0:
        return
    start_s, end_s = found
    envelope, envelope_u = (end_s - start_s) / device_span_s, 2 * sample_interval_s / device_span_s
    # 0.1 % of slack: a slow supply path moves the two half-level crossings a little apart (10 µs RC on the
    # NGM202: 2.4e-4), while edges matched wrongly past the 0.5 % search are off by more (0.8 % clock: 3.3e-3).
    allowed = 3 * (envelope_u + ratio_u) + 1e-3
    if abs(envelope - ratio) > allowed:
        raise WindowMisplaced(
            f"{run} lasts {envelope * device_span_s * 1e3:.4f} ms in the trace, {device_span_s * 1e3:.4f} ms by the "
            f"device's clock (ratio {envelope:.6f}), but the stage edges located in it fit a ratio of {ratio:.6f}: "
            "they were matched to the wrong device edges, and the windows drift along the RUN. "
            + clock_blame(found, device_span_s, sample_interval_s))
    _check_ends(start_s, end_s, device_span_s, ends, run, sample_interval_s)


def _check_ends(start_s: float, end_s: float, device_span_s: float, ends: MapEnds | None, run: str,
                sample_interval_s: float) -> None:
    """Raise WindowMisplaced when the RUN's envelope (`start_s`, `end_s`) sits further from where the map puts
    its first and last edge than `ends.tolerance_s`; nothing without `ends`."""
    if ends is None:
        return
    first_s = ends.offset_s + ends.ratio * ends.first_device_s
    last_s = first_s + ends.ratio * device_span_s
    off_s = max((start_s - first_s, end_s - last_s), key=abs)
    if abs(off_s) > ends.tolerance_s:
        raise WindowMisplaced(
            f"{run} shows in the trace from {start_s * 1e3:.4f} to {end_s * 1e3:.4f} ms (its first step out of idle, "
            f"its last step back), but the clock map that places its windows (ratio {ends.ratio:.6f}, offset "
            f"{ends.offset_s * 1e6:.2f} µs) puts its first readout's start at {first_s * 1e3:.4f} ms and its last "
            f"retrieval's end at {last_s * 1e3:.4f} ms, {off_s * 1e6:+.1f} µs off, beyond the "
            f"{ends.tolerance_s * 1e6:.1f} µs its placement allows: the windows would sit beside the stages they "
            "mean (stage edges matched to the wrong device edges, a stage off, or a device clock the trace did not "
            "pin running further off than assumed). The trace's time origin may be further from the device's than "
            "the locator was told (a record placed by a device-timed stage on a clock far off, a trigger from "
            "another device): check the trigger wiring, and state how far the origin may be off (origin_u_s). "
            + clock_blame((start_s, end_s), device_span_s, sample_interval_s))


def clock_blame(ends: tuple[float, float] | None, device_span_s: float, sample_interval_s: float,
                tick_s: float = 0.0) -> str:
    """What a refusal of misplaced windows says of the device's clock: what the RUN's envelope (`ends`, trace s
    of its first step out of idle and last back, over the device's `device_span_s`) shows of it, read to
    `ENVELOPE_SAMPLES` sample intervals at each end and the device's span to its timer's tick `tick_s`. Beyond CLOCK_TOLERANCE: the clock is named. Within it:
    not the clock (a refusal had blamed "a clock beyond 0.5 %" on a 0.2 % clock behind a 100 µs timer, sending
    the user to a crystal that would not have helped). Without an envelope: both suspects, the clock unmeasured."""
    bound = f"{CLOCK_TOLERANCE * 100:g} %"
    if ends is None or device_span_s <= 0:
        return (f"The device's own timing: a clock further than {bound} off the analyzer's (an internal RC "
                "oscillator), or a timer coarser than the stages it stamps; the record shows no RUN envelope to "
                "tell which")
    ratio = (ends[1] - ends[0]) / device_span_s
    read = (2 * ENVELOPE_SAMPLES * sample_interval_s + tick_s) / device_span_s  # how well that shows it
    seen = f"The RUN's envelope shows the device's clock running {(1 / ratio - 1) * 100:+.2f} % against the analyzer"
    if abs(ratio - 1.0) > CLOCK_TOLERANCE + read:
        return (f"{seen}, beyond the {bound} the locator searches (an internal RC oscillator): check the board's "
                "clock source (a crystal is within 0.01 %), or make the stage edges visible so the clock is fitted")
    if abs(ratio - 1.0) >= CLOCK_TOLERANCE - read:
        return (f"{seen}, at the {bound} the locator searches: the clock may be the cause (check the board's "
                "clock source), or a timer coarser than the stages it stamps")
    return (f"{seen}, within the {bound} the locator searches, so the clock is not the cause: look at the "
            "device's timer (a tick coarser than the stages it stamps), stage edges the trace does not show "
            "distinctly (steps of another stage kind within the search), and the trigger line")


def envelope_clock_prior(ends: tuple[float, float] | None, device_span_s: float, tolerance: float) -> float:
    """The clock ratio (analyzer s per device s) an edge locator predicts by until located edges pin one: the
    RUN's envelope's (`ends`, from `run_envelope_s`, over the device's `device_span_s`), else the device's own 1.

    Over the whole RUN the envelope reads the clock to (a tick + a few samples) / span (6e-4 behind a 100 µs
    timer over Q-Segment's 170 ms RUN), while the device's own clock may be an RC oscillator's `tolerance` off:
    0.2 % drifts 0.24 ms in 119 ms, a whole 0.23 ms inference, and a search centred by it found each inference's
    end where its start was stamped (the ratio fitted to those, 0.99975 against the true 0.99800, was refused as
    a clock beyond 0.5 %). An envelope further off than `tolerance` is not taken: such a RUN is refused by
    `check_clock_within`, not placed by it."""
    if ends is None or device_span_s <= 0:
        return 1.0
    ratio = (ends[1] - ends[0]) / device_span_s
    return ratio if abs(ratio - 1.0) <= tolerance else 1.0


def envelope_edge_hit(trace: EdgeLocator, dev: np.ndarray, k: int, ends: tuple[float, float] | None,
                      offset_s: float, ratio: float, tolerance_s: float) -> tuple[float, float, float, float] | None:
    """The RUN's first (k = 0) or last (k = dev.size − 1) edge located around where the envelope shows it
    (`ends`: `run_envelope_s` of the trace, None where not seen) (`EdgeLocator.locate`'s tuple), or None where
    the envelope is not seen or sits further than `tolerance_s` from where the map (`offset_s`, `ratio`) puts
    the edge.

    The map places an edge from the device's stamp; a coarse timer floors that stamp by up to its tick, and
    the locator's region (± 20 µs and a few samples) then misses the step or holds it among the samples it
    reads a level from. Behind a 100 µs timer Q-Segment's last step back to idle was missed on every seed, and
    with it the only edge that closes the RUN (`envelope_window`). The step out of idle or back to it is the
    tallest in the RUN and the envelope shows it to a sample or two: the region centred there holds it.
    """
    if ends is None or k not in (0, dev.size - 1):
        return None
    seen_s = ends[0] if k == 0 else ends[1]
    if abs(seen_s - (offset_s + ratio * dev[k])) > tolerance_s:
        return None
    return trace.locate(dev, k, seen_s - ratio * dev[k], ratio, 0.0)
