"""The edgehil session: everything resolved at configure time, kept in `config.stash`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_edgehil.bench import Bench, DeviceUnderTest
from pytest_edgehil.config.budgets import BudgetEntry
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import LabConfig
from pytest_edgehil.config.pairs import Pair
from pytest_edgehil.measure.meter import EnergyMeasurement
from pytest_edgehil.results.records import MetricRecord


@dataclass
class EdgeHILSession:
    lab: LabConfig
    devices: list[str]
    models: list[str] | None  # None: every model in the budget table
    catalog: ModelCatalog
    budgets: list[BudgetEntry]
    pairs: list[Pair]
    seed: int
    dataset_root: Path | None
    bench: Bench | None = None
    records: list[MetricRecord] = field(default_factory=list)
    analyzer_override: str | None = None
    energy_cache: dict[tuple[str, str | None], EnergyMeasurement] = field(default_factory=dict)

    @property
    def backend_label(self) -> str:
        selected = [self.lab.devices[n] for n in self.devices]
        if all(d.simulated for d in selected):
            return "SIMULATED"
        return "HW" if not any(d.simulated for d in selected) else "MIXED (HW + SIMULATED)"

    def get_bench(self) -> Bench:
        if self.bench is None:
            self.bench = Bench(self.lab, seed=self.seed, analyzer_override=self.analyzer_override)
        return self.bench


session_key = pytest.StashKey[EdgeHILSession]()
duts_key = pytest.StashKey[list[DeviceUnderTest]]()
