"""What each twinned instrument's data sheet says of its accuracy, ranges and conversions, written for the twins.

The twins draw their instrument's errors within these figures (`sim.instrument_errors`) and pick their
current range with them. They are written here from the documents again, not imported from the drivers'
declarations (`instruments.accuracy`): a twin shaped by our driver would agree with any driver, right or
wrong (as `sim.instrument_rounding` does for the sample interval). Where the two tables disagree, the meter's
stated uncertainty and the twin's errors disagree, and the truth tests show it.

Each entry: current ranges (full scale A, gain, offset A) ascending; the voltage reading's accuracy and the
output's setpoint accuracy (gain, offset V); whether every sample is read on the range that holds it
(autoranging); and the ADC's conversion interval where the data sheet says each sample is conversions
averaged over its interval (else None: an integrating reading).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_edgehil.instruments import ppk2_protocol


@dataclass(frozen=True)
class TwinRange:
    full_scale_a: float
    gain_rel: float
    offset_a: float


@dataclass(frozen=True)
class TwinSpec:
    """One instrument as its twin models it (units: A, V, s; gains relative)."""

    name: str
    ranges: tuple[TwinRange, ...]
    voltage_gain_rel: float
    voltage_offset_v: float
    setpoint_gain_rel: float
    setpoint_offset_v: float
    autoranging: bool = False
    conversion_s: float | None = None  # one ADC conversion per this interval, averaged per sample

    def range_index(self, current_a: float) -> int:
        """Index of the smallest range whose full scale holds `current_a` (the largest if none does)."""
        for k, r in enumerate(self.ranges):
            if abs(current_a) <= r.full_scale_a * (1 + 1e-9):
                return k
        return len(self.ranges) - 1

    def range_holding(self, current_a: float) -> float:
        """The full scale an instrument with fixed ranges selects for a requested range (A)."""
        return self.ranges[self.range_index(current_a)].full_scale_a


def _proportional(full_scales: tuple[float, ...], gain_rel: float, offset_of_range: float) -> tuple[TwinRange, ...]:
    return tuple(TwinRange(fs, gain_rel, offset_of_range * fs) for fs in full_scales)


# Keysight N6781A in an N6705C: N6700 Specifications Guide (N6700-90001) and the N6780 series data sheet
# (5990-5829EN), N6781A measurement accuracy (1 year, 23 °C ± 5 °C): current 1 mA range 0.025 % + 100 nA,
# 100 mA range 0.025 % + 10 µA, 3 A range 0.03 % + 250 µA; voltage 0.025 % + 1.8 mV, programmed voltage
# 0.025 % + 1.8 mV (the 20 V figures). The guide's "Measurement Accuracy and Resolution (with shorter
# measurement intervals)" (p. 52 of the edition found) gives one averaged point at the 5.12 µs interval
# (NPLC 0.0003), 10 at 51.2 µs: one conversion every 5.12 µs, averaged over the sample interval. The accuracy
# rows themselves were not in the copies searched: as the data sheet is quoted, unverified here.
N6781A = TwinSpec(
    name="Keysight N6781A",
    ranges=(TwinRange(1e-3, 0.00025, 100e-9), TwinRange(0.1, 0.00025, 10e-6), TwinRange(3.0, 0.0003, 250e-6)),
    voltage_gain_rel=0.00025, voltage_offset_v=1.8e-3, setpoint_gain_rel=0.00025, setpoint_offset_v=1.8e-3,
    conversion_s=5.12e-6)

# R&S NGM202: its data sheet was not in the sources searched; conservative figures (looser than the
# instrument is thought to meet): ±(0.1 % + 0.05 % of range) on its 10 mA, 100 mA, 1 A and 10 A ranges, and
# ±(0.05 % + 5 mV) for voltage. FastLog's conversion model is not documented there: integrating.
NGM202 = TwinSpec(
    name="R&S NGM202", ranges=_proportional((0.01, 0.1, 1.0, 10.0), 0.001, 0.0005),
    voltage_gain_rel=0.0005, voltage_offset_v=5e-3, setpoint_gain_rel=0.0005, setpoint_offset_v=5e-3)

# Keithley 2281S-20-6: Reference Manual (077114601, March 2019) p. 7-121/7-122: concurrent measurement ranges
# 10 mA, 100 mA, 1 A, 10 A, autorange on by default (the reading goes to the most sensitive range). The
# accuracy table was not in the sources searched: conservative, as for the NGM202. Readings integrate over
# NPLC (the twin never point-samples it).
K2281S = TwinSpec(
    name="Keithley 2281S", ranges=_proportional((0.01, 0.1, 1.0, 10.0), 0.001, 0.0005),
    voltage_gain_rel=0.0005, voltage_offset_v=5e-3, setpoint_gain_rel=0.0005, setpoint_offset_v=5e-3,
    autoranging=True)

# Nordic PPK2: no accuracy figure from Nordic was found; conservative: ±(0.5 % + 0.1 % of range) on each of its
# five auto-ranged shunts (their full scales from the wire protocol's 14-bit codes). Source voltage: ±50 mV,
# the one figure found (a third-party summary of the PPK2's specifications, applied-ee.github.io, "Power
# Analyzer Tools"); the PPK2 reports no voltage, so the programmed one is all a trace has.
PPK2 = TwinSpec(
    name="Nordic PPK2",
    ranges=_proportional(tuple(ppk2_protocol.full_scale_a(r) for r in range(4)) + (1.0,), 0.005, 0.001),
    voltage_gain_rel=0.0, voltage_offset_v=50e-3, setpoint_gain_rel=0.0, setpoint_offset_v=50e-3, autoranging=True)

# ST X-NUCLEO-LPM01A: UM2243 Rev 2, section 10 "Dynamic current measurement principle": 100 nA to 50 mA "with
# an accuracy in the range of 2 %" (taken as ±(2 % + 100 nA), the floor its range starts at). Its output
# voltage accuracy was not found: conservative ±(0.5 % + 10 mV); it reports no voltage either.
LPM01A = TwinSpec(
    name="ST X-NUCLEO-LPM01A", ranges=(TwinRange(50e-3, 0.02, 100e-9),),
    voltage_gain_rel=0.005, voltage_offset_v=10e-3, setpoint_gain_rel=0.005, setpoint_offset_v=10e-3,
    autoranging=True)

#: Driver class name (the twin dialects) or monitor kind -> its twin's data-sheet figures.
TWIN_SPECS: dict[str, TwinSpec] = {
    "KeysightN6705C": N6781A,
    "RsNgm202": NGM202,
    "Keithley2281S": K2281S,
    "ppk2": PPK2,
    "lpm01a": LPM01A,
}
