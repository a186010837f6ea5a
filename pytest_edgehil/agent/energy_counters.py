"""On-board energy counters a board reads around a long RUN: energy per inference = Δcounter / n.

Sources, each read through the kernel's (or the driver's) own interface:
- powercap RAPL (`/sys/class/powercap/intel-rapl:N/`): `energy_uj` (µJ, monotonic) wraps to 0 at
  `max_energy_range_uj` (Documentation/power/powercap/powercap.rst); updated about every millisecond.
- hwmon (`/sys/class/hwmon/hwmonN/`, Documentation/hwmon/sysfs-interface.rst): `energyN_input` (µJ) where
  the chip has an accumulator; `update_interval` (ms) says how often the chip refreshes its readings.
  INA3221/INA2xx expose power (`powerN_input`, µW) or volts × amps instead: no counter, listed by
  `agent.power` as a power reader only.
- NVML: `nvmlDeviceGetTotalEnergyConsumption` (mJ since the driver loaded; Volta and newer).

The math (Δcounter across a wrap, the shortest window the counter resolves, the refusals) is in
`pytest_edgehil.measure.counter_energy`, shared with the host's meter; this module finds and reads the
counters. µJ and seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.measure.counter_energy import (  # the math, re-exported: the host's meter uses it too
    DEFAULT_REL,
    CounterReading,
    CounterSpec,
    delta_uj,
    energy_per_inference_j,
    min_inferences,
    min_window_s,
)

__all__ = ["DEFAULT_REL", "RAPL_UPDATE_S", "CounterReading", "EnergyCounter", "delta_uj", "energy_per_inference_j",
           "find_counters", "min_inferences", "min_window_s"]

RAPL_UPDATE_S = 1e-3  # Intel SDM vol. 3B, 15.10.1: the energy status counters update about every 1 ms


@dataclass(frozen=True)
class EnergyCounter(CounterSpec):
    """A monotonic energy counter in a file (`path`, µJ), wrapping at `max_range_uj` (0: never);
    `kind` is "rapl" or "hwmon"."""

    path: Path = Path("/dev/null")

    def read_uj(self) -> int:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise MeasurementError(f"energy counter {self.name} ({self.path}) cannot be read: {exc}; on recent "
                                   "kernels RAPL's energy_uj is root-only (CVE-2020-8694): run the agent as a "
                                   "user allowed to read it, e.g. a udev rule granting group read") from exc


def find_counters(root: Path | str = "/sys") -> list[EnergyCounter]:
    """Every readable RAPL zone and hwmon energy accumulator under `root` (the kernel's sysfs layout)."""
    base = Path(root)
    found: list[EnergyCounter] = []
    for zone in sorted((base / "class" / "powercap").glob("intel-rapl:*")):
        try:
            (zone / "energy_uj").read_text()
            max_uj = int((zone / "max_energy_range_uj").read_text().strip())
            name = (zone / "name").read_text().strip() if (zone / "name").exists() else zone.name
        except (OSError, ValueError):
            continue  # unreadable for this user: not offered
        found.append(EnergyCounter("rapl", f"{zone.name}:{name}", max_uj, 1.0, RAPL_UPDATE_S, zone / "energy_uj"))
    for hwmon in sorted((base / "class" / "hwmon").glob("hwmon*")):
        try:
            chip = (hwmon / "name").read_text().strip()
            interval_ms = int((hwmon / "update_interval").read_text()) if (hwmon / "update_interval").exists() else 0
        except (OSError, ValueError):
            continue
        for counter in sorted(hwmon.glob("energy*_input")):
            found.append(EnergyCounter("hwmon", f"{chip}-{hwmon.name}-{counter.name.split('_')[0]}", 0, 1.0,
                                       max(interval_ms, 1) * 1e-3, counter))
    return found
