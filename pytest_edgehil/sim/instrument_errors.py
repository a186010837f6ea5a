"""A twinned instrument's own errors: per-range current offset and gain, voltage offset and gain, and the output
sitting off its setpoint, drawn once per session within the data sheet (`sim.instrument_specs`), plus an
optional 1/f drift of the current offset.

A real instrument carries exactly these errors, within its data-sheet accuracy, and none of them shows in a
trace: an offset moves every sample alike. The twins apply them so the meter's stated uncertainty is tested
against a bench that has them. The truth stays the load's own energy (`ActivityTimeline.energy_between`).

How: the output sits at V_out = V_set·(1 + g_s) + o_s; the load draws I = P / V_out; the current is read as
I·(1 + g_r) + o_r(t) on the range r that holds it, the voltage as V_out·(1 + g_v) + o_v. Every term is drawn
uniformly within ±`scale` × its data-sheet figure (`BenchPhysics.instrument_accuracy_rel`; 1 = the whole
spec, 0 = an exact instrument). The drift is a sum of sinusoids at log-spaced frequencies with equal
amplitudes (equal power per octave: a 1/f spectrum), its rms `drift_rel` × the range's offset figure, and the
total offset is held within the range's figure, where the data sheet's 1-year accuracy holds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pytest_edgehil.sim.instrument_specs import TwinSpec

# The drift's sinusoids: this many, at log-spaced frequencies between these bounds (Hz), each jittered.
_DRIFT_TONES = 16
_DRIFT_BAND_HZ = (0.05, 20e3)


@dataclass(frozen=True)
class InstrumentErrors:
    """One session's errors of one instrument (see the module text); `exact()` has none."""

    spec: TwinSpec | None
    current_gain: np.ndarray  # per range, relative
    current_offset_a: np.ndarray  # per range
    voltage_gain: float = 0.0
    voltage_offset_v: float = 0.0
    setpoint_gain: float = 0.0
    setpoint_offset_v: float = 0.0
    drift_amplitude_a: np.ndarray | None = None  # per range, each tone's amplitude
    drift_hz: np.ndarray | None = None
    drift_phase: np.ndarray | None = None
    # The drifting offset is held within this × the range's offset figure: the data sheet (1), or a draw asked
    # beyond it (`instrument_accuracy_rel` > 1, an instrument out of its specification).
    scale: float = 1.0

    @classmethod
    def exact(cls) -> InstrumentErrors:
        return cls(None, np.zeros(0), np.zeros(0))

    @classmethod
    def draw(cls, spec: TwinSpec | None, seed: int, *, scale: float = 1.0, drift_rel: float = 0.0) -> InstrumentErrors:
        """This session's errors, from `seed` (the bench's): uniform within ±`scale` × each figure."""
        if spec is None or (scale <= 0 and drift_rel <= 0):
            return cls.exact()
        rng = np.random.default_rng([seed, 0x1A5C])
        n = len(spec.ranges)

        def within(limit: np.ndarray | float) -> np.ndarray:
            return scale * np.asarray(limit) * rng.uniform(-1.0, 1.0, np.shape(limit))

        gains = within(np.array([r.gain_rel for r in spec.ranges]))
        offsets = within(np.array([r.offset_a for r in spec.ranges]))
        volt = within(np.array([spec.voltage_gain_rel, spec.voltage_offset_v,
                                spec.setpoint_gain_rel, spec.setpoint_offset_v]))
        amplitude = hz = phase = None
        if drift_rel > 0:
            low, high = _DRIFT_BAND_HZ
            grid = np.geomspace(low, high, _DRIFT_TONES)
            hz = grid * np.exp(rng.uniform(-0.3, 0.3, _DRIFT_TONES))
            phase = rng.uniform(0.0, 2 * math.pi, _DRIFT_TONES)
            # rms of a sum of K unit sinusoids is sqrt(K/2)
            amplitude = drift_rel * np.array([r.offset_a for r in spec.ranges]) / math.sqrt(_DRIFT_TONES / 2)
        return cls(spec, gains.reshape(n), offsets.reshape(n), float(volt[0]), float(volt[1]), float(volt[2]),
                   float(volt[3]), amplitude, hz, phase, max(scale, 1.0))

    @property
    def exact_instrument(self) -> bool:
        return self.spec is None

    def output_voltage_v(self, setpoint_v: float) -> float:
        """Where the output really sits for a programmed voltage (0 stays 0: the output is off)."""
        if setpoint_v == 0 or self.spec is None:
            return setpoint_v
        return setpoint_v * (1.0 + self.setpoint_gain) + self.setpoint_offset_v

    def read_voltage_v(self, output_v: np.ndarray | float) -> np.ndarray | float:
        """The voltage reading of the real output voltage."""
        if self.spec is None:
            return output_v
        return np.asarray(output_v) * (1.0 + self.voltage_gain) + self.voltage_offset_v

    def read_current_a(self, current_a: np.ndarray, instants_s: np.ndarray, range_a: float | None) -> np.ndarray:
        """The current readings of the load's current `current_a` (A) at `instants_s` (s, for the drift): on
        the range holding `range_a` (a fixed range), or each sample on the range holding it (`range_a` None
        or an autoranging instrument)."""
        spec = self.spec
        if spec is None:
            return current_a
        if spec.autoranging or range_a is None:
            full_scales = np.array([r.full_scale_a for r in spec.ranges]) * (1 + 1e-9)
            index = np.minimum(np.searchsorted(full_scales, np.abs(current_a)), len(spec.ranges) - 1)
        else:
            index = np.full(current_a.shape, spec.range_index(range_a), dtype=np.int64)
        offset = self.current_offset_a[index]
        if self.drift_amplitude_a is not None and self.drift_hz is not None and self.drift_phase is not None:
            # The tones summed in blocks keep the memory at samples × a few tones.
            wave = np.zeros(current_a.shape)
            for f, p in zip(self.drift_hz, self.drift_phase):
                wave += np.sin(2 * math.pi * f * instants_s + p)
            limit = self.scale * np.array([r.offset_a for r in spec.ranges])[index]
            offset = np.clip(offset + self.drift_amplitude_a[index] * wave, -limit, limit)
        return current_a * (1.0 + self.current_gain[index]) + offset
