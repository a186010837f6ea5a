"""Model/device pairs: what the suites are parametrized over.

Every budget entry is instantiated for every lab device of its kind (a rack with `coral-1` and
`coral-2` gets two pairs); a `--model PATH.tflite` adds a budget-less pair per selected device, unless a
budget entry names that model (by its stem, `my_net`, or its path): the pair then carries that budget.
Selection by `--device`/`--model` happens after generation so the rest is reported as deselected.
`check_budget_targets` refuses, at start-up, budget entries that could never run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_edgehil.config.budgets import BudgetEntry
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.kinds import device_kinds
from pytest_edgehil.config.lab import LabConfig
from pytest_edgehil.config.suggest import closest
from pytest_edgehil.errors import ConfigError


@dataclass(frozen=True)
class Pair:
    model: str  # a catalog name or a .tflite path
    device: str  # lab device name
    kind: str
    budget: BudgetEntry | None = None

    @property
    def model_name(self) -> str:
        return _stem(self.model)

    @property
    def id(self) -> str:
        return f"{self.model_name}-{self.device}"

    def has_any(self, metrics: tuple[str, ...]) -> bool:
        return self.budget is not None and any(m in self.budget.limits for m in metrics)


def _stem(model: str) -> str:
    return Path(model).stem if model.endswith(".tflite") else model


def _model_of(entry: BudgetEntry, extra_models: Sequence[str]) -> str:
    """What a budget entry's pair runs: the `--model` path it names (by path or stem), else its own name."""
    for path in extra_models:
        if entry.model == path or (not entry.model.endswith(".tflite") and entry.model == _stem(path)) \
                or (entry.model.endswith(".tflite") and Path(entry.model).resolve() == Path(path).resolve()):
            return path
    return entry.model


def check_budget_targets(budgets: Sequence[BudgetEntry], catalog: ModelCatalog, lab: LabConfig,
                         extra_models: Sequence[str]) -> None:
    """Refuse budget entries that can never run (a typo would skip their checks silently): a `device` that
    is no registered kind, a `model` that is neither in the catalog, nor a `--model` path's stem, nor an
    existing .tflite path; and a table none of whose kinds is in the lab (when no --model PATH adds pairs
    of its own: otherwise the run would have nothing to run). An entry whose kind is registered but not
    in this lab is fine: one table serves several labs. Reads (validates) the card of
    every budgeted model. Raises ConfigError listing every such entry and what exists."""
    kinds, names = device_kinds(), catalog.names()
    stems = sorted({_stem(m) for m in extra_models})
    problems = []
    for entry in budgets:
        where = entry.origin or f"[[budget]] {entry.id}"
        if entry.device_kind not in kinds:
            hint = closest(entry.device_kind, kinds)
            problems.append(f"{where}: `device` = {entry.device_kind!r} is no device kind"
                            + (f"; did you mean {hint!r}?" if hint else "")
                            + f" (kinds: {', '.join(sorted(kinds))})")
        model = _model_of(entry, extra_models)
        if model.endswith(".tflite"):
            if not Path(model).is_file():
                problems.append(f"{where}: `model` = {entry.model!r}: no such file")
        elif model not in names:
            hint = closest(model, names + stems)
            problems.append(f"{where}: `model` = {entry.model!r} is not in the catalog {catalog.models_dir}"
                            + (f"; did you mean {hint!r}?" if hint else "")
                            + f" (models: {', '.join(names + stems) or 'none'}; a model of your own: pass "
                            "--model PATH.tflite and name its stem or path in `model`)")
    if problems:
        raise ConfigError(f"{len(problems)} budget entr{'y' if len(problems) == 1 else 'ies'} can never run: "
                          + "; ".join(problems))
    lab_kinds = {dev.kind for dev in lab.devices.values()}
    lab_models = any(dev.models for dev in lab.devices.values())
    if budgets and not extra_models and not lab_models and not any(e.device_kind in lab_kinds for e in budgets):
        raise ConfigError(f"no budget entry names a device kind of lab {lab.name!r}: the budgets are for "
                          f"{', '.join(sorted({e.device_kind for e in budgets}))}, the lab has "
                          f"{', '.join(sorted(lab_kinds))}; pass the matching --lab or --budgets")
    for entry in budgets:
        if entry.device_kind in lab_kinds:
            catalog.get(_model_of(entry, extra_models))  # a broken model card fails now, not mid-run
    for dev in lab.devices.values():
        for model in dev.models:
            try:
                catalog.get(model)
            except ConfigError as exc:
                raise ConfigError(f"lab device {dev.name!r}: `models` names {model!r}: {exc}") from exc


def generate_pairs(budgets: Sequence[BudgetEntry], lab: LabConfig, extra_models: Sequence[str],
                   selected_devices: Sequence[str]) -> list[Pair]:
    pairs = [Pair(_model_of(entry, extra_models), dev.name, dev.kind, entry)
             for entry in budgets for dev in lab.devices.values() if dev.kind == entry.device_kind
             # a firmware with its model compiled in runs that model only
             and dev.firmware_model in (None, _stem(_model_of(entry, extra_models)))]
    budgeted = {(p.model_name, p.device) for p in pairs}
    for dev in lab.devices.values():  # the lab's `models` of a device: run there without a budget
        for model in dev.models:
            if (_stem(model), dev.name) not in budgeted:
                pairs.append(Pair(model, dev.name, dev.kind, None))
                budgeted.add((_stem(model), dev.name))
    for model in extra_models:
        for name in selected_devices:
            if lab.devices[name].firmware_model not in (None, _stem(model)):
                continue
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


def why_not_selected(pair: Pair, devices: Sequence[str], models: Sequence[str] | None) -> str | None:
    """Why `--device`/`--model` leave this pair out (a short clause), or None when it is selected."""
    if pair.device not in devices:
        return f"device not in --device {','.join(devices)}"
    if models is not None and not (pair.model in models or pair.model_name in models):
        return f"model not in --model {','.join(models)}"
    return None


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
