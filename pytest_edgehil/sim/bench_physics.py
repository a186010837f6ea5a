"""Bench physics: what a real bench does to the twins' ideal timeline, each effect one seeded parameter.

A twin that hands the meter exactly what it assumes proves nothing. Every effect below exists on a real
bench (bench-facts: "Measured on our own twin from outside"), is on by default at a realistic value, and is
set in the lab file's `[physics]` table (`BenchPhysics.from_table`; keys are the field names):

| key | default | what it does |
|---|---|---|
| `clock_ppm` | 20 | the device timer runs this many ppm fast against the analyzer (a crystal's tolerance) |
| `timer_resolution_s` | 0.25e-6 | the device stamps stage edges on a timer of this tick (4 MHz) |
| `trigger_latency_s` | 2e-6 | GPIO write to analyzer trigger: the trace's t = 0 lags the true edge by this ... |
| `trigger_jitter_s` | 0.2e-6 | ... plus this much Gaussian jitter per trigger |
| `sampling` | "instrument" | as the instrument's data sheet says (`sim.instrument_specs`: the N6781A averages one conversion every 5.12 µs over each sample, the others integrate); "integrating": each sample the mean over its interval; "point": the value at the sample instant |
| `front_end_bandwidth_hz` | 200e3 | the analyzer's analog front end, a first-order low-pass (0: none) |
| `decoupling_tau_s` | 3e-6 | the RC between analyzer and load (sense/cable resistance × board capacitance) |
| `layer_power_rel` | 0.05 | inference power varies by op type within the stage (± this, duration-weighted mean kept) |
| `session_drift_rel` | 0.015 | each bench session draws one power factor, N(1, σ): board-to-board, temperature |
| `load_ripple_rel` | 0 | a periodic part of the load's power, this × its idle power in amplitude (`timeline.LoadRipple`) ... |
| `load_ripple_hz` | 1000 | ... at this rate: a DC-DC converter's power-save bursts, a timer interrupt, an LED's PWM |
| `instrument_accuracy_rel` | 1 | the analyzer's own offset and gain errors, drawn per session within this × its data sheet (`sim.instrument_errors`; 0: an exact instrument) |
| `instrument_drift_rel` | 0 | 1/f drift of the current offset, rms this × the range's offset figure (held within the figure) |

`BenchPhysics.ideal()` turns everything off (the twins as they were: one clock, flat stages, exact means, exact
instruments).
The truth the meter is checked against is always the load's own energy (`ActivityTimeline.energy_between`
over the true spans); the effects change what the device reports and what the analyzer samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.sim.supply_path import filtered_samples, reach_s, ripple_samples
from pytest_edgehil.sim.timeline import LoadRipple, StageSpan

SAMPLING_MODELS = ("instrument", "integrating", "point")


@dataclass(frozen=True)
class BenchPhysics:
    """The bench effects applied by the twins (see the module table for units and defaults)."""

    clock_ppm: float = 20.0
    timer_resolution_s: float = 0.25e-6
    trigger_latency_s: float = 2e-6
    trigger_jitter_s: float = 0.2e-6
    sampling: str = "instrument"
    front_end_bandwidth_hz: float = 200e3
    decoupling_tau_s: float = 3e-6
    layer_power_rel: float = 0.05
    session_drift_rel: float = 0.015
    load_ripple_rel: float = 0.0
    load_ripple_hz: float = 1e3
    instrument_accuracy_rel: float = 1.0
    instrument_drift_rel: float = 0.0

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING_MODELS:
            raise ConfigError(f"bench physics: sampling = {self.sampling!r}; use one of {', '.join(SAMPLING_MODELS)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "sampling" and not (math.isfinite(value) and (value >= 0 or f.name == "clock_ppm")):
                raise ConfigError(f"bench physics: {f.name} = {value!r} must be a finite number >= 0 "
                                  "(clock_ppm may be negative)")
        if not abs(self.clock_ppm) < 1e4 or self.layer_power_rel >= 1 or self.session_drift_rel >= 0.5:
            raise ConfigError("bench physics: |clock_ppm| < 10000, layer_power_rel < 1 and session_drift_rel < 0.5 "
                              f"are required, got {self.clock_ppm}, {self.layer_power_rel}, {self.session_drift_rel}")
        if self.load_ripple_rel >= 1 or (self.load_ripple_rel > 0 and not self.load_ripple_hz > 0):
            raise ConfigError("bench physics: load_ripple_rel < 1 (the idle power never goes negative) and "
                              f"load_ripple_hz > 0 are required, got {self.load_ripple_rel}, {self.load_ripple_hz}")

    @classmethod
    def ideal(cls) -> BenchPhysics:
        """No effect at all: one shared clock, exact sample means, flat stages, no drift."""
        return cls(clock_ppm=0.0, timer_resolution_s=0.0, trigger_latency_s=0.0, trigger_jitter_s=0.0,
                   sampling="integrating", front_end_bandwidth_hz=0.0, decoupling_tau_s=0.0,
                   layer_power_rel=0.0, session_drift_rel=0.0, load_ripple_rel=0.0, instrument_accuracy_rel=0.0,
                   instrument_drift_rel=0.0)

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None) -> BenchPhysics:
        """Defaults overridden by a lab file's `[physics]` table (validated by the lab schema first);
        `ideal = true` starts from `ideal()` instead of the defaults."""
        table = dict(table or {})
        base = cls.ideal() if table.pop("ideal", False) else cls()
        return replace(base, **table)

    def only(self, *names: str) -> BenchPhysics:
        """These effects at this object's values, everything else off (one row of the truth matrix)."""
        ideal = asdict(BenchPhysics.ideal())
        return BenchPhysics(**{k: (getattr(self, k) if k in names else v) for k, v in ideal.items()})

    @property
    def filter_taus_s(self) -> tuple[float, ...]:
        """Time constants of the supply path, load side first: decoupling RC, then the front end."""
        taus = [self.decoupling_tau_s]
        if self.front_end_bandwidth_hz > 0:
            taus.append(1.0 / (2 * math.pi * self.front_end_bandwidth_hz))
        return tuple(t for t in taus if t > 0)


# ------------------------------------------------------------------------------------------- device side

class DeviceClock:
    """The device's timer: true (analyzer) seconds in, the stamp its firmware reports out, in seconds."""

    def __init__(self, physics: BenchPhysics) -> None:
        self.rate = 1.0 + physics.clock_ppm * 1e-6
        self.tick_s = physics.timer_resolution_s

    def stamp_s(self, true_s: float) -> float:
        ticks = true_s * self.rate
        return math.floor(ticks / self.tick_s) * self.tick_s if self.tick_s > 0 else ticks


def load_ripple(physics: BenchPhysics, idle_power_w: float) -> LoadRipple | None:
    """The load's periodic part for a board idling at `idle_power_w` (None when off)."""
    if physics.load_ripple_rel <= 0:
        return None
    return LoadRipple(physics.load_ripple_rel * idle_power_w, physics.load_ripple_hz)


def session_factor(physics: BenchPhysics, rng: np.random.Generator) -> float:
    """This session's power factor (board-to-board offset, temperature): N(1, σ), kept within ±4σ."""
    sigma = physics.session_drift_rel
    return 1.0 + sigma * float(np.clip(rng.standard_normal(), -4, 4)) if sigma > 0 else 1.0


# Relative power of each op type while it runs (multiply-heavy ops draw most; memory-bound ones least).
_OP_POWER = {"CONV_2D": 1.0, "FULLY_CONNECTED": 0.6, "TRANSPOSE_CONV": 0.8, "DEPTHWISE_CONV_2D": -0.6,
             "BATCH_MATMUL": 0.6}


def layer_segments(macs_by_op: Mapping[str, int], overhead_s: float, inference_s: float,
                   rel: float) -> list[tuple[float, float]]:
    """(fraction of the inference stage, power factor) per segment: the fixed overhead (invoke, DMA set-up)
    first, then each op type with MACs, smallest first, for a share proportional to its MACs.

    Factors are 1 + rel·z (z from the op type: multiply-heavy ops above 1, the overhead and memory-bound
    ops below), normalized so that the duration-weighted mean is exactly 1: the stage's energy is kept.
    """
    if rel <= 0 or inference_s <= 0:
        return [(1.0, 1.0)]
    ops = sorted(((m, name) for name, m in macs_by_op.items() if m > 0))
    overhead = min(max(overhead_s / inference_s, 0.0), 1.0)
    total = sum(m for m, _ in ops)
    parts = [(overhead, -1.0)] if overhead > 0 else []
    parts += [((1.0 - overhead) * m / total, _OP_POWER.get(name, -1.0)) for m, name in ops] if total else []
    parts = [(f, z) for f, z in parts if f > 0] or [(1.0, 0.0)]
    mean_z = sum(f * z for f, z in parts) / sum(f for f, _ in parts)
    return [(f, 1.0 + rel * (z - mean_z)) for f, z in parts]


# ------------------------------------------------------------------------------------------ analyzer side

def trigger_delay_s(physics: BenchPhysics, rng: np.random.Generator) -> float:
    """How long after the device's edge the analyzer's trigger fires (never before it)."""
    return max(0.0, physics.trigger_latency_s + physics.trigger_jitter_s * float(rng.standard_normal()))


def analog_history_start_s(t0_s: float, sample_interval_s: float, points: int, physics: BenchPhysics) -> float:
    """The earliest time whose activity `analog_samples` reads for this window (its filters' settling
    included): spans ending before it cannot change the samples, so a capture need not copy them."""
    return t0_s - sample_interval_s / 2 - reach_s(physics.filter_taus_s)


def conversions_per_sample(physics: BenchPhysics, sample_interval_s: float, conversion_s: float | None) -> int:
    """How a sample is read: 0 = the mean over its interval (an integrating converter); n >= 1 = the mean of n
    point conversions spread evenly over it (1: the value at its instant). `conversion_s`: the instrument's
    conversion interval where its data sheet gives one (`sim.instrument_specs`), used when `physics.sampling`
    is "instrument"; "integrating" and "point" override it."""
    if physics.sampling == "integrating":
        return 0
    if physics.sampling == "point":
        return 1
    if conversion_s is None:
        return 0
    return max(1, round(sample_interval_s / conversion_s))


def analog_samples(spans: list[StageSpan], idle_power_w: float, t0_s: float, sample_interval_s: float,
                   points: int, physics: BenchPhysics, ripple: LoadRipple | None = None, *,
                   conversion_s: float | None = None) -> np.ndarray:
    """Power per sample as the analyzer sees it: the load's power (its stages, plus `ripple`, the timeline's
    periodic part) through the supply path's low-passes, then integrated over each sample interval, taken at
    its instant, or averaged from conversions (`conversions_per_sample`).

    In closed form (`sim.supply_path`): exact for the piecewise-constant load, within 1e-6 W of a
    1/1024-sample grid where the former 1/14-sample grid was off by up to 13 mW (tests/test_supply_path.py).
    """
    n = conversions_per_sample(physics, sample_interval_s, conversion_s)
    # n conversions per sample: point samples at the centres of n equal parts of each interval, averaged.
    dt = sample_interval_s / max(n, 1)
    first_s = t0_s - sample_interval_s / 2 + dt / 2 if n > 1 else t0_s
    count = points * max(n, 1)
    power_w = filtered_samples(spans, idle_power_w, first_s, dt, count, physics.filter_taus_s, point_sampled=n >= 1)
    if ripple is not None:
        power_w += ripple_samples(ripple, first_s, dt, count, physics.filter_taus_s, point_sampled=n >= 1)
    return power_w.reshape(points, n).mean(axis=1) if n > 1 else power_w


def sampled_ripple(ripple: LoadRipple, t0_s: float, sample_interval_s: float, points: int, physics: BenchPhysics, *,
                   conversion_s: float | None = None) -> np.ndarray:
    """The load's ripple alone as the samples see it (`analog_samples`' ripple term; a stream's idle tail)."""
    n = conversions_per_sample(physics, sample_interval_s, conversion_s)
    dt = sample_interval_s / max(n, 1)
    first_s = t0_s - sample_interval_s / 2 + dt / 2 if n > 1 else t0_s
    values = ripple_samples(ripple, first_s, dt, points * max(n, 1), physics.filter_taus_s, point_sampled=n >= 1)
    return values.reshape(points, n).mean(axis=1) if n > 1 else values
