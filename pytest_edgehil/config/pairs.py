"""Model/device pairs: what the suites are parametrized over.

Every budget entry is instantiated for every lab device of its kind (a rack with `coral-1` and
`coral-2` gets two pairs); a `--model PATH.tflite` adds a budget-less pair per selected device.
Selection by `--device`/`--model` happens after generation so the rest is reported as deselected.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def generate_pairs(budgets: Sequence[BudgetEntry], lab: LabConfig, extra_models: Sequence[str],
                   selected_devices: Sequence[str]) -> list[Pair]:
    pairs = [Pair(entry.model, dev.name, dev.kind, entry)
             for entry in budgets for dev in lab.devices.values() if dev.kind == entry.device_kind]
    budgeted = {(p.model_name, p.device) for p in pairs}
    for model in extra_models:
        for name in selected_devices:
            pair = Pair(model, name, lab.devices[name].kind, None)
            if (pair.model_name, name) not in budgeted:
                pairs.append(pair)
    return pairs


def is_selected(pair: Pair, devices: Sequence[str], models: Sequence[str] | None) -> bool:
    if pair.device not in devices:
        return False
    if models is None:
        return True
    return pair.model in models or pair.model_name in models


def why_no_pairs(pairs: Sequence[Pair], devices: Sequence[str], models: Sequence[str] | None) -> str:
    """Why `--device`/`--model` selected no pair, listing what the budget table does pair (one paragraph)."""
    asked = f"--device {','.join(devices)}" + (f" --model {','.join(models)}" if models else "")
    if not pairs:
        return f"{asked}: the budget table pairs no model with any lab device"
    on_devices = sorted({p.model_name for p in pairs if p.device in devices})
    lines = [f"{asked} selects no model/device pair."]
    if on_devices:
        lines.append(f"Models budgeted on {', '.join(devices)}: {', '.join(on_devices)}.")
    else:
        lines.append(f"No budget entry names a model for {', '.join(devices)}.")
    if models:
        where = sorted({p.device for p in pairs if models and (p.model in models or p.model_name in models)})
        lines.append(f"{', '.join(models)} is budgeted on: {', '.join(where) or 'no lab device'}.")
    lines.append("Pick a listed pair, add a [[budget]] entry for it, or pass --model PATH.tflite to run a model "
                 "without a budget.")
    return " ".join(lines)
