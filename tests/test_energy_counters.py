"""On-board energy counters read from a sysfs tree laid out as the kernel lays it out (powercap RAPL,
hwmon), advanced by a workload model (idle and inference power, the counter's update period, its wrap)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pytest_edgehil.agent.energy_counters import (
    CounterReading,
    EnergyCounter,
    energy_per_inference_j,
    find_counters,
    min_inferences,
)
from pytest_edgehil.errors import CannotResolve

IDLE_W, INFER_W, INFER_S, GAP_S = 2.0, 15.0, 5e-3, 1e-3  # a CPU package: idle, busy, one inference, host gap


class RaplZone:
    """`/sys/class/powercap/intel-rapl:0` whose counter integrates a workload, updated every `update_s`."""

    def __init__(self, root: Path, *, max_uj: int, start_uj: int, update_s: float = 1e-3) -> None:
        self.dir = root / "class" / "powercap" / "intel-rapl:0"
        self.dir.mkdir(parents=True)
        (self.dir / "name").write_text("package-0\n")
        (self.dir / "max_energy_range_uj").write_text(f"{max_uj}\n")
        self.max_uj, self.update_s = max_uj, update_s
        self.true_uj = float(start_uj)
        self.t_s = 0.0
        self._publish()

    def _publish(self) -> None:  # the register as the kernel shows it: whole µJ, wrapped
        (self.dir / "energy_uj").write_text(f"{int(self.true_uj) % self.max_uj}\n")

    def run(self, power_w: float, length_s: float) -> None:
        """Advance the workload; the counter file changes only at whole update periods."""
        end_s = self.t_s + length_s
        while self.t_s < end_s - 1e-15:
            tick_s = (math.floor(self.t_s / self.update_s + 1e-9) + 1) * self.update_s
            step_s = min(tick_s, end_s) - self.t_s
            self.true_uj += power_w * step_s * 1e6
            self.t_s += step_s
            if abs(self.t_s - tick_s) < 1e-12:
                self._publish()

    def inferences(self, n: int) -> float:
        """n back-to-back inferences; their true energy (J)."""
        self.run(INFER_W, n * INFER_S)
        return INFER_W * n * INFER_S


def _window(zone: RaplZone, counter: EnergyCounter, n: int) -> tuple[CounterReading, CounterReading, float]:
    zone.run(IDLE_W, GAP_S)
    start = CounterReading(counter.read_uj(), zone.t_s)
    truth_j = zone.inferences(n)
    end = CounterReading(counter.read_uj(), zone.t_s)
    return start, end, truth_j / n


def test_rapl_zone_found_as_the_kernel_lays_it_out(tmp_path):
    RaplZone(tmp_path, max_uj=262_143_328_850, start_uj=0)
    hwmon = tmp_path / "class" / "hwmon" / "hwmon2"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text("ina2xx\n")
    (hwmon / "power1_input").write_text("1500000\n")  # a power reader, not a counter
    counters = find_counters(tmp_path)
    assert [(c.kind, c.name, c.max_range_uj) for c in counters] == [("rapl", "intel-rapl:0:package-0", 262_143_328_850)]


def test_energy_per_inference_from_rapl_across_a_wrap(tmp_path):
    # Start 1 J before the wrap: a 200-inference window (15 J) passes through 0 once.
    zone = RaplZone(tmp_path, max_uj=30_000_000, start_uj=29_000_000)
    counter = find_counters(tmp_path)[0]
    n = min_inferences(counter, INFER_S, INFER_W)
    start, end, truth_j = _window(zone, counter, max(n, 200))
    assert end.energy_uj < start.energy_uj  # it did wrap
    measured = energy_per_inference_j(counter, start, end, max(n, 200), max_power_w=20.0)
    assert abs(measured / truth_j - 1) < 0.01


def test_a_window_shorter_than_the_counter_resolves_is_refused(tmp_path):
    zone = RaplZone(tmp_path, max_uj=262_143_328_850, start_uj=123)
    counter = find_counters(tmp_path)[0]
    start, end, _ = _window(zone, counter, 3)  # 15 ms: 1 ms updates are ~13 % of it
    with pytest.raises(CannotResolve, match=r"updates every 1 ms.*run at least \d+ inferences"):
        energy_per_inference_j(counter, start, end, 3, max_power_w=20.0)


def test_a_window_that_may_wrap_twice_is_refused(tmp_path):
    zone = RaplZone(tmp_path, max_uj=5_000_000, start_uj=0)  # 5 J range: 20 W wraps it every 0.25 s
    counter = find_counters(tmp_path)[0]
    start, end, _ = _window(zone, counter, 100)  # 0.5 s
    with pytest.raises(CannotResolve, match="wrap more than once"):
        energy_per_inference_j(counter, start, end, 100, max_power_w=20.0)
