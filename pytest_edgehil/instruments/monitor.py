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
from typing import ClassVar

from pytest_edgehil.errors import ConfigError, InstrumentError, MonitorLimit
from pytest_edgehil.instruments.base import PowerAnalyzer

INSTALL_HINT = "pip install 'pytest-edgehil[monitors]'"
#: Monitor kinds a lab file may name, and the driver class that serves each (module, class).
MONITOR_KINDS = {
    "lpm01a": ("pytest_edgehil.instruments.lpm01a", "LPM01A"),
    "ppk2": ("pytest_edgehil.instruments.ppk2", "PPK2"),
    # Joulescope (pyjoulescope-driver) and Otii (otii-tcp-client) have no driver yet: docs/instruments.md.
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

    def check_supply(self, voltage_v: float, current_range_a: float) -> None:
        """Raise MonitorLimit when the device's supply voltage or peak current lies outside this monitor."""
        low, high = self.voltage_range_v
        if not low <= voltage_v <= high:
            raise MonitorLimit(f"{self.model} at {self.resource} sources {low:g}-{high:g} V; the device needs "
                               f"{voltage_v:g} V. Power it from a monitor or analyzer that sources that voltage")
        if current_range_a > self.max_current_a:
            raise MonitorLimit(f"{self.model} at {self.resource} measures at most {self.max_current_a * 1e3:g} mA "
                               f"at its full sample rate; the device may draw {current_range_a * 1e3:.4g} mA (the "
                               "range the bench asks for). Use a monitor with a larger range (PPK2: 1 A, "
                               "Joulescope: 3 A)")

    def check_interval(self, sample_interval_s: float) -> None:
        """Raise MonitorLimit unless this monitor samples at exactly `sample_interval_s` (never rounded)."""
        supported = self.supported_sample_interval_s(sample_interval_s)
        if abs(supported - sample_interval_s) > 1e-9 * supported:
            raise MonitorLimit(f"{self.model} at {self.resource} cannot sample every {sample_interval_s * 1e6:g} µs; "
                               f"the nearest interval it has is {supported * 1e6:g} µs (plan with "
                               "supported_sample_interval_s)")


def parse_monitor(spec: str) -> tuple[str, str]:
    """`"KIND:ADDRESS"` → (kind, address); ConfigError naming the kinds otherwise."""
    kind, sep, address = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in MONITOR_KINDS or not address:
        raise ConfigError(f"monitor {spec!r}: write KIND:ADDRESS with KIND one of {', '.join(MONITOR_KINDS)} "
                          "(e.g. \"ppk2:/dev/ttyACM0\", \"lpm01a:/dev/ttyACM1\")")
    return kind, address


def open_monitor(spec: str) -> PowerMonitor:
    """Open the monitor a lab file names (`"KIND:ADDRESS"`). Raises ConfigError for a bad name,
    InstrumentError when the monitor or its library is missing."""
    kind, address = parse_monitor(spec)
    module, name = MONITOR_KINDS[kind]
    cls = getattr(importlib.import_module(module), name)
    monitor: PowerMonitor = cls(address)
    return monitor
