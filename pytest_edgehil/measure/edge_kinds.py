"""Which edge kinds' centroids to trust, and where every stage edge is: the clock map fitted to those.

An edge *kind* is the same stage boundary in every inference of a RUN (inference start, inference end, a
retrieval's end that is the next readout's start). The energy centroid of an edge (`edge_locator`) is off
the true edge wherever a stage beside it is not flat over the locator's level regions, and by an amount
that depends on where the edge falls against the sample grid: such a kind's centroids scatter about the
device's clock map more than their noise explains (per-op power inside Q-Segment's 0.23 ms inference at
40.96 µs: 2.5× the predicted variance; TinyTracker 7.6×; flat kinds 0.7-1.3×). A kind's variance is
compared with its own line (`_detrended`), so an offset does not count as scatter.

`edge_positions` marks such kinds *suspect* and fits the map (trace_t = offset + ratio·device_t, weighted
by each centroid's noise and the stamps' scatter) to the others. Where the trusted kinds still disagree on
the offset beyond their noise, the one whose removal leaves the others agreeing is suspect; where that
does not single one out (two kinds, each agreeing with itself), the more scattered one is, if clearly more
(`_ATTRIBUTE_MARGIN`); otherwise their disagreement is kept as `systematic_s`, a shift that may apply to
every edge (nothing in the trace says which kind is right).

Each edge's position: for a trusted located edge, its centroid and the map combined by inverse variance
(a device timer coarser than a centroid's noise leaves the centroid; a coarse sample interval, whose
centroids are noisy, leaves the map fitted over hundreds of edges); for the rest, the map, uncertain by
the stamps' scatter (at least the device timer's tick over √12) and the map's own. Pure functions on
arrays; seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A kind's centroids scatter beyond prediction when their variance exceeds this multiple of what the
# region's noise and the device's stamps explain (the noise model is the trace's one per-sample figure:
# on the IMX500 twin it predicts 0.67-1.3 of the scatter of clean kinds, 2.5-7.6 of the biased ones) ...
SCATTER_RATIO = 1.6
# ... by more than this many standard errors of a variance estimate (sqrt(2/n)).
_SCATTER_SIGMAS = 4.0
# Trusted kinds that disagree on the offset and that leaving one out does not settle: the most scattered
# is suspect when its scatter ratio is this many times the least scattered one's.
_ATTRIBUTE_MARGIN = 1.25
# A kind needs this many located edges to be judged; fewer are trusted as they are.
_MIN_KIND_EDGES = 4
# Mean offsets further from the map than this many standard errors are a disagreement.
OFFSET_SIGMAS = 3.0


@dataclass(frozen=True)
class EdgePositions:
    """Where each edge is on the trace axis (s) and how well that is known.

    `position_s`, `position_u_s` (1-sigma, random per edge) per edge; `systematic_s` a shift bound shared by
    every edge (trusted kinds that disagree, with nothing to tell which is right); `stamp_u_s` the device
    stamps' scatter about the map; `suspect` per edge: its kind's centroids are biased, so the map placed
    it; `kind_offset_s` the mean offset (s) of each suspect kind's centroids from the map where it stands
    out of their noise (what pricing at the map's position leaves unexplained, `edge_pricing`).
    `offset_s`, `ratio`: the map fitted to the trusted kinds.
    """

    position_s: np.ndarray
    position_u_s: np.ndarray
    systematic_s: float
    stamp_u_s: float
    suspect: np.ndarray
    kind_offset_s: dict[int, float]
    offset_s: float
    ratio: float


@dataclass(frozen=True)
class _MapFit:
    offset_s: float
    ratio: float
    line_var: np.ndarray  # [variance of the line at x̄, variance of the ratio, x̄]
    chi2: float
    # Each kind's (mean offset from the map, its standard error), s.
    kind_offsets: dict[int, tuple[float, float]]

    def disagreeing(self) -> list[int]:
        return [k for k, (mean, se) in self.kind_offsets.items() if abs(mean) > OFFSET_SIGMAS * se]


def _fit(dev: np.ndarray, centroid_s: np.ndarray, var: np.ndarray, kinds: np.ndarray, use: np.ndarray,
         scatter: dict[int, float]) -> _MapFit:
    """The map weighted by 1/var over the edges `use` (indices), and every kind's offset from it (its
    standard error from the larger of its predicted and seen variance)."""
    x, y, v = dev[use], centroid_s[use], var[use]
    w = 1.0 / v
    xm = float(np.sum(w * x) / np.sum(w))
    sxx = float(np.sum(w * (x - xm) ** 2))
    ratio = float(np.sum(w * (x - xm) * y) / sxx) if sxx > 0 else 1.0
    offset = float(np.sum(w * (y - ratio * (x - xm))) / np.sum(w)) - ratio * xm
    chi2 = float(np.mean((y - offset - ratio * x) ** 2 / v))
    kind_offsets = {}
    for k in np.unique(kinds):
        sel = np.flatnonzero(kinds == k)
        res = centroid_s[sel] - (offset + ratio * dev[sel])
        spread = max(float(np.mean(var[sel])), scatter.get(int(k), 0.0))
        kind_offsets[int(k)] = (float(np.mean(res)), float(np.sqrt(spread / sel.size)))
    return _MapFit(offset, ratio, np.array([1.0 / float(np.sum(w)), 1.0 / sxx if sxx > 0 else 0.0, xm]), chi2,
                   kind_offsets)


def edge_positions(dev: np.ndarray, centroid_s: np.ndarray, centroid_u_s: np.ndarray, located: np.ndarray,
                   kinds: np.ndarray, tick_s: float) -> EdgePositions | None:
    """Best positions of every edge (device seconds `dev`; centroids and their 1-sigma, s, where `located`;
    `kinds` one label per edge; `tick_s` the device timer's tick). None when fewer than 3 edges were
    located (nothing to fit a map to). The module doc gives the rules."""
    idx = np.flatnonzero(located)
    if idx.size < 3:
        return None
    lk = kinds[idx]
    members = {int(k): idx[lk == k] for k in np.unique(lk)}
    judged = {k: sel for k, sel in members.items() if sel.size >= _MIN_KIND_EDGES}
    seen = {k: float(np.var(_detrended(dev[sel], centroid_s[sel]))) for k, sel in judged.items()}
    noise_var = {k: float(np.mean(centroid_u_s[sel] ** 2)) for k, sel in judged.items()}
    # The stamps' own scatter: the best-measured kind's variance beyond its centroid noise, at least the tick's.
    stamp_var = tick_s ** 2 / 12.0
    if judged:
        best = min(judged, key=lambda k: seen[k] / np.sqrt(judged[k].size))
        stamp_var = max(stamp_var, seen[best] - noise_var[best])
    scatter_ratio = {k: seen[k] / (noise_var[k] + stamp_var) if noise_var[k] + stamp_var > 0 else np.inf
                     for k in judged}
    suspect_kinds = {k for k, r in scatter_ratio.items()
                     if r > max(SCATTER_RATIO, 1.0 + _SCATTER_SIGMAS * np.sqrt(2.0 / judged[k].size))}
    var_all = centroid_u_s[idx] ** 2 + stamp_var
    while True:
        trusted = np.flatnonzero(~np.isin(lk, sorted(suspect_kinds)))
        # A kind of one or two edges (a RUN's first readout out of idle, its last retrieval into it) reads its
        # outer level from whatever the board did before or after, yet its tall step states a small noise:
        # it would steer the map alone (2.4 µs off behind a 6 µs RC at 20.48 µs). Judged kinds fit it.
        judged_trusted = trusted[np.isin(lk[trusted], sorted(judged))]
        if judged_trusted.size >= 3:
            trusted = judged_trusted
        if trusted.size < 3:  # every kind scatters: nothing clean to fit; the stamps' scatter takes it all
            suspect_kinds, trusted = set(), np.arange(idx.size)
            stamp_var = max(stamp_var, float(np.var(_detrended(dev[idx], centroid_s[idx]))))
            var_all = centroid_u_s[idx] ** 2 + stamp_var
        fit = _fit(dev[idx], centroid_s[idx], var_all, lk, trusted, seen)
        # Only judged kinds speak: a kind of one or two edges (a RUN's first readout, out of idle) is too few.
        voting = sorted({int(k) for k in lk[trusted]} & set(judged))
        disagree = [k for k in fit.disagreeing() if k in voting]
        if not disagree:
            break
        culprit = _culprit(dev[idx], centroid_s[idx], var_all, lk, trusted, seen, voting, scatter_ratio)
        if culprit is None:
            break
        suspect_kinds.add(culprit)
    systematic = max((abs(fit.kind_offsets[k][0]) for k in disagree), default=0.0)
    kind_offset = {k: fit.kind_offsets[k][0] for k in suspect_kinds if k in fit.disagreeing()}
    suspect = np.isin(kinds, sorted(suspect_kinds))
    mapped = fit.offset_s + fit.ratio * dev
    map_var = max(1.0, fit.chi2) * (fit.line_var[0] + (dev - fit.line_var[2]) ** 2 * fit.line_var[1])
    # Trusted located edges: centroid and map combined by inverse variance; others: the map and the stamps.
    shrink = np.zeros(dev.size)
    blend = located & ~suspect
    total_var = stamp_var + centroid_u_s[blend] ** 2
    shrink[blend] = np.divide(stamp_var, total_var, out=np.ones_like(total_var), where=total_var > 0)
    position = mapped + shrink * np.where(located, centroid_s - mapped, 0.0)
    position_var = np.where(blend, shrink * centroid_u_s ** 2, stamp_var) + map_var
    return EdgePositions(position, np.sqrt(position_var), systematic, float(np.sqrt(stamp_var)), suspect,
                         kind_offset, fit.offset_s, fit.ratio)


def _culprit(dev: np.ndarray, centroid_s: np.ndarray, var: np.ndarray, kinds: np.ndarray, trusted: np.ndarray,
             scatter: dict[int, float], voting: list[int], scatter_ratio: dict[int, float]) -> int | None:
    """The voting (trusted, judged) kind to hold responsible for their disagreement, or None when nothing
    singles one out: the only kind whose removal leaves the others agreeing; else, among those (or all),
    the most scattered if it scatters `_ATTRIBUTE_MARGIN` times more than the least."""
    settling = []
    for k in voting:
        rest = trusted[kinds[trusted] != k]
        if rest.size >= 3:
            others = _fit(dev, centroid_s, var, kinds, rest, scatter)
            if not any(j in voting and j != k for j in others.disagreeing()):
                settling.append(k)
    if len(settling) == 1 and len(voting) > 2:
        return settling[0]
    candidates = sorted((scatter_ratio[k], k) for k in (settling or voting))
    if len(candidates) >= 2 and candidates[-1][0] > _ATTRIBUTE_MARGIN * candidates[0][0]:
        return candidates[-1][1]
    return None


def _detrended(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y minus its least-squares line in x (a kind's centroids about its own clock map)."""
    if x.size < 3 or np.ptp(x) == 0:
        return y - np.mean(y)
    slope, intercept = np.polyfit(x - x.mean(), y, 1)
    return np.asarray(y - intercept - slope * (x - x.mean()))
