"""On-board power readers an agent can offer as a low-rate power monitor, found through the kernel.

- hwmon rails of INA3221 / INA2xx current monitors (Jetson boards, Raspberry Pi power HATs):
  `/sys/class/hwmon/hwmonN/name` is `ina3221` or `ina2xx`/`ina219`/`ina226`/`ina260`; `powerN_input` in µW
  where the driver exposes it, else `inN_input` (mV) × `currN_input` (mA) of one channel.
- powercap RAPL energy counters (x86 packages): `/sys/class/powercap/intel-rapl:N/energy_uj` (µJ,
  wrapping at `max_energy_range_uj`).
- NVML (NVIDIA GPUs) through `pynvml`, where installed: `nvmlDeviceGetPowerUsage` (mW).

These are monitors, not digitizers: they give energy over many inferences (seconds), never a per-inference
window. `find_monitors()` lists what is present; on a machine with none it returns [] and the agent
reports `power:none` in its HELLO capabilities.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

INA_NAMES = {"ina3221", "ina2xx", "ina219", "ina226", "ina230", "ina231", "ina260"}


@dataclass(frozen=True)
class PowerReader:
    """One power source: `kind` (hwmon-ina | rapl | nvml), a name for HELLO, and where it is read."""

    kind: str
    name: str
    path: str

    @property
    def capability(self) -> str:
        return f"power:{self.kind}:{self.name}"


def _hwmon(root: Path) -> list[PowerReader]:
    found = []
    for hwmon in sorted((root / "class" / "hwmon").glob("hwmon*")):
        try:
            chip = (hwmon / "name").read_text().strip()
        except OSError:
            continue
        if chip in INA_NAMES:
            rails = sorted(p.name for p in hwmon.glob("power*_input")) or sorted(p.name for p in hwmon.glob("curr*_input"))
            for rail in rails:
                found.append(PowerReader("hwmon-ina", f"{chip}-{hwmon.name}-{rail.split('_')[0]}", str(hwmon / rail)))
    return found


def _rapl(root: Path) -> list[PowerReader]:
    found = []
    for zone in sorted((root / "class" / "powercap").glob("intel-rapl:*")):
        counter = zone / "energy_uj"
        try:
            counter.read_text()  # root-only on recent kernels: listed only where this user can read it
        except OSError:
            continue
        found.append(PowerReader("rapl", zone.name, str(counter)))
    return found


def _nvml() -> list[PowerReader]:
    if importlib.util.find_spec("pynvml") is None:
        return []
    import pynvml  # optional: only where NVIDIA's bindings are installed

    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no GPU: NVML is simply not present here
        return []
    try:
        return [PowerReader("nvml", f"gpu{i}", f"nvml:{i}") for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


def find_monitors(root: Path | str = "/sys") -> list[PowerReader]:
    """Every on-board power reader present and readable here; [] where there is none."""
    base = Path(root)
    return [*_hwmon(base), *_rapl(base), *_nvml()]


def power_capabilities(readers: list[PowerReader]) -> tuple[str, ...]:
    """What HELLO says about power: one `power:KIND:NAME` per reader, or `power:none`."""
    return tuple(r.capability for r in readers) or ("power:none",)
