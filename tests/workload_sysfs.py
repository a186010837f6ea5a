"""A board's sysfs power interfaces in a temp directory, laid out as the kernel lays them out, advanced by
a workload power model: idle power, and inference power while the agent's trigger hook says an inference
runs. The model's clock is the agent's clock (real `time.monotonic_ns`); each call first brings the files
up to that time, as the kernel's would be when read, so what a read sees never depends on scheduling.

- RAPL `intel-rapl:0` (package-0): `energy_uj` in whole µJ, updated every `rapl_update_s`, wrapping at
  `max_energy_range_uj`;
- INA3221 `hwmon1`: `update_interval` (ms), channel 1 `VDD_IN` with `in1_input` (mV) and `curr1_input`
  (mA) only, no power or energy file: a power-only rail; each reading is the mean over the last update
  period (the chip averages over its conversion time).
`energy_j(t0, t1)` is the model's exact energy between two times: the truth.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

RAIL_MV = 5000


def _write(path: Path, text: str) -> None:
    """Atomic, as a sysfs read is: a reader never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class WorkloadSysfs:
    def __init__(self, root: Path, *, idle_w: float, infer_w: float, rapl_max_uj: int, rapl_start_uj: int,
                 rapl_update_s: float = 1e-3, ina_interval_ms: int = 2,
                 now_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.idle_w, self.infer_w = idle_w, infer_w
        self.rapl_max_uj, self.rapl_update_s = rapl_max_uj, rapl_update_s
        self.ina_s = ina_interval_ms * 1e-3
        self._lock = threading.Lock()
        self.now_ns = now_ns  # the board's clock: real by default, a stepped one for deterministic tests
        self.t0_ns = now_ns()
        self._t = [0.0]  # breakpoints: time (s since t0), energy there (J), power after (W)
        self._e = [rapl_start_uj * 1e-6]
        self._p = [idle_w]
        self.inferences = 0
        self._rapl_offset_j = 0.0  # added to the published register only (`wrap_in`), never to the truth
        self._published_s = 0.0  # the files' time: it only moves forward, as the kernel's counters do
        self.rapl = root / "class" / "powercap" / "intel-rapl:0"
        self.rapl.mkdir(parents=True)
        (self.rapl / "name").write_text("package-0\n")
        (self.rapl / "max_energy_range_uj").write_text(f"{rapl_max_uj}\n")
        self.ina = root / "class" / "hwmon" / "hwmon1"
        self.ina.mkdir(parents=True)
        (self.ina / "name").write_text("ina3221\n")
        (self.ina / "update_interval").write_text(f"{ina_interval_ms}\n")
        (self.ina / "in1_label").write_text("VDD_IN\n")
        (self.ina / "in1_input").write_text(f"{RAIL_MV}\n")
        self._publish(0.0)

    # -- the model ------------------------------------------------------------------------------------------
    def _energy_at(self, t_s: float) -> float:
        i = bisect.bisect_right(self._t, t_s) - 1
        return self._e[i] + self._p[i] * (t_s - self._t[i])

    def energy_j(self, t0_us: float, t1_us: float) -> float:
        """Exact energy (J) between two agent timestamps (board monotonic µs)."""
        with self._lock:
            return self._energy_at(t1_us * 1e-6 - self.t0_ns * 1e-9) - self._energy_at(t0_us * 1e-6 - self.t0_ns * 1e-9)

    def _publish(self, now_s: float) -> None:
        # A thread that read the clock, then waited for the lock (the GIL on a loaded machine: milliseconds),
        # must not set the files back to its older time under a reader that has already seen newer ones.
        now_s = self._published_s = max(now_s, self._published_s)
        tick = math.floor(now_s / self.rapl_update_s) * self.rapl_update_s
        _write(self.rapl / "energy_uj", f"{int((self._energy_at(tick) + self._rapl_offset_j) * 1e6) % self.rapl_max_uj}\n")
        tick = math.floor(now_s / self.ina_s) * self.ina_s
        mean_w = (self._energy_at(tick) - self._energy_at(tick - self.ina_s)) / self.ina_s if tick > 0 else self.idle_w
        _write(self.ina / "curr1_input", f"{round(mean_w / RAIL_MV * 1e6)}\n")  # mA

    def wrap_in(self, energy_j: float) -> None:
        """Set the RAPL register so that it wraps after `energy_j` more joules."""
        with self._lock:
            now_s = (self.now_ns() - self.t0_ns) * 1e-9
            self._rapl_offset_j = self.rapl_max_uj * 1e-6 - energy_j - self._energy_at(now_s)
            self._publish(now_s)

    def clock_ns(self) -> int:
        now_ns = self.now_ns()
        with self._lock:
            self._publish((now_ns - self.t0_ns) * 1e-9)
        return now_ns

    # -- the agent's trigger hook: inference power while it is high ------------------------------------------
    def set(self, high: bool) -> None:
        with self._lock:
            now_s = (self.now_ns() - self.t0_ns) * 1e-9
            energy = self._energy_at(now_s)
            self._t.append(now_s)
            self._e.append(energy)
            self._p.append(self.infer_w if high else self.idle_w)
            self.inferences += high
            self._publish(now_s)
