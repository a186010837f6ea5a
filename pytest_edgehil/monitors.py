"""Bringing up the USB power monitor a lab file names for a device (the `Bench` asks here).

A monitor that cannot power or measure the board (its supply voltage, its current range) is a ConfigError
naming the device, the monitor, the limit and the fix, before anything is opened. A real monitor
(`monitor = "KIND:ADDRESS"`) is locked across processes like an analyzer channel and opened
through its driver; a simulated device with `twin_monitor = "ppk2"` (or "lpm01a") gets that monitor's twin
on a pty, digitizing its device twin's timeline, and the real driver opened on the twin's port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_edgehil.config.kinds import get_device_kind
from pytest_edgehil.errors import ConfigError, InstrumentBusy, InstrumentError
from pytest_edgehil.instruments.monitor import PowerMonitor, monitor_class, open_monitor, parse_monitor
from pytest_edgehil.locks import ResourceLock, lock_name

if TYPE_CHECKING:
    from pytest_edgehil.bench import Bench, DeviceUnderTest, SupplySettings


def bring_up_monitor(bench: Bench, dut: DeviceUnderTest) -> tuple[PowerMonitor, SupplySettings]:
    """The monitor on `dut`'s supply and how it powers the board. ConfigError when the lab lacks the supply
    voltage or current range for a real board; InstrumentError when the monitor cannot be opened."""
    from pytest_edgehil.bench import SupplySettings

    config = dut.config
    if dut.twin is not None and config.twin_monitor:
        from pytest_edgehil.sim import start_monitor_twin

        twin, port, twin_v, range_a = start_monitor_twin(dut.twin, config.twin_monitor, seed=bench.seed)
        bench.monitor_twins[config.name] = twin  # owned from here on: Bench.close() stops it
        spec = f"{config.twin_monitor}:{port}"
        _check_powers(config.name, f"twin_monitor {config.twin_monitor!r}", spec, twin_v, range_a)
        return open_monitor(spec), SupplySettings(spec, 1, twin_v, range_a)
    assert config.monitor is not None  # the bench asks only when the lab names one
    supply_v = config.supply_v if config.supply_v is not None else get_device_kind(config.kind).supply_v
    if supply_v is None or config.current_range_a is None:
        raise ConfigError(f"device {config.name!r}: energy through the monitor {config.monitor!r} needs `supply_v` "
                          "and `current_range_a` in its lab-file table")
    _check_powers(config.name, f"monitor {config.monitor!r}", config.monitor, supply_v, config.current_range_a)
    lock = ResourceLock(f"monitor {config.monitor} (device {config.name!r})", lock_name("monitor", config.monitor),
                        busy_error=InstrumentBusy, owner=bench.owner)
    lock.acquire(bench.lock_timeout_s, bench.on_lock_wait)
    try:
        monitor = open_monitor(config.monitor)
    except InstrumentError as exc:
        lock.release()
        raise InstrumentError(f"device {config.name!r}: its power monitor {config.monitor} (the lab file's "
                              f"`monitor`) cannot be used: {exc}") from exc
    except BaseException:
        lock.release()
        raise
    bench.analyzer_locks[config.name] = lock
    return monitor, SupplySettings(config.monitor, 1, supply_v, config.current_range_a)


def _check_powers(device: str, field: str, spec: str, supply_v: float, current_range_a: float) -> None:
    """ConfigError when the monitor `spec` cannot power or measure the board (its voltage, its current range):
    a wiring the lab file must change, not a refusal to skip on (docs/instruments.md)."""
    problem = monitor_class(parse_monitor(spec)[0]).supply_problem(supply_v, current_range_a)
    if problem is not None:
        raise ConfigError(f"device {device!r} cannot be measured through its {field} ({spec}): {problem}")
