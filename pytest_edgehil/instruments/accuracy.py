"""An instrument's DC measurement accuracy as its data sheet states it: ±(gain × reading + offset) per range.

A trace carries no sign of the instrument's own offset and gain error: a current offset of a few hundred µA
shifts every sample alike and looks like the load drawing a little more. Only the data sheet bounds it, so
each driver declares its figures beside its other settings (`PowerAnalyzer.accuracy`), and the meter turns
them into a bound on every window's energy (`measure.instrument_accuracy`).

Declarations only, no I/O. Units: amperes, volts, relative gains (0.00025 = 0.025 % of reading).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_edgehil.errors import ConfigError


@dataclass(frozen=True)
class Accuracy:
    """±(`gain_rel` × |reading| + `offset`): a data sheet's accuracy line (offset in A or V)."""

    gain_rel: float
    offset: float

    def __post_init__(self) -> None:
        if not (self.gain_rel >= 0 and self.offset >= 0):
            raise ValueError(f"an accuracy is ±(gain + offset) with both >= 0, got {self.gain_rel}, {self.offset}")

    def limit(self, reading: float) -> float:
        """The largest error a reading of this magnitude may carry (same unit as `offset`)."""
        return self.gain_rel * abs(reading) + self.offset

    def text(self, unit: str) -> str:
        """"±(0.025 % + 10 µA)"."""
        return f"±({self.gain_rel * 100:.3g} % + {_si(self.offset, unit)})"


@dataclass(frozen=True)
class CurrentRange:
    """One current measurement range: its full scale (A) and its accuracy there."""

    full_scale_a: float
    accuracy: Accuracy


@dataclass(frozen=True)
class AccuracySpec:
    """What a data sheet says of an instrument's current and voltage readings.

    `current_ranges` ascending by full scale. `voltage`: the accuracy of a digitized voltage reading;
    `voltage_setpoint`: how far the output may sit from its programmed value, which is what a trace built
    from the programmed voltage carries (a module digitizing current only, a monitor that reports no
    voltage). `autoranging`: each sample is read on the smallest range that holds it (PPK2, Joulescope,
    Otii, a 2281S left on its measurement autorange); otherwise the range the driver programmed holds every
    sample. `source` names the document and table; `conservative` marks figures chosen where no vendor
    figure was found (a looser bound than the instrument is thought to meet, said so in `source`).
    """

    current_ranges: tuple[CurrentRange, ...]
    voltage: Accuracy
    voltage_setpoint: Accuracy
    source: str
    autoranging: bool = False
    conservative: bool = False

    def __post_init__(self) -> None:
        scales = [r.full_scale_a for r in self.current_ranges]
        if not scales or scales != sorted(scales) or len(set(scales)) != len(scales):
            raise ValueError(f"current ranges must be given ascending and distinct, got {scales}")

    def range_for(self, current_a: float) -> CurrentRange:
        """The smallest declared range whose full scale holds `current_a` (what an instrument picks for a
        requested range, and what an autoranging one reads a sample on); ConfigError above the largest."""
        for current_range in self.current_ranges:
            if abs(current_a) <= current_range.full_scale_a * (1 + 1e-9):
                return current_range
        raise ConfigError(f"no current range holds {current_a:g} A; the largest is "
                          f"{self.current_ranges[-1].full_scale_a:g} A")

    def describe(self, range_a: float | None) -> str:
        """The accuracy in words: "±(0.025 % + 10 µA) on the 0.1 A range" (every range when autoranging)."""
        if range_a is None or self.autoranging:
            ranges = "; ".join(f"{_si(r.full_scale_a, 'A')}: {r.accuracy.text('A')}" for r in self.current_ranges)
            return f"current {ranges} (autoranging)"
        current = self.range_for(range_a)
        return f"current {current.accuracy.text('A')} on the {current.full_scale_a:g} A range"


def _si(value: float, unit: str) -> str:
    """10e-6, "A" -> "10 µA"."""
    for scale, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")):
        if abs(value) >= scale or scale == 1e-9:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:g} {unit}"  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class CaptureAccuracy:
    """The accuracy that holds for one configured capture: the instrument's `spec`, the current range it was
    programmed to (None: each sample on its own range), and whether the trace's voltage was digitized
    (else it is the programmed voltage, and the output's setpoint accuracy applies)."""

    spec: AccuracySpec
    instrument: str
    range_a: float | None
    voltage_measured: bool

    @property
    def voltage(self) -> Accuracy:
        return self.spec.voltage if self.voltage_measured else self.spec.voltage_setpoint

    def current(self, current_a: float) -> CurrentRange:
        """The range (and its accuracy) a reading of `current_a` is taken on."""
        if self.range_a is None or self.spec.autoranging:
            return self.spec.range_for(current_a)
        return self.spec.range_for(self.range_a)

    def describe(self) -> str:
        """"Keysight N6705C + N6781A: current ±(0.025 % + 10 µA) on the 0.1 A range, programmed voltage ±(...)"."""
        which = "voltage" if self.voltage_measured else "programmed voltage"
        return (f"{self.instrument}: {self.spec.describe(self.range_a)}, {which} {self.voltage.text('V')}"
                + (" (conservative figures: no vendor figure found)" if self.spec.conservative else ""))
