"""What an analyzer twin stores for a requested sample interval: the instrument's own rounding, written
from its manual.

The drivers plan with their own grid (`instruments.dialect.IntervalRule`); the twin never borrows it.
A twin that rounded with the driver's rule would agree with any rule, right or wrong: the N6705C driver
once planned on a 5.12 µs grid everywhere, the twin rounded the same way, and MLPerf Tiny's 10 s plan
(25.6 µs) passed here while a real N6705C runs it at 20.48 µs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from pytest_edgehil.instruments.scpi import Value

# A value within this (relative) of a half step rounds as the half step (text round-off).
_REL_TOL = 1e-9

#: The N6705C's shortest interval (one parameter on an N678xA SMU) and its steps, in seconds.
N6705C_MIN_TINT_S = 5.12e-6
N6705C_STEP_10_S = 10.24e-6
N6705C_STEP_20_S = 20.48e-6
N6705C_STEP_40_S = 40.96e-6


def _nearest(value_s: float, step_s: float) -> float:
    """`value_s` rounded to the nearest multiple of `step_s` (a half step rounds up; the guide says no more)."""
    return max(1, math.floor(value_s / step_s + 0.5 + _REL_TOL)) * step_s


def n6705c_tint_s(requested_s: float, resolution: str = "RES20") -> float:
    """The interval (s) an N6705C runs for `SENS:SWE:TINT requested_s` at time-interval resolution
    `resolution` ("RES20" or "RES40"); the bounds are the setting's (checked before).

    N6705C User's Guide, ch. 6 "Advanced Source, Measurement, and Control" (p. 213 of the edition read):
    values from 10.24 up to 20.48 µs are rounded to the nearest 10.24 µs increment; above 20.48 µs to the
    nearest 20.48 µs increment at RES20; above 40.96 µs to the nearest 40.96 µs increment at RES40.
    Not stated there, our reading: below 10.24 µs the only values are 5.12 and 10.24 µs (its table's
    shortest intervals), and at RES40 values from 20.48 to 40.96 µs round as at RES20.
    """
    if requested_s < N6705C_STEP_10_S * (1 - _REL_TOL):
        return _nearest(requested_s, N6705C_MIN_TINT_S)
    if requested_s <= N6705C_STEP_20_S * (1 + _REL_TOL):
        return _nearest(requested_s, N6705C_STEP_10_S)
    if resolution.upper().startswith("RES40") and requested_s > N6705C_STEP_40_S * (1 + _REL_TOL):
        return _nearest(requested_s, N6705C_STEP_40_S)
    return _nearest(requested_s, N6705C_STEP_20_S)


def _n6705c(value: Value, state: Mapping[str, Value]) -> Value:
    return n6705c_tint_s(float(value), str(state.get("sample_interval_resolution", "RES20")))


#: Driver class name -> what the instrument stores for a sent interval value, given its other settings.
#: Absent: the value is stored as sent (rate codes, NPLC).
INTERVAL_ROUNDING: dict[str, Callable[[Value, Mapping[str, Value]], Value]] = {
    "KeysightN6705C": _n6705c,
}
