"""Stage edges placed from the trace itself: clock ratio, offset and energy-exact edge positions.

The device reports its stage times on its own timer; the analyzer samples on its own clock and starts at
its own trigger instant. On a real bench these disagree: the device's crystal is off by tens of ppm (a
20 ppm error is 200 µs over a 10 s MLPerf window, most of a 0.23 ms inference), its timer has a
resolution, the trigger line has latency and jitter, and the supply path (board decoupling, the analyzer's
front end) smears each power step over microseconds. Windows built from the device's times alone then
fall beside the stages they mean (bench-facts: +33 % at 20 ppm, +61 % at τ = 50 µs).

So every stage edge (readout start, inference start, inference end, retrieval end) is located in the
trace, at its *energy centroid* (`measure.edge_locator`): the cumulative energy up to it is the load's
cumulative energy up to its true edge, whatever filter smeared the step, as long as the stages beside it
are flat over its level regions. Where they are not (per-op power inside a 0.23 ms inference read at
40.96 µs: +0.4 % median, 3 % worst, silently), the edge's *kind* scatters about the clock map: located
edges are then placed and priced by kind (`measure.edge_kinds`, `measure.edge_pricing`), each from its
best position and its flat side. A window's energy is the difference of two such cumulative values
(`measure.window_energies`).

Edges are tracked in time order; each one's prediction comes from the running least-squares map
trace_t = offset + ratio · device_t fitted to the edges found so far (so 50 ppm over 527 inferences is
followed), and every located edge is checked against the final map: a residual beyond the tolerance is
a `WindowMisplaced`. An edge with no power step (readout and retrieval at one level) does not move
energy: it is placed by the map. An edge beside a stage shorter than two samples cannot be located or
priced: windows that use it are refused with `CannotResolve`.

Pure functions on arrays; trace time in seconds, t = 0 at the analyzer's trigger; powers in watts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from pytest_edgehil.errors import MeasurementError, WindowMisplaced
from pytest_edgehil.measure.clock_map import CLOCK_TOLERANCE, fit_map, weighted_map
from pytest_edgehil.measure.device_edges import distinct_edges, edge_index
from pytest_edgehil.measure.edge_locator import (
    EdgeLocator,
    cumulative_energy,
    noise_w,
    step_aware_cumulative,
)
from pytest_edgehil.measure.edge_pricing import priced_by_kind
from pytest_edgehil.measure.run_envelope import (
    clock_blame,
    envelope_clock_prior,
    envelope_edge_hit,
    envelope_tolerance_s,
)
from pytest_edgehil.measure.settling import SETTLE_COVER, SETTLE_STAGE_TAUS, settling_tau_s, supply_tau_s

# `edge_index` (device_edges) stays importable from here, where the window pricers have long found it.
__all__ = ["EdgeFit", "edge_index", "locate_edges"]

# A located edge this far (in sample intervals, or µs) from the fitted clock map means a misplaced window.
_MISPLACED_SAMPLES = 3.0
_MISPLACED_MIN_S = 10e-6
# ... or than this many of its centroid's own standard deviations (noise), where that is wider: 5 σ is
# passed by chance once in 1.7 million edges (a 10 s hardware window holds about 2000).
_MISPLACED_SIGMAS = 5.0
# Pass 1 searches this clock error (0.5 %: an RC oscillator) times the distance from a located edge, until
# the located edges pin the ratio to _PASS1_RATIO_PINNED.
_PASS1_TOLERANCE = CLOCK_TOLERANCE  # the device-clock error the meter allows where no edge pins it
_PASS1_RATIO_PINNED = 2e-4
# ... and, while its searches reach outward, only once this many edges are located: a line through two has
# no residual to show how far either centroid is off (a small step beside per-op power structure, Coral's
# 3 % readout→inference step, sits microseconds off), so its ratio's error is unknown, and extrapolating it
# multiplies that error. Two such edges 6 ms apart pinned 0.99876 against the true 1.00005 on Coral's
# TinyTracker at the NGM202's 2 µs: the next searches missed, a layer step 300 µs away was taken for a stage
# edge, and 3 of 12 default benches were refused (WindowMisplaced). (Once pass 1 is done, two edges are
# used as they are: they then span what it found, and pass 2 only interpolates between them.)
_PASS1_MIN_EDGES = 3
# Located edges scattering about the map by more than this many sample intervals (rms) are quantized
# (point sampling), not integrated: see locate_edges.
_PRECISE_SAMPLES = 0.2


@dataclass(frozen=True)
class EdgeFit:
    """Every stage edge of a RUN on the trace axis, with what the trace says about it.

    Arrays have one entry per distinct device edge (`device_s`, sorted). `cumulative_j[k]` is the energy
    drawn from the trace start up to edge k; `located[k]` whether the edge was found from a power step
    (else it sits where the clock map puts it); `step_w[k]` the power step (after − before); `usable[k]`
    False where a neighbouring stage is shorter than two samples (the edge can be neither found nor priced).
    """

    device_s: np.ndarray
    position_s: np.ndarray
    cumulative_j: np.ndarray
    located: np.ndarray
    usable: np.ndarray
    step_w: np.ndarray
    edge_u_j: np.ndarray  # 1-sigma uncertainty of each cumulative energy (noise, map residual)
    clock_ratio: float  # analyzer seconds per device second
    clock_ratio_u: float
    offset_s: float  # trace time of device time 0 (trigger latency plus the supply path's delay)
    residual_s: float  # rms distance of the located edges from the map
    noise_w: float  # per-sample noise, estimated from the trace
    sample_interval_s: float
    stepped: np.ndarray  # a power step was found at the edge (its centroid is in `centroid_s`)
    centroid_s: np.ndarray  # the step's energy centroid on the trace axis; NaN where there is no step
    settle_tau_s: np.ndarray  # first-order settling seen after a step, where slower than the locator allows;
    # NaN where the step settles within it (or there is no step): see `settling_tau_s`
    point_sampled: bool = False  # the located steps sit on sample boundaries: a point-sampling digitizer
    # How many power steps were located (centroids): fewer than _POINT_MIN_EDGES cannot tell the sampling
    # model (`sampling_known`), and point_sampling.unclassified_refusal prices such a run conservatively.
    located_steps: int = 0
    edge_level_w: np.ndarray | None = None  # the largest |power| within one sample of each edge
    # Worst-case energy (J) an unlocated edge may be off by where the clock map's ratio is not pinned
    # by located edges (0 where located): what `uncertainty_refusal` holds each window to.
    drift_j: np.ndarray | None = None
    clock_pinned: bool = True  # the located edges fit the clock map's ratio (else the device's timer placed it)
    # Located edges priced by kind (`edge_pricing`): the bias bound of each one's level (J, 0 elsewhere), the
    # level it was priced at (W, 0 elsewhere), and the clock map's offset bound shared by all (s). A window's
    # systematic part is `window_systematic_j`; edge_u_j holds the random part only.
    bias_j: np.ndarray | None = None
    priced_level_w: np.ndarray | None = None
    map_systematic_s: float = 0.0
    supply_tau_s: float = 0.0  # the supply path's time constant fitted from the steps (s; 0: settled within a sample)
    # How far (s) each edge the map placed may be from its true place, worst case (what `drift_j` prices; 0 where
    # located): what the RUN's envelope is held to at its ends (`run_envelope.check_map_against_envelope`).
    drift_s: np.ndarray | None = None
    # The smallest step (W) that counts as a stage edge at each edge (`EdgeLocator.min_step_w`; 0 where no
    # level could be read): what `trace_latency` holds each kind of edge to over the RUN.
    step_floor_w: np.ndarray | None = None

    @property
    def sampling_known(self) -> bool:
        """Whether enough steps were located to tell an integrating digitizer from a point-sampling one."""
        return self.point_sampled or self.located_steps >= _POINT_MIN_EDGES


def locate_edges(time_s: ArrayLike, power_w: ArrayLike, device_edges_s: ArrayLike, *,
                 origin_u_s: float = 0.0, stamp_u_s: float = 0.0, kinds: ArrayLike | None = None,
                 envelope_s: tuple[float, float] | None = None) -> EdgeFit:
    """Place every device edge (device seconds since the first trigger, any order) on the trace.

    `origin_u_s`: how far (s) the trace's t = 0 may sit from the device's time 0 beyond the trigger's own
    latency (0 for a triggered capture; a record placed from its first power step and a device-timed
    stage, as FastLog's, is off by that stage's clock error): the first searches are widened by it.
    `stamp_u_s`: the device timer's tick (`device_windows.device_tick_s`): an edge the trace does not show is
    placed by a stamp only that exact, which its drift bound (`EdgeFit.drift_j`) includes.
    `kinds`: one small integer per device edge naming the stage boundary it is (the same for the same
    boundary of every inference; coincident edges combine theirs): located edges are priced by kind
    (`edge_pricing`), so that a kind whose centroids a stage's inner structure biases is placed by the map.
    `envelope_s`: the RUN's first step out of idle and last back (`run_envelope_s`; None: not seen): pass 1's
    clock until edges pin one, and where the RUN's outer edges are searched behind a coarse timer.
    Raises MeasurementError when an edge falls outside the trace (more pre-trigger or post-trigger samples
    are needed), WindowMisplaced when a located edge sits off the fitted clock map.
    """
    t = np.asarray(time_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    dev, kind = distinct_edges(np.asarray(device_edges_s, dtype=np.float64), kinds)
    bounds, cum, dt = cumulative_energy(t, p)
    noise = noise_w(p)
    n = dev.size
    span = f"[{bounds[0] * 1e3:.4f}, {bounds[-1] * 1e3:.4f}] ms"
    outside = (dev < bounds[0] - 1e-3 * abs(bounds[0])) | (dev > bounds[-1] * (1 + 1e-3) + dt)
    if outside.any():  # far outside even allowing a 0.1 % clock error: the trace misses it
        k = int(np.flatnonzero(outside)[0])
        raise MeasurementError(
            f"stage edge at device time {dev[k] * 1e3:.4f} ms lies outside the trace {span}; acquire more "
            "pre-trigger samples (SENS:SWE:OFFS:POIN) or a longer sweep so the trace covers every window")
    trace = EdgeLocator(p, bounds, cum, dt, noise)
    # Pass 1, outward from the trigger: each prediction from the edges located so far, its search widened
    # by a 0.5 % clock tolerance times its distance from the nearest located edge (an RC oscillator's error).
    # Until they pin a ratio, predictions run at the RUN's envelope's: still widened by the full 0.5 %, but
    # centred where the edge is, not where a clock up to 0.5 % off puts it (`envelope_clock_prior`).
    prior = envelope_clock_prior(envelope_s, float(dev[-1] - dev[0]) if n else 0.0, _PASS1_TOLERANCE)
    order = np.argsort(np.abs(dev), kind="stable")
    fit_x: list[float] = []
    fit_y: list[float] = []
    fit_u: list[float] = []  # each centroid's own uncertainty (s): pass 1 weighs its edges by it
    offset, ratio, tolerance = 0.0, prior, _PASS1_TOLERANCE
    for k in order:
        widen = tolerance * min((abs(dev[k] - x) for x in fit_x[-4:]), default=abs(dev[k])) + (
            0.0 if fit_x else origin_u_s)
        hit = trace.locate(dev, k, offset, ratio, widen)
        if hit is not None:
            fit_x.append(float(dev[k]))
            fit_y.append(hit[0])
            # Its place against the device's stamp: the centroid's noise and the stamp's own floor to its tick.
            fit_u.append(float(np.hypot(max(hit[3], dt / np.sqrt(12.0)), stamp_u_s / np.sqrt(12.0))))
            if len(fit_x) < 64 or len(fit_x) % 16 == 0:  # refit often early, then every few edges
                offset, ratio, ratio_u = weighted_map(fit_x, fit_y, fit_u)
                # Until the ratio is pinned (a short spread of edges cannot tell 0.2 % from a timer's
                # quantization), keep the prior clock (the envelope's, else the device's) and a wide search.
                if not _pinned(fit_x, ratio_u):
                    weights = 1.0 / np.square(fit_u)
                    offset = float(np.sum(weights * (np.asarray(fit_y) - prior * np.asarray(fit_x))) / np.sum(weights))
                    ratio, tolerance = prior, _PASS1_TOLERANCE
                else:
                    tolerance = 3 * ratio_u
    offset, ratio, ratio_u, _ = fit_map(fit_x, fit_y, dt, gated=False)
    if ratio_u > _PASS1_RATIO_PINNED:
        offset, ratio = float(np.mean(np.asarray(fit_y) - prior * np.asarray(fit_x))) if fit_x else 0.0, prior
    # The supply path's settling (measure.settling): the regions reach SETTLE_COVER time constants past
    # each edge, so every step has settled where the locator reads its levels.
    tau_s = _supply_tau(trace, dev, fit_x, fit_y, offset, ratio)
    trace.outer_half, trace.half_max = trace.half_max, max(trace.half_max, SETTLE_COVER * tau_s + dt)
    # Pass 2: every edge again in a narrow region around the fitted map (no widening, no layer bias).
    position = offset + ratio * dev
    cumulative = np.zeros(n)
    located = np.zeros(n, dtype=bool)
    usable = np.ones(n, dtype=bool)
    step, step_floor = np.zeros(n), np.zeros(n)
    edge_u = np.full(n, noise * dt * np.sqrt(2.0))
    centroid_u = np.zeros(n)
    fit_x, fit_y = [], []
    settle_tau = np.full(n, np.nan)
    for k in range(n):
        usable[k], step[k], step_floor[k] = trace.usable(dev, k, offset, ratio)
        hit = trace.locate(dev, k, offset, ratio, 0.0)
        if hit is None and k in (0, n - 1) and stamp_u_s > _MISPLACED_SAMPLES * dt:
            # The RUN's outer edge, predicted from a stamp up to a coarse tick off: look where the envelope is.
            hit = envelope_edge_hit(trace, dev, k, envelope_s, offset, ratio,
                                    envelope_tolerance_s(dt, tau_s, stamp_u_s, 0.0))
            if hit is not None:  # its stages' samples as seen there (the stamp may put it off the record)
                usable[k], step[k], step_floor[k] = trace.usable(dev, k, hit[0] - ratio * dev[k], ratio)
        if hit is not None:
            if tau_s > 0 and trace.reach_s(dev, k, ratio) < SETTLE_STAGE_TAUS / 2 * tau_s + dt:
                # A neighbouring stage is too short for the step to settle where its level is read: its
                # centroid and energy would be wrong, and so would a map fitted to it. Windows that use
                # it are refused (window_energies.window_energies).
                settle_tau[k] = tau_s
                continue
            position[k], cumulative[k], edge_u[k], centroid_u[k] = hit
            located[k] = True
            fit_x.append(float(dev[k]))
            fit_y.append(hit[0])
    # The sampling model, told apart from the centroids alone (a scatter gate can miss it: at 20.48 µs a
    # point-sampled trace scattered 0.198 samples rms and passed for integrating, 4 % silent).
    point_sampled = len(fit_x) >= _POINT_MIN_EDGES and _quantized(fit_y, bounds[0], dt, _POINT_WITHIN)
    # Located centroids that sit on a line to a fraction of a sample are integrated-sample precise: trust
    # them and the line's ratio however short the run; otherwise the ratio must earn its place (gated).
    # A point-sampled trace never is: its centroid sits on a cell boundary up to half a sample from the true
    # edge, and pricing from there errs by the *level* times that distance, not the step (a 6-inference
    # Coral run at 5 µs: centroids on a line to 0.19 samples, 1.3 % silent on a 0.23 ms window).
    offset, ratio, ratio_u, residual = fit_map(fit_x, fit_y, dt, gated=False)
    precise = not point_sampled and len(fit_x) >= 3 and (
        residual <= _PRECISE_SAMPLES * dt or not _quantized(fit_y, bounds[0], dt))
    if not precise:
        offset, ratio, ratio_u, residual = fit_map(fit_x, fit_y, dt)
    stepped, centroid = located.copy(), position.copy()
    located_steps = len(fit_x)
    if not precise:
        # The located edges scatter like sample quantization (a point-sampling digitizer): one edge's own
        # centroid is worse than the device's timer. Place every edge by the map, moved off the device's
        # clock only where the fit says so significantly, and price edges step-aware (stage_edges).
        located[:] = False
        if len(fit_x) < 3 or abs(offset) < 3 * max(residual, dt / np.sqrt(12.0)) / np.sqrt(max(len(fit_x), 1)):
            offset = 0.0
    # Unlocated edges take the final map's position (their prediction came from a partial fit), priced
    # step-aware: the straddling sample's outside part at its outside neighbour's level. Their place is
    # only as good as the map: away from the located edges it drifts by the ratio's error, which, if the
    # located edges did not pin it, may be an RC oscillator's (a 0.2 % board clock over a 0.4 s run put
    # windows 0.76 ms off, +240 % silent): priced at the trace's largest power, so such windows carry an
    # uncertainty that refuses them (`placement_refusal`) instead of a plausible number.
    anchor_s, drift_rel = _map_anchor(fit_x, fit_y, dt, ratio)
    largest_w = float(np.max(np.abs(p))) if p.size else 0.0
    # How far each edge may move before it crosses a neighbouring one.
    gaps = np.diff(dev)
    room = np.minimum(np.concatenate([[np.inf], gaps]), np.concatenate([gaps, [np.inf]]))
    drift_j, drift_bound_s = np.zeros(n), np.zeros(n)
    for k in map(int, np.flatnonzero(~located)):
        position[k] = offset + ratio * dev[k]
        cumulative[k] = step_aware_cumulative(p, bounds, cum, position[k], dt)
        drift_s = drift_rel * abs(dev[k] - anchor_s) + (0.0 if fit_x else origin_u_s) + stamp_u_s
        # Moving edge k by δ moves the energy up to it by the power where it lands: the largest within
        # reach (both neighbouring stages' levels), or anywhere in the trace once it may cross a neighbour.
        if drift_s <= 0:
            level_w = 0.0
        elif drift_s < room[k]:
            j0 = max(0, int((position[k] - drift_s - dt - bounds[0]) / dt))
            j1 = min(p.size, int((position[k] + drift_s + dt - bounds[0]) / dt) + 1)
            level_w = float(np.max(np.abs(p[j0:j1]))) if j1 > j0 else largest_w
        else:
            level_w = largest_w
        drift_j[k], drift_bound_s[k] = level_w * drift_s, drift_s
        edge_u[k] = float(np.hypot(np.hypot(edge_u[k], abs(step[k]) * max(residual, dt / np.sqrt(12.0))),
                                   drift_j[k]))
    # A located edge off the map by more than a few samples, or by more than its own centroid's noise allows
    # (_MISPLACED_SIGMAS of it: a small step read across a region widened for a slow supply path is
    # microseconds uncertain, 2.8 µs for a 11 mW step behind a 10 µs RC at 2 µs, and a fixed 10 µs refused
    # one 3.7 σ off), is not where the device says its edge is.
    # The map runs through the device's stamps, each floored to its timer's tick: a located edge sits up to a
    # tick off it on that account alone (a 50 µs timer put one 16.8 µs off against 15.4 µs, and a sound
    # end-to-end figure was refused).
    off_map_s = np.maximum(max(_MISPLACED_SAMPLES * dt, _MISPLACED_MIN_S), _MISPLACED_SIGMAS * centroid_u) + stamp_u_s
    off_map = np.abs(position - (offset + ratio * dev)) > off_map_s
    if np.any(off_map & located):
        k = int(np.flatnonzero(off_map & located)[0])
        raise WindowMisplaced(
            f"the stage edge at device time {dev[k] * 1e3:.4f} ms shows in the trace at {position[k] * 1e3:.4f} ms, "
            f"{(position[k] - offset - ratio * dev[k]) * 1e6:+.1f} µs from where the fitted device clock puts it "
            f"(ratio {ratio:.8f}, offset {offset * 1e6:.2f} µs; tolerance {off_map_s[k] * 1e6:.1f} µs): the device's "
            "timings and this trace disagree. Check that the trigger line belongs to this device and that the "
            "trace holds the RUN it was fetched for. " + clock_blame(envelope_s, float(dev[-1] - dev[0]), dt, stamp_u_s))
    bias_j, priced_level = np.zeros(n), np.zeros(n)
    systematic_s = 0.0
    if precise:  # located edges priced by kind from their best position and flat side (edge_pricing)
        by_kind = priced_by_kind(p, bounds, cum, dt, dev, position, centroid_u, located, kind, step, stamp_u_s,
                                 tau_s, noise)
        if by_kind is not None:
            done, systematic_s = by_kind.done, by_kind.systematic_s
            position[done], cumulative[done], bias_j[done] = by_kind.position_s, by_kind.cumulative_j, by_kind.bias_j
            priced_level[done] = by_kind.level_w
            edge_u[done] = np.hypot(by_kind.u_j, drift_j[done])  # an unpinned clock's drift still applies
    # The largest power next to each edge (one sample either side): what a point-sampling digitizer could
    # misprice there, per sample (point_sampling.unclassified_refusal).
    j = np.clip(np.floor((position - bounds[0]) / dt).astype(np.int64), 0, p.size - 1)
    level = np.max(np.abs(np.stack([p[np.clip(j + d, 0, p.size - 1)] for d in (-1, 0, 1)])), axis=0)
    return EdgeFit(dev, position, cumulative, located, usable, step, edge_u, ratio, ratio_u, offset, residual,
                   noise, dt, stepped, np.where(stepped, centroid, np.nan), settle_tau, point_sampled,
                   located_steps, level, drift_j, drift_rel == 0, bias_j, priced_level, systematic_s, tau_s,
                   drift_bound_s, step_floor)


def _pinned(fit_x: list[float], ratio_u: float) -> bool:
    """Whether pass 1 may use the ratio fitted to the edges located so far (else the device's clock)."""
    return len(fit_x) >= _PASS1_MIN_EDGES and ratio_u <= _PASS1_RATIO_PINNED


def _supply_tau(trace: EdgeLocator, dev: np.ndarray, fit_x: list[float], fit_y: list[float], offset: float,
                ratio: float) -> float:
    """The supply path's time constant from pass 1's located steps: one joint fit (`supply_tau_s`), or for
    a RUN with too few steps the slowest approach seen at any one of them; 0.0 when none is seen."""
    ks = [int(np.searchsorted(dev, x)) for x in fit_x]
    steps = [trace.usable(dev, k, offset, ratio)[1] for k in ks]
    nexts = [offset + ratio * dev[k + 1] if k + 1 < dev.size else np.inf for k in ks]
    tau = supply_tau_s(trace.p, trace.bounds, fit_y, steps, nexts, trace.noise)
    if tau is not None:
        return tau
    each = [settling_tau_s(trace.p, trace.bounds, c, nx, st) for c, st, nx in zip(fit_y, steps, nexts)]
    return float(np.nanmax(each)) if each and not np.all(np.isnan(each)) else 0.0


def _quantized(centroids_s: list[float], start_s: float, dt: float, within: float = 0.1) -> bool:
    """Whether most centroids sit on sample-cell boundaries (within `within` of a sample), as steps read
    by a point-sampling digitizer do (an integrating one places them anywhere within a cell; a coarse
    device timer scatters them too)."""
    phase = np.mod((np.asarray(centroids_s) - start_s) / dt, 1.0)
    near = int(np.count_nonzero(np.minimum(phase, 1.0 - phase) < within))
    # Most of them, and more than an integrating digitizer puts there by chance (a 2·within share): 7 of 11
    # within 0.1 happens once in 500 RUNs, and behind a 100 µs device timer, whose stamps scatter the edges
    # about the map, this test alone judged them: 3 seeds in 40 priced every edge by the map and refused
    # Q-Segment's sound end-to-end figure.
    return near > phase.size / 2 and float(stats.binom.sf(near - 1, phase.size, 2 * within)) < _QUANTIZED_P


# How unlikely (for an integrating digitizer) the share of centroids near sample boundaries must be to count.
_QUANTIZED_P = 1e-3
# A trace is point-sampled when at least this many centroids were located and most of them lie within
# _POINT_WITHIN of a sample boundary. Measured on the IMX500 twin (42 edges): point sampling 76-79 % of
# them, an integrating digitizer at defaults 10-14 % (by chance: P(≥ 6 of 12) at 14 % ≈ 0.2 %).
_POINT_MIN_EDGES = 12
_POINT_WITHIN = 0.05


def _map_anchor(xs: list[float], ys: list[float], dt: float, ratio: float) -> tuple[float, float]:
    """(device time the map is pinned at, how far its ratio may be from the true one) for placing edges the
    trace does not show. Located edges far enough apart to pin the ratio (its standard error within
    _PASS1_RATIO_PINNED; that error is in every window's uncertainty already, `window_energies`): 0, unless
    the map kept a ratio (1) the edges' line differs from by more than 3 standard errors: that difference. Located edges that fit a looser line: the
    fitted ratio's distance from 1 plus 3 standard errors. Otherwise nothing in the trace checks the
    device's clock (no edge, one, or a few close together: two edges of one 0.23 ms stage pin nothing):
    an RC oscillator's _PASS1_TOLERANCE, from where the located edges are or from the trigger."""
    if not xs:
        return 0.0, _PASS1_TOLERANCE
    if len(xs) >= 2 and np.ptp(xs) > 0:
        _, fitted, fitted_u, _ = fit_map(xs, ys, dt, gated=False)
        gap = abs(ratio - fitted)  # the ratio the map uses against the line the located edges fit
        if fitted_u <= _PASS1_RATIO_PINNED:
            # Pinned: the map is right unless it kept a ratio the edges significantly disagree with (two
            # far-apart edges of a 1 % slow board fit 0.99 to 1e-5, yet a gated map keeps 1).
            return float(np.mean(xs)), gap if gap > 3 * fitted_u else 0.0
        return float(np.mean(xs)), min(_PASS1_TOLERANCE, gap + 3 * fitted_u)
    return float(np.mean(xs)), _PASS1_TOLERANCE
