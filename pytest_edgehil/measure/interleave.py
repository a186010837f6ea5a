"""Same-session A/B: a candidate and a baseline model measured in alternating rounds on one board.

Why interleave: a board's power level moves between sessions (temperature, supply, a re-seated probe)
by more than the regressions a gate must catch; within one session both models share that level, so
their per-round ratio does not see it. The order alternates AB, BA, AB, … (ABBA over two rounds), so a
slow warm-up during the session weighs on both sides alike instead of on whichever ran second.

Each side of a round is one `measure_energy` window; the gate pairs the rounds
(`results.session_stats.paired_rounds_test`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pytest_edgehil.measure.meter import EnergyMeasurement, EnergyPlan, measure_energy

if TYPE_CHECKING:
    from pytest_edgehil.bench import DeviceUnderTest
    from pytest_edgehil.instruments.base import PowerAnalyzer

BASELINE, CANDIDATE = "baseline", "candidate"


@dataclass(frozen=True)
class ABModel:
    name: str
    data: bytes


@dataclass
class ABEnergy:
    """Per round, one energy window of each model; `order` is which ran first in each round."""

    baseline: list[EnergyMeasurement] = field(default_factory=list)
    candidate: list[EnergyMeasurement] = field(default_factory=list)
    order: list[tuple[str, str]] = field(default_factory=list)
    baseline_sha256: str = ""
    candidate_sha256: str = ""

    @property
    def rounds(self) -> int:
        return len(self.candidate)


def measure_energy_ab(dut: DeviceUnderTest, analyzer: PowerAnalyzer, *, supply_v: float, current_range_a: float,
                      baseline: ABModel, candidate: ABModel, plan: EnergyPlan | None = None,
                      rounds: int | None = None, before_each: Callable[[str], None] | None = None) -> ABEnergy:
    """Measure `rounds` rounds (default: the plan's window count) of one window per model, alternating
    which goes first; the candidate stays the active model afterwards. `before_each(side)` is called
    just before each side's window ("baseline" or "candidate"), e.g. to log or to drive a twin.
    Raises what `DeviceUnderTest.ensure_model` and `measure_energy` raise (DeviceError, InstrumentError)."""
    plan = plan or EnergyPlan.simulated()
    count = plan.windows if rounds is None else rounds
    if count < 1:
        raise ValueError(f"an A/B run needs at least one round, got {count}")
    window = replace(plan, windows=1)
    result = ABEnergy()
    for index in range(count):
        order = (CANDIDATE, BASELINE) if index % 2 == 0 else (BASELINE, CANDIDATE)
        result.order.append(order)
        for side in order:
            model = candidate if side == CANDIDATE else baseline
            sha = dut.ensure_model(model.data, model.name)
            if before_each is not None:
                before_each(side)
            measured = measure_energy(dut, analyzer, supply_v=supply_v, current_range_a=current_range_a, plan=window)
            if side == CANDIDATE:
                result.candidate.append(measured)
                result.candidate_sha256 = sha
            else:
                result.baseline.append(measured)
                result.baseline_sha256 = sha
    dut.ensure_model(candidate.data, candidate.name)
    return result
