"""Model/device pairs: what the suites are parametrized over.

Every budget entry is instantiated for every lab device of its kind (a rack with `coral-1` and
`coral-2` gets two pairs); a `--model PATH.tflite` adds a budget-less pair per selected device.
Selection by `--device`/`--model` happens after generation so the rest is reported as deselected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_edgehil.config.budgets import BudgetEntry
from pytest_edgehil.config.lab import LabConfig


@dataclass(frozen=True)
class Pair:
    model: str  # a catalog name or a .tflite path
    device: str  # lab device name
    kind: str
    budget: BudgetEntry | None = None

    @property
    def model_name(self) -> str:
        return Path(self.model).stem if self.model.endswith(".tflite") else self.model

    @property
    def id(self) -> str:
        return f"{self.model_name}-{self.device}"

    def has_any(self, metrics: tuple[str, ...]) -> bool:
        return self.budget is not None and any(m in self.budget.limits for m in metrics)


def generate_pairs(budgets: list[BudgetEntry], lab: LabConfig, extra_models: list[str],
                   selected_devices: list[str]) -> list[Pair]:
    pairs = [Pair(entry.model, dev.name, dev.kind, entry)
             for entry in budgets for dev in lab.devices.values() if dev.kind == entry.device_kind]
    budgeted = {(p.model_name, p.device) for p in pairs}
    for model in extra_models:
        for name in selected_devices:
            pair = Pair(model, name, lab.devices[name].kind, None)
            if (pair.model_name, name) not in budgeted:
                pairs.append(pair)
    return pairs


def is_selected(pair: Pair, devices: list[str], models: list[str] | None) -> bool:
    if pair.device not in devices:
        return False
    if models is None:
        return True
    return pair.model in models or pair.model_name in models
