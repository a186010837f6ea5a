"""Which driver speaks to which instrument, decided from its `*IDN?` reply.

Drivers register with `@register_analyzer(manufacturer_pattern, model_pattern)`; the patterns are
regular expressions matched (case-insensitively, from the start) against the first two `*IDN?`
fields. Registering the same pair twice is an error, as labgrid's driver registry does, so two
modules cannot silently fight over one instrument.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pyvisa

from pytest_edgehil.errors import ConfigError, InstrumentError
from pytest_edgehil.instruments.base import PowerAnalyzer
from pytest_edgehil.instruments.scpi import VisaLink

A = TypeVar("A", bound=type)
log = logging.getLogger("pytest_edgehil.instruments")

# Imported on first use so that registering happens without the caller knowing the module names.
BUILTIN_DRIVER_MODULES = (
    "pytest_edgehil.instruments.keysight_n6705c",
    "pytest_edgehil.instruments.keithley_2281s",
    "pytest_edgehil.instruments.rs_ngm202",
)


@dataclass(frozen=True)
class DriverEntry:
    manufacturer_pattern: str
    model_pattern: str
    driver: type

    def matches(self, manufacturer: str, model: str) -> bool:
        return (re.match(self.manufacturer_pattern, manufacturer.strip(), re.IGNORECASE) is not None
                and re.match(self.model_pattern, model.strip(), re.IGNORECASE) is not None)


_REGISTRY: list[DriverEntry] = []


def register_analyzer(manufacturer_pattern: str, model_pattern: str) -> Callable[[A], A]:
    """Class decorator: use this driver for instruments whose IDN matches both patterns."""

    def decorate(cls: A) -> A:
        for i, entry in enumerate(_REGISTRY):
            if (entry.manufacturer_pattern, entry.model_pattern) == (manufacturer_pattern, model_pattern):
                if (entry.driver.__module__, entry.driver.__qualname__) == (cls.__module__, cls.__qualname__):
                    # The same driver's module imported again (pytest's in-process runs drop the modules a
                    # run imported, and the next run imports them afresh): the new class replaces the old.
                    _REGISTRY[i] = DriverEntry(manufacturer_pattern, model_pattern, cls)
                    return cls
                raise ConfigError(f"analyzer driver {cls.__name__} registers {manufacturer_pattern!r} / "
                                  f"{model_pattern!r}, already taken by {entry.driver.__name__}")
        _REGISTRY.append(DriverEntry(manufacturer_pattern, model_pattern, cls))
        return cls

    return decorate


def unregister_analyzer(driver: type) -> None:
    """Remove a driver (tests that register a throwaway one)."""
    _REGISTRY[:] = [entry for entry in _REGISTRY if entry.driver is not driver]


def load_builtin_drivers() -> None:
    for module in BUILTIN_DRIVER_MODULES:
        importlib.import_module(module)


def known_models() -> list[str]:
    load_builtin_drivers()
    return [getattr(entry.driver, "model", entry.driver.__name__) for entry in _REGISTRY]


def driver_for_idn(idn: str) -> type:
    """The registered driver class for an `*IDN?` reply; InstrumentError listing known models if none."""
    load_builtin_drivers()
    fields = [field.strip() for field in idn.split(",")]
    manufacturer, model = (fields + ["", ""])[:2]
    for entry in _REGISTRY:
        if entry.matches(manufacturer, model):
            return entry.driver
    raise InstrumentError(f"no power-analyzer driver for *IDN? {idn!r}; known models: "
                          f"{', '.join(known_models())}. Check the address points at the analyzer, "
                          f"or register a driver with @register_analyzer")


OPEN_FIX = ("Check the address (pyvisa-info lists what VISA sees; a TCPIP::HOST::PORT::SOCKET resource needs "
            "the instrument's SCPI port, e.g. 5025), that the instrument is on and its LAN/USB interface enabled, "
            "and the network/USB cabling")


def open_visa(resource: str, *, resource_manager: Any = None, timeout_ms: int = 5000) -> Any:
    """Open a VISA message resource with LF terminations: the session our drivers (and the SCPI contract
    suite) talk through. InstrumentError naming `resource` and what to check when it cannot be opened.

    `resource_manager` defaults to pyvisa-py (`ResourceManager("@py")`). On a raw socket a refused
    connection shows only at the first write (pyvisa-py connects without waiting for the peer): the first
    query then raises VisaLink's InstrumentError, which says the same.
    """
    manager = resource_manager if resource_manager is not None else pyvisa.ResourceManager("@py")
    try:
        handle = manager.open_resource(resource, read_termination="\n", write_termination="\n",
                                       timeout=timeout_ms)
    except Exception as exc:  # pyvisa-py raises a bare Exception for an unknown host or a connect timeout
        raise InstrumentError(f"could not open power analyzer {resource!r}: {type(exc).__name__}: {exc}. "
                              f"{OPEN_FIX}") from exc
    if "::SOCKET" in resource.upper():
        # Raw-socket SCPI is write, write, read: without TCP_NODELAY, Nagle's algorithm holds each
        # second small write until the instrument's delayed ACK (tens of ms per setting).
        try:
            handle.set_visa_attribute(pyvisa.constants.ResourceAttribute.tcpip_nodelay, True)
        except Exception:  # pyvisa-py 0.8 wires this attribute's setter wrongly; it is only speed
            log.debug("%s: could not set TCP_NODELAY; settings will be slower", resource, exc_info=True)
    return handle


def open_analyzer(resource: str, *, channel: int = 1, resource_manager: Any = None,
                  timeout_ms: int = 5000) -> PowerAnalyzer:
    """Open a VISA resource, identify it and return its driver, ready to configure.

    `resource_manager` defaults to pyvisa-py (`ResourceManager("@py")`); tests pass
    `ResourceManager("instruments/<model>.yaml@sim")` or use the TCP analyzer twin's address.
    InstrumentError (InstrumentTimeout when it stays silent) naming `resource` and what to check when the
    instrument cannot be reached, does not answer `*IDN?`, or is no model a driver is registered for.
    """
    handle = open_visa(resource, resource_manager=resource_manager, timeout_ms=timeout_ms)
    link = VisaLink(handle, resource)
    try:
        idn = link.query("*IDN?")
        link.identity = idn  # the link re-synchronizes on it after a bad reply
        driver = driver_for_idn(idn)
        analyzer: PowerAnalyzer = driver(link, idn=idn, channel=channel)
    except BaseException:
        handle.close()
        raise
    return analyzer
