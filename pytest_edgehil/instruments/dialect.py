"""What a SCPI analyzer driver declares beside its settings table: how its sample interval is
programmed, which settings carry a capture, and how its arrays come back.

`ScpiAnalyzer` applies these declarations (configure, arm, fetch) and the analyzer twin builds its
dialect from the very same objects, so a command the driver sends and the twin accepts cannot drift
apart. What the instrument *does* with a value (how it rounds an interval) the twin takes from the
manual on its own (`sim.instrument_rounding`), so a wrong rule here shows as a disagreement instead of
being copied. Every rule raises, never rounds or clamps a request silently: a changed test condition
would poison every comparison made later.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass

from pytest_edgehil.errors import ConfigError, MeasurementError
from pytest_edgehil.instruments.scpi import Value

# Settings with these names select the array transfer format; FetchQuery fields left None follow them.
FORMAT_SETTING = "data_format"  # "REAL" = float32 definite-length blocks, "ASC" = comma-separated text
BYTE_ORDER_SETTING = "byte_order"  # "NORM" = big-endian (the SCPI reset default), "SWAP" = little-endian

# Relative slack for float round-off when comparing intervals (a grid value read back as text).
_REL_TOL = 1e-9


class IntervalRule(abc.ABC):
    """How an instrument turns a requested sample interval into a setting value, and back."""

    @property
    @abc.abstractmethod
    def minimum_s(self) -> float:
        """The shortest interval the instrument samples at."""

    @abc.abstractmethod
    def setting_value(self, interval_s: float, *, where: str) -> Value:
        """The value to program for `interval_s`; ConfigError/MeasurementError with the options if none."""

    @abc.abstractmethod
    def interval_s(self, value: Value) -> float:
        """The interval, in seconds, the instrument samples at for a programmed (or read-back) value."""

    def supported_s(self, requested_s: float) -> float:
        """The nearest interval at or above `requested_s` that the instrument supports (for planning)."""
        return max(requested_s, self.minimum_s)


@dataclass(frozen=True)
class IntervalGrid(IntervalRule):
    """The interval itself is programmed, and the instrument runs only on a grid whose step grows with
    the interval: `steps` holds (upper bound s, step s) bands in ascending order, each band's values the
    multiples of its step up to its bound (a single band is a uniform clock). `min_s`/`max_s` bound it.

    The driver plans with `supported_s` and programs only grid values: `setting_value` refuses any other
    (the instrument would round it to a neighbour, changing the capture the points were sized for).
    """

    steps: tuple[tuple[float, float], ...]
    min_s: float
    max_s: float

    @property
    def minimum_s(self) -> float:
        return self.min_s

    def setting_value(self, interval_s: float, *, where: str) -> Value:
        if self.min_s * (1 - _REL_TOL) <= interval_s <= self.max_s * (1 + _REL_TOL):
            supported = self.supported_s(interval_s)
            if abs(supported - interval_s) > _REL_TOL * supported:
                below = self._below(interval_s)
                nearest = (f"{below * 1e6:g} us or " if below is not None else "") + f"{supported * 1e6:g} us"
                raise ConfigError(f"{where} cannot sample every {interval_s * 1e6:g} us: its digitizer runs on "
                                  f"a grid of intervals, here {nearest}, and would round the request to one "
                                  "of them; plan with supported_sample_interval_s (values are never rounded "
                                  "silently)")
        return float(interval_s)  # out of bounds: the Setting's check raises with them

    def interval_s(self, value: Value) -> float:
        return float(value)

    def supported_s(self, requested_s: float) -> float:
        wanted = max(requested_s, self.min_s)
        for upper_s, step_s in self.steps:
            value = math.ceil(wanted / step_s - _REL_TOL) * step_s
            if value <= upper_s * (1 + _REL_TOL):
                return value
        raise ConfigError(f"no sample interval is as long as {requested_s:g} s; the longest is {self.max_s:g} s")

    def _below(self, interval_s: float) -> float | None:
        """The longest grid value below `interval_s`, or None below the grid."""
        below, lower_s = None, self.min_s
        for upper_s, step_s in self.steps:  # each band's values lie in [previous bound, its bound]
            value = min(math.floor(interval_s / step_s + _REL_TOL) * step_s, upper_s)
            if lower_s * (1 - _REL_TOL) <= value < interval_s * (1 - _REL_TOL):
                below = value
            lower_s = upper_s
        return below


@dataclass(frozen=True)
class RateTable(IntervalRule):
    """Fixed rates named by code (e.g. FastLog's `S500K`): only those intervals exist."""

    rates: Mapping[str, float]  # code -> sample interval in seconds
    what: str = "it"

    @property
    def minimum_s(self) -> float:
        return min(self.rates.values())

    def setting_value(self, interval_s: float, *, where: str) -> Value:
        for code, rate_s in self.rates.items():
            if abs(interval_s - rate_s) <= 1e-6 * rate_s:
                return code
        listed = ", ".join(f"{v * 1e6:g} us" for v in self.rates.values())
        raise ConfigError(f"{where}: {self.what} cannot sample every {interval_s * 1e6:g} us; it runs at "
                          f"fixed rates only: {listed} (the driver does not round to the nearest one)")

    def interval_s(self, value: Value) -> float:
        return self.rates[str(value).upper()]

    def supported_s(self, requested_s: float) -> float:
        for rate_s in sorted(self.rates.values()):
            if rate_s >= requested_s * (1 - 1e-6):
                return rate_s
        raise ConfigError(f"{self.what}: no rate is as slow as one sample every {requested_s:g} s; the "
                          f"slowest is {max(self.rates.values()):g} s")


@dataclass(frozen=True)
class LineCycles(IntervalRule):
    """Readings integrated over NPLC power-line cycles: interval = NPLC / line frequency."""

    line_frequency_hz: float
    min_nplc: float

    @property
    def minimum_s(self) -> float:
        return self.min_nplc / self.line_frequency_hz

    def setting_value(self, interval_s: float, *, where: str) -> Value:
        if interval_s < self.minimum_s * (1 - _REL_TOL):
            raise MeasurementError(
                f"{where} reads at most every {self.minimum_s * 1e3:g} ms; a {interval_s * 1e6:g} us "
                f"sample interval is shorter than it can resolve. Use a digitizing analyzer "
                f"(N6705C + N678xA, NGM202) for this window, or measure a longer one")
        return interval_s * self.line_frequency_hz

    def interval_s(self, value: Value) -> float:
        return float(value) / self.line_frequency_hz


@dataclass(frozen=True)
class CaptureRoles:
    """Which declared settings carry a capture; `ScpiAnalyzer.configure` sends them in this order:
    channel select, fixed settings, voltage, current range, output on, functions, interval, points,
    pre-trigger, transfer format. The setpoint and the current range (a limit, on some supplies) are
    programmed before the output turns on.
    """

    interval: str  # the setting the IntervalRule's value goes to
    voltage: str = "voltage_v"
    current_range: str = "current_range_a"  # read back: the range the instrument really chose
    output: str = "output"
    points: str = "points"  # "": none (a stream: the driver counts what it collects)
    trigger_source: str = "trigger_source"  # "": none (FastLog has no trigger)
    pretrigger: str | None = None  # None: the instrument keeps no pre-trigger samples
    pretrigger_sign: int = 1  # -1: a trigger offset in which negative means pre-trigger points
    channel_select: str | None = None  # a setting that selects the channel (instead of "(@n)" lists)
    fixed: tuple[tuple[str, Value], ...] = ()  # sent with every capture, e.g. the supply's function
    digitize_current: str | None = None  # ON/OFF switches, where the functions are switchable
    digitize_voltage: str | None = None
    min_interval_both_s: float = 0.0  # below this the module digitizes current only
    #: Sent (with the driver's `trigger_pin` as numeric suffix) before an EXT acquisition: the first
    #: entry makes a digital pin the trigger input (an N6705C's EXT source fires only from such a
    #: pin), a second one sets its polarity (NEG: the falling edge).
    trigger_input: tuple[tuple[str, Value], ...] = ()
    #: Level-trigger sources: (source prefix, level setting, slope setting); a trigger source
    #: `CURR<n>` (N6705C: the output's current passing a level with a slope) names the "CURR" entry.
    level_triggers: tuple[tuple[str, str, str], ...] = ()

    def names(self) -> set[str]:
        named = {self.interval, self.voltage, self.current_range, self.output, self.points,
                 self.trigger_source, self.pretrigger, self.channel_select, self.digitize_current,
                 self.digitize_voltage}
        return ({name for name in named if name} | {name for name, _ in self.fixed}
                | {name for name, _ in self.trigger_input}
                | {name for _, level, slope in self.level_triggers for name in (level, slope)})


@dataclass(frozen=True)
class FetchQuery:
    """One array read: the query (may contain `{channel}`) and the quantities interleaved in its reply.

    `columns` name what each group of values holds: "current" (A), "voltage" (V), "time" (s, relative).
    `binary` None follows the FORMAT_SETTING ("REAL" = binary); `big_endian` None follows the
    BYTE_ORDER_SETTING ("NORM" = big-endian).
    """

    query: str
    columns: tuple[str, ...]
    binary: bool | None = True
    big_endian: bool | None = None

    def __post_init__(self) -> None:
        unknown = set(self.columns) - {"current", "voltage", "time"}
        if unknown or not self.columns:
            raise ValueError(f"FetchQuery {self.query!r}: columns {self.columns} must be current/voltage/time")
