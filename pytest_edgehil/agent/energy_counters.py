"""On-board energy counters a board reads around a long RUN: energy per inference = Δcounter / n.

Sources, each read through the kernel's (or the driver's) own interface:
- powercap RAPL (`/sys/class/powercap/intel-rapl:N/`): `energy_uj` (µJ, monotonic) wraps to 0 at
  `max_energy_range_uj` (Documentation/power/powercap/powercap.rst); updated about every millisecond.
- hwmon (`/sys/class/hwmon/hwmonN/`, Documentation/hwmon/sysfs-interface.rst): `energyN_input` (µJ) where
  the chip has an accumulator; `update_interval` (ms) says how often the chip refreshes its readings.
  INA3221/INA2xx expose power (`powerN_input`, µW) or volts × amps instead: no counter, listed by
  `agent.power` as a power reader only.
- NVML: `nvmlDeviceGetTotalEnergyConsumption` (mJ since the driver loaded; Volta and newer).

A counter is coarse in two ways: its resolution (one count) and its update period (the value changes only
every so often). Over a window of length T the error is at most one update period's energy at each end
and one count: `min_window_s` asks for T long enough that both stay under `rel` of the window's energy,
and `energy_per_inference_j` refuses (CannotResolve) a window shorter than that. Pure functions besides
the readers; µJ and seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pytest_edgehil.errors import CannotResolve, MeasurementError

RAPL_UPDATE_S = 1e-3  # Intel SDM vol. 3B, 15.10.1: the energy status counters update about every 1 ms
DEFAULT_REL = 0.01  # 1 % of the window's energy at most from the counter's granularity


@dataclass(frozen=True)
class CounterReading:
    """One read of a counter: its value (µJ) and the board's monotonic time (s) of the read."""

    energy_uj: int
    time_s: float


@dataclass(frozen=True)
class EnergyCounter:
    """A monotonic energy counter in a file (`path`, µJ), wrapping at `max_range_uj` (0: never)."""

    kind: str  # "rapl" | "hwmon"
    name: str
    path: Path
    max_range_uj: int
    resolution_uj: float
    update_s: float

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
        found.append(EnergyCounter("rapl", f"{zone.name}:{name}", zone / "energy_uj", max_uj, 1.0, RAPL_UPDATE_S))
    for hwmon in sorted((base / "class" / "hwmon").glob("hwmon*")):
        try:
            chip = (hwmon / "name").read_text().strip()
            interval_ms = int((hwmon / "update_interval").read_text()) if (hwmon / "update_interval").exists() else 0
        except (OSError, ValueError):
            continue
        for counter in sorted(hwmon.glob("energy*_input")):
            found.append(EnergyCounter("hwmon", f"{chip}-{hwmon.name}-{counter.name.split('_')[0]}", counter, 0, 1.0,
                                       max(interval_ms, 1) * 1e-3))
    return found


def delta_uj(counter: EnergyCounter, start: CounterReading, end: CounterReading, *, max_power_w: float) -> int:
    """Energy between two reads (µJ), across at most one wrap of the counter.

    A window in which the counter could have wrapped more than once (max_power_w × window > range) cannot
    be told apart from one with fewer wraps: CannotResolve, asking for shorter windows.
    """
    window_s = end.time_s - start.time_s
    if counter.max_range_uj and max_power_w * window_s * 1e6 >= counter.max_range_uj:
        raise CannotResolve(f"{counter.name} window", (start.time_s, end.time_s), counter.update_s,
                            f"at up to {max_power_w:g} W the counter may wrap more than once in "
                            f"{window_s:.3g} s (range {counter.max_range_uj / 1e6:.6g} J)",
                            "measure shorter windows (several RUNs, one per window)")
    diff = end.energy_uj - start.energy_uj
    if diff < 0:
        if not counter.max_range_uj:
            raise MeasurementError(f"energy counter {counter.name} ran backwards ({start.energy_uj} then "
                                   f"{end.energy_uj} µJ) and declares no wrap range: the driver reset it")
        diff += counter.max_range_uj  # RAPL: wrapped once, back through 0
    return diff


def min_window_s(counter: EnergyCounter, power_w: float, rel: float = DEFAULT_REL) -> float:
    """The shortest window whose counter granularity (an update period's energy at each end, plus one
    count) stays under `rel` of the window's energy at `power_w`."""
    if power_w <= 0:
        raise ValueError(f"power must be > 0 W, got {power_w}")
    return (2 * counter.update_s + counter.resolution_uj * 1e-6 / power_w) / rel


def min_inferences(counter: EnergyCounter, period_s: float, power_w: float, rel: float = DEFAULT_REL) -> int:
    """How many back-to-back inferences of `period_s` fill `min_window_s` (at least 1)."""
    return max(1, math.ceil(min_window_s(counter, power_w, rel) / period_s))


def energy_per_inference_j(counter: EnergyCounter, start: CounterReading, end: CounterReading, count: int, *,
                           max_power_w: float, rel: float = DEFAULT_REL) -> float:
    """Δcounter / count in joules. CannotResolve when the window is shorter than `min_window_s` at the
    window's own mean power (the counter's update period or resolution would exceed `rel`), or when it may
    have wrapped more than once; ValueError for count < 1."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    energy_uj = delta_uj(counter, start, end, max_power_w=max_power_w)
    window_s = end.time_s - start.time_s
    mean_w = energy_uj * 1e-6 / window_s if window_s > 0 else 0.0
    needed_s = min_window_s(counter, mean_w, rel) if mean_w > 0 else math.inf
    if window_s < needed_s:
        raise CannotResolve(f"{counter.name} window", (start.time_s, end.time_s), counter.update_s,
                            f"the counter updates every {counter.update_s * 1e3:.3g} ms in steps of "
                            f"{counter.resolution_uj:g} µJ; {count} inference(s) over {window_s * 1e3:.4g} ms "
                            f"at {mean_w:.3g} W leave more than {rel:.0%} of the energy unresolved",
                            f"run at least {math.ceil(count * needed_s / max(window_s, 1e-12))} inferences "
                            f"(>= {needed_s:.3g} s) per window")
    return energy_uj * 1e-6 / count
