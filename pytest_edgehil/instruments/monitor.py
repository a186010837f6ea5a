"""USB power monitors beside the SCPI analyzers: the interface, its limits, and opening one by name.

A power monitor (ST X-NUCLEO-LPM01A, Nordic PPK2, Joulescope, Qoitech Otii) sources the device's supply and
streams its current; most of them also sample a digital input on the same time base. It is driven through
the same `PowerAnalyzer` calls the meter already makes (configure, arm, wait_complete, fetch_trace), so
the energy suites run unchanged on either; what differs is declared here:

- `voltage_range_v`, `max_current_a`: what the monitor can source and measure at its full sample rate; a
  device outside them is refused with `MonitorLimit` (never a clipped trace),
- `digital_inputs`: how many logic inputs are sampled with the current (0: none, as on the LPM01A); where
  there is one, `Trace.digital` holds the trigger line and the meter places windows from its edges,
- `library`: the driver library (its makers' or community's), imported only when a monitor is opened, with
  an install hint (`pip install 'pytest-edgehil[monitors]'`) when missing.

The lab file names a monitor per device as `monitor = "KIND:ADDRESS"` (`open_monitor`).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, ClassVar

from pytest_edgehil.errors import ConfigError, InstrumentError, MonitorLimit
from pytest_edgehil.instruments.base import PowerAnalyzer

INSTALL_HINT = "pip install 'pytest-edgehil[monitors]'"
#: Monitor kinds a lab file may name, and the driver class that serves each (module, class).
MONITOR_KINDS = {
    "lpm01a": ("pytest_edgehil.instruments.lpm01a", "LPM01A"),
    "ppk2": ("pytest_edgehil.instruments.ppk2", "PPK2"),
    "joulescope": ("pytest_edgehil.instruments.joulescope", "Joulescope"),  # hardware only (no twin)
    "otii": ("pytest_edgehil.instruments.otii", "Otii"),  # hardware only (no twin)
}


def import_library(module: str, package: str, monitor: str) -> ModuleType:
    """Import a monitor's driver library, or raise InstrumentError naming the package and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InstrumentError(f"the {monitor} driver needs the {package!r} package ({exc}); install it with "
                              f"{INSTALL_HINT} or `pip install {package}`") from exc


class PowerMonitor(PowerAnalyzer):
    """A USB power monitor: a supply that streams its current (and a digital input where it has one)."""

    #: (lowest, highest) supply voltage it sources, in volts.
    voltage_range_v: ClassVar[tuple[float, float]]
    #: The largest current it measures at its full sample rate, in amperes.
    max_current_a: ClassVar[float]
    #: Logic inputs sampled with the current (0: none).
    digital_inputs: ClassVar[int] = 0
    #: The driver library ("pyserial", "ppk2-api", ...).
    library: ClassVar[str]
    channel = 1

    @classmethod
    def supply_problem(cls, voltage_v: float, current_range_a: float | None) -> str | None:
        """Why this monitor cannot power or measure a board at `voltage_v` drawing up to `current_range_a`
        (None: unknown), naming the limit and the fix; None when it can."""
        low, high = cls.voltage_range_v
        if not low <= voltage_v <= high:
            return (f"{cls.model} sources {low:g}-{high:g} V and the board needs {voltage_v:g} V: power it from a "
                    f"monitor or analyzer that sources {voltage_v:g} V ({_others(cls, voltage_v=voltage_v)})")
        if current_range_a is not None and current_range_a > cls.max_current_a:
            return (f"{cls.model} measures at most {cls.max_current_a * 1e3:g} mA at its full sample rate and the "
                    f"board may draw {current_range_a * 1e3:.4g} mA (its current range): use a monitor with a "
                    f"larger range ({_others(cls, current_a=current_range_a)})")
        return None

    def check_supply(self, voltage_v: float, current_range_a: float) -> None:
        """Raise MonitorLimit when the device's supply voltage or peak current lies outside this monitor (the
        bench checks this at bring-up and turns it into a ConfigError; here it guards a direct caller)."""
        problem = self.supply_problem(voltage_v, current_range_a)
        if problem is not None:
            raise MonitorLimit(f"{self.model} at {self.resource}: {problem}")

    def check_interval(self, sample_interval_s: float) -> None:
        """Raise MonitorLimit unless this monitor samples at exactly `sample_interval_s` (never rounded)."""
        supported = self.supported_sample_interval_s(sample_interval_s)
        if abs(supported - sample_interval_s) > 1e-9 * supported:
            raise MonitorLimit(f"{self.model} at {self.resource} cannot sample every {sample_interval_s * 1e6:g} µs; "
                               f"the nearest interval it has is {supported * 1e6:g} µs (plan with "
                               "supported_sample_interval_s)")


def monitor_class(kind: str) -> type[PowerMonitor]:
    """The driver class of monitor `kind` (its module imports no vendor library until a monitor is opened)."""
    module, name = MONITOR_KINDS[kind]
    cls: type[PowerMonitor] = getattr(importlib.import_module(module), name)
    return cls


def _others(this: type[PowerMonitor], *, voltage_v: float | None = None, current_a: float | None = None) -> str:
    """The other monitor kinds that would fit, as "Nordic PPK2: 0.8-5 V, 1000 mA"; or a SCPI analyzer."""
    fits = []
    for kind in MONITOR_KINDS:
        cls = monitor_class(kind)
        if cls is this:
            continue
        low, high = cls.voltage_range_v
        if (voltage_v is None or low <= voltage_v <= high) and (current_a is None or current_a <= cls.max_current_a):
            fits.append(f"{cls.model}: {low:g}-{high:g} V, up to {cls.max_current_a:g} A")
    return "; ".join(fits + ["or a SCPI analyzer as the lab file's `analyzer`"])


def parse_monitor(spec: str) -> tuple[str, str]:
    """`"KIND:ADDRESS"` → (kind, address); ConfigError naming the kinds otherwise."""
    kind, sep, address = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in MONITOR_KINDS or not address:
        raise ConfigError(f"monitor {spec!r}: write KIND:ADDRESS with KIND one of {', '.join(MONITOR_KINDS)} "
                          "(e.g. \"ppk2:/dev/ttyACM0\", \"lpm01a:/dev/ttyACM1\", \"joulescope:SERIAL\", \"otii:127.0.0.1:1905\")")
    return kind, address


def open_monitor(spec: str) -> PowerMonitor:
    """Open the monitor a lab file names (`"KIND:ADDRESS"`). Raises ConfigError for a bad name,
    InstrumentError when the monitor or its library is missing."""
    kind, address = parse_monitor(spec)
    cls: Any = monitor_class(kind)  # each driver takes its address (a port, a serial number, a host)
    monitor: PowerMonitor = cls(address)
    return monitor
