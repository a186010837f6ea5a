"""Each located stage edge priced from its best position and its flat side, not from its centroid alone.

The energy centroid (`edge_locator`) prices an edge exactly when both stages beside it are flat over its
level regions. A stage that is not flat biases it: with A the flat side's level, B the other's as read
from its far samples and B̄ its true mean over the part of the region it covers (length L_in), the
cumulative energy errs by A/(A − B)·(B̄ − B)·L_in. On MLPerf Tiny's hardware plan (40.96 µs on an
N6705C) the region reaches 115 µs into Q-Segment's 0.23 ms inference, whose per-op power varies by ±5 %:
A/(A − B) = 1.35 beside the IMX500's 4× readout, so up to 3 % per window, +0.4 % median, silently. In
position terms the centroid sits (B̄ − B)·L_in/(A − B) off the true edge, differently at every phase of
the edge against the sample grid: `edge_kinds` finds such kinds by their scatter about the device's clock
map and places their edges by the map fitted to the others, to within the device's stamps (a 0.25 µs
tick on the IMX500: ±0.125 µs); a trusted kind's centroid and the map are combined.

Every edge is then priced from the side whose level is flat and low (`price_edges`): with b a sample
boundary on that side and L that side's level read from the samples just beyond b, the energy up to the
edge at x is Y(b) + L·(x − b) (before) or Y(b) − L·(b − x) (after). A unit-gain filter (decoupling RC,
front end) delays a step's energy by its time constants' sum and has settled 7 τ later: Y(b) is exact at a
boundary 2 τ before an edge or 7 τ after it. The error, per edge (what `price_edges` states):

- position: L·δx, δx the position's 1-sigma (stamps and map, or the combined centroid);
- level: the side's noise over its m samples times |x − b|, and a gradient the side shows across its kind
  (near sample against far, over every edge of the kind) extrapolated over |x − b|;
- energy near the edge that flat levels at x do not account for (`_excess_j`: priced from after less
  priced from before, over the kind), less what a sloped side explains: it lies within about a sample of
  the edge, on a side the samples cannot tell (a spike as the stage starts; the map off the kind's edges),
  and is a bound, not noise; where a kind is priced from one side only, the map's shared offset bound
  (`EdgePositions.systematic_s`) at the difference of a window's two levels stands instead;
- noise: the samples between b and the edge.

Measured on the IMX500 twin at 40.96 µs, 20 benches each (tests/test_bench_physics.py): Q-Segment's 0.23 ms
window states ≈ 0.36 % (1σ), worst 0.81 % (2.2 σ) over ≈ 11 700 inferences, every bench's median within
±0.053 % (was +0.4 %, 3 % worst); TinyTracker's 0.86 ms ≈ 0.16 %, worst 0.28 % (1.8 σ), medians within
±0.011 % (was +0.4 % median, 1.2 % worst). Most of Q-Segment's spread is sample noise the window cannot
avoid: an estimator given the true edges and levels shows 0.18-0.24 % (1σ). Pure functions on arrays;
seconds, watts, joules.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytest_edgehil.measure.edge_kinds import OFFSET_SIGMAS, EdgePositions, edge_positions
from pytest_edgehil.measure.edge_locator import SETTLE_S
from pytest_edgehil.measure.settling import SETTLE_COVER

# Levels are read from at least this many samples beyond the pricing boundary (fewer where the stage is
# short), at most _MAX_LEVEL_SAMPLES.
_LEVEL_SAMPLES = 2
_MAX_LEVEL_SAMPLES = 8


@dataclass(frozen=True)
class PricedEdges:
    """Per edge, NaN (side 0) where not priced: cumulative energy up to it (J), its random 1-sigma (J:
    position, level noise, the samples between the edge and its boundary), the worst-case bias of its
    side's level (J: a gradient the kind's side shows), the level it was priced at (W, `level_w`), and the
    side (−1 before, +1 after). The map's shared offset error (`EdgePositions.systematic_s`) is not in
    them: it moves every edge alike, so a window carries it as (its end's level − its start's)·systematic."""

    cumulative_j: np.ndarray
    u_j: np.ndarray
    bias_j: np.ndarray
    level_w: np.ndarray
    side: np.ndarray
    checked: np.ndarray  # the edge's kind was priced from both sides, so a shift of the map shows in its bias


def _side_cells(bounds: np.ndarray, dt: float, x: float, side: int, delay_s: float, settle_s: float,
                limit_s: float) -> tuple[int, int] | None:
    """(boundary index b, level samples m) for pricing an edge at x from `side`, or None.

    Before: b at least `delay_s` before x (the supply path delays a step's energy by its time constants'
    sum: a boundary that early has not seen this step), its level samples starting `settle_s` after the
    previous edge at `limit_s`. After: b at least `settle_s` past x (this step settled), its level samples
    ending `delay_s` before the next edge. m reaches as far beyond b as b is from x (the level then carries
    no more noise than the stretch it prices), 2 to _MAX_LEVEL_SAMPLES samples, fewer where the stage is short.
    """
    cells = bounds.size - 1
    if side < 0:
        j = int(np.floor((x - delay_s - bounds[0]) / dt + 1e-9))
        room_s = bounds[j] - (limit_s + settle_s) if 0 <= j <= cells else -np.inf
        fit = j
    else:
        j = int(np.ceil((x + settle_s - bounds[0]) / dt - 1e-9))
        room_s = (limit_s - delay_s) - bounds[j] if 0 <= j <= cells else -np.inf
        fit = cells - j
    if not 0 <= j <= cells:
        return None
    wanted = min(_MAX_LEVEL_SAMPLES, max(_LEVEL_SAMPLES, int(np.ceil(abs(x - bounds[j]) / dt - 1e-9))))
    m = min(wanted, fit, int(np.floor(room_s / dt + 1e-9)) if np.isfinite(room_s) else cells)
    return (j, m) if m >= 1 else None


def price_edges(p: np.ndarray, bounds: np.ndarray, cum: np.ndarray, dt: float, pos: EdgePositions,
                priced: np.ndarray, kinds: np.ndarray, step_w: np.ndarray, tau_s: float,
                noise_w: float) -> PricedEdges:
    """Cumulative energy up to each edge where `priced`, from `pos` and the side of its kind that prices it
    best (module doc); elsewhere the arrays hold NaN and side 0.

    `bounds`, `cum`: the trace's sample boundaries and cumulative energy (`edge_locator.cumulative_energy`);
    `step_w`: each edge's power step (W); `tau_s`: the supply path's time constant as fitted from the trace
    (0 where it settles within the locator's SETTLE_S): a boundary priced from stays 2 τ (at least
    2·SETTLE_S/SETTLE_COVER) before an edge and SETTLE_COVER τ (at least SETTLE_S) after one. An edge whose
    kind's better side is too short there is priced from its other side, or left (NaN).

    Energy near an edge that flat levels at its position do not account for (`_excess_j`: a spike as an
    inference starts, or the map off the kind's true edges) lies within about a sample of it, on a side
    nothing in the trace tells. A side whose level slopes across the kind explains up to its own bias; the
    rest is each of the kind's edges' bias.
    """
    n = pos.position_s.size
    x = pos.position_s
    delay_s = max(2.0 * tau_s, 2.0 * SETTLE_S / SETTLE_COVER)
    settle_s = max(SETTLE_COVER * tau_s, SETTLE_S)
    prev_edge = np.concatenate([[-np.inf], x[:-1]])
    next_edge = np.concatenate([x[1:], [np.inf]])
    out = PricedEdges(np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan),
                      np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool))
    for kind in np.unique(kinds[priced]):
        members = np.flatnonzero(priced & (kinds == kind))
        by_side: dict[int, dict[int, tuple[float, float, float, float]]] = {}
        cost: dict[int, float] = {}
        for side in (-1, 1):
            rows = []
            for member in map(int, members):
                limit = float(prev_edge[member] if side < 0 else next_edge[member])
                cells = _side_cells(bounds, dt, float(x[member]), side, delay_s, settle_s, limit)
                if cells is not None:
                    rows.append((member, *cells))
            if rows:
                by_side[side] = _priced_from(p, bounds, cum, dt, pos, rows, side, noise_w)
                # What does not average out over a RUN's inferences (a side's gradient, the map's shared
                # offset at this side's level) weighs as if at 3 sigma.
                cost[side] = float(np.mean([u_k + 3.0 * (bias + abs(level) * pos.systematic_s)
                                            for _, u_k, bias, level in by_side[side].values()]))
        excess_j, checked = _excess_j(by_side, pos.kind_offset_s.get(int(kind), 0.0), step_w[members])
        out.checked[members] = checked
        explained_j = max((float(np.mean([row[2] for row in rows.values()])) for rows in by_side.values()),
                          default=0.0)
        unexplained_j = max(0.0, excess_j - explained_j)
        for side in sorted(cost, key=cost.__getitem__):  # the kind's cheaper side first, the other for the rest
            for k, (value, u_k, bias_k, level_k) in by_side[side].items():
                if out.side[k] == 0:
                    out.cumulative_j[k], out.u_j[k], out.level_w[k] = value, u_k, level_k
                    out.bias_j[k], out.side[k] = bias_k + unexplained_j, side
    return out


def _excess_j(by_side: dict[int, dict[int, tuple[float, float, float, float]]], kind_offset_s: float,
              steps_w: np.ndarray) -> tuple[float, bool]:
    """(energy J at each of a kind's edges that flat levels at its position do not account for, whether it
    was read from both sides). Priced from after less priced from before is the energy between the two
    boundaries beyond what each side's level gives its stretch: zero for flat stages and a right position
    (a supply path's smear included: both boundaries are settled), the spike's energy for a spike, and
    step·δ where the map is δ off. Its mean over the kind, past 3 standard errors, is the excess. A kind
    priced from one side only: its centroids' mean offset from the map times its step (which a centroid's
    misread level also moves, so only where nothing better is seen)."""
    both = sorted(set(by_side.get(-1, {})) & set(by_side.get(1, {})))
    if len(both) >= 2:
        gap = np.array([by_side[1][k][0] - by_side[-1][k][0] for k in both])
        return max(0.0, abs(float(np.mean(gap))) - OFFSET_SIGMAS * float(np.std(gap)) / np.sqrt(gap.size)), True
    steps = np.abs(steps_w)
    steps = steps[steps > 0]  # an edge whose region held too few samples reads no step
    return abs(kind_offset_s) * (float(np.mean(steps)) if steps.size else 0.0), False


def _priced_from(p: np.ndarray, bounds: np.ndarray, cum: np.ndarray, dt: float, pos: EdgePositions,
                 rows: list[tuple[int, int, int]], side: int, noise_w: float
                 ) -> dict[int, tuple[float, float, float, float]]:
    """{edge: (cumulative J, random 1-sigma J, bias bound J, level W)} for each (edge, b, m) priced from
    `side`; the side's gradient is read over the whole kind (its near level sample against its far one)."""
    near_far = [p[j - 1] - p[j - 2] if side < 0 else p[j] - p[j + 1] for _, j, m in rows if m >= 2]
    gradient_w_per_s = 0.0
    if len(near_far) >= 2:
        d = np.asarray(near_far)
        # Only what stands out of the noise: a flat side reads 0.
        standing = abs(float(np.mean(d))) - OFFSET_SIGMAS * float(np.std(d)) / np.sqrt(d.size)
        gradient_w_per_s = max(0.0, standing) / dt
    out = {}
    for k, j, m in rows:
        xk = float(pos.position_s[k])
        level = float(np.mean(p[j - m:j] if side < 0 else p[j:j + m]))
        reach = abs(xk - bounds[j])
        # The level's centre sits m·dt/2 beyond b, the priced stretch's centre reach/2 on the edge's side.
        bias = gradient_w_per_s * (m * dt / 2 + reach / 2) * reach
        random = np.sqrt((level * pos.position_u_s[k]) ** 2 + (noise_w / np.sqrt(m) * reach) ** 2
                         + noise_w ** 2 * dt * max(reach, dt))
        out[k] = (float(cum[j] + level * (xk - bounds[j])), float(random), float(bias), level)
    return out


@dataclass(frozen=True)
class KindPricing:
    """What `priced_by_kind` hands the locator: `done` the edges it priced, and for those (in order) their
    position (s), cumulative energy (J), random 1-sigma (J), bias bound (J) and level (W); `systematic_s`
    the map's shared offset bound (s)."""

    done: np.ndarray
    position_s: np.ndarray
    cumulative_j: np.ndarray
    u_j: np.ndarray
    bias_j: np.ndarray
    level_w: np.ndarray
    systematic_s: float


def priced_by_kind(p: np.ndarray, bounds: np.ndarray, cum: np.ndarray, dt: float, dev: np.ndarray,
                   centroid_s: np.ndarray, centroid_u_s: np.ndarray, located: np.ndarray, kinds: np.ndarray,
                   step_w: np.ndarray, tick_s: float, tau_s: float, noise_w: float) -> KindPricing | None:
    """`edge_positions` then `price_edges` for the located edges and the edges of their kinds the locator
    missed (a stage too short on one side at that edge's phase against the sample grid: their step is
    there, and the straddling sample's step-aware split misprices it behind a supply path, +1.7 % on
    Q-Segment at 40.96 µs). None when too few were located."""
    pos = edge_positions(dev, centroid_s, centroid_u_s, located, kinds, tick_s)
    if pos is None:
        return None
    stepped_kind = np.isin(kinds, kinds[located])
    priced = price_edges(p, bounds, cum, dt, pos, stepped_kind, kinds, step_w, tau_s, noise_w)
    done = stepped_kind & (priced.side != 0)
    # A shift of the map shows in the excess of every kind read from both sides; where one was not, the trusted
    # kinds' disagreement on the map's offset stands as a bound of its own.
    systematic_s = 0.0 if np.all(priced.checked[done]) else pos.systematic_s
    return KindPricing(done, pos.position_s[done], priced.cumulative_j[done], priced.u_j[done],
                       priced.bias_j[done], priced.level_w[done], systematic_s)
