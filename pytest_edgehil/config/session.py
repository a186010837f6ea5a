"""The edgehil session: everything resolved from options and files at start-up, frozen.

What a run accumulates (the bench, the records, the energy cache) is not here: it lives in the plugin's
`EdgeHILRun` (`pytest_edgehil.plugin.run`), so this record can be shared, compared and printed freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_edgehil.config.budgets import BudgetEntry
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import LabConfig
from pytest_edgehil.config.pairs import Pair


@dataclass(frozen=True)
class EdgeHILSession:
    """Lab, selection, catalog, budgets and the pairs they make; read once at configure time."""

    lab: LabConfig
    devices: tuple[str, ...]  # the selected lab devices
    models: tuple[str, ...] | None  # None: every model in the budget table
    catalog: ModelCatalog
    budgets: tuple[BudgetEntry, ...]
    pairs: tuple[Pair, ...]  # every pair the budgets and --model make; selection deselects the rest
    seed: int
    dataset_root: Path | None
    analyzer_override: str | None = None

    @property
    def backend_label(self) -> str:
        """SIMULATED, HW or MIXED (HW + SIMULATED): what produced this run's numbers."""
        selected = [self.lab.devices[n] for n in self.devices]
        if all(d.simulated for d in selected):
            return "SIMULATED"
        return "HW" if not any(d.simulated for d in selected) else "MIXED (HW + SIMULATED)"
