"""Budgets: one entry per model/device pair, each metric a limit with its unit and where it came from.

A check returns a `Verdict` (value, limit, margin) rather than raising, so the caller decides how to
report; a value inside the limit but within the marginal band of it passes with a warning, the way
OpenHTF's marginal limits make a drift visible before it fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pytest_edgehil.config.tomlfile import read_toml
from pytest_edgehil.errors import ConfigError

# Units, families and directions are the metric vocabulary's (one table for budgets, gate and report).
from pytest_edgehil.results.vocabulary import MetricSpec, parse_direction, resolve, unit_of

__all__ = ["DEFAULT_MARGINAL_REL", "BudgetEntry", "Limit", "Status", "Verdict", "load_budgets", "unit_of"]

DEFAULT_MARGINAL_REL = 0.03


class Status(str, Enum):
    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"


@dataclass(frozen=True)
class Limit:
    metric: str
    max: float | None = None
    min: float | None = None
    marginal_rel: float = DEFAULT_MARGINAL_REL
    published: float | None = None  # the paper's figure, when the limit is derived from one
    source: str = ""
    direction: str | None = None  # "higher" | "lower": declared in the budget, for a two-sided user metric

    @property
    def unit(self) -> str:
        return unit_of(self.metric)

    @property
    def spec(self) -> MetricSpec:
        """The vocabulary's facts on this metric, with the direction this limit implies where it has none."""
        return resolve(self.metric, self)

    @property
    def bound_text(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"≥ {self.min:g}")
        if self.max is not None:
            parts.append(f"≤ {self.max:g}")
        return " and ".join(parts) + (f" {self.unit}" if self.unit else "")

    def check(self, value: float) -> Verdict:
        """Relative headroom to the nearest bound: positive inside, negative outside."""
        margins = []
        if self.max is not None:
            margins.append((self.max - value) / abs(self.max) if self.max else -value)
        if self.min is not None:
            margins.append((value - self.min) / abs(self.min) if self.min else value)
        margin = min(margins)
        status = Status.FAIL if margin < 0 else Status.MARGINAL if margin < self.marginal_rel else Status.PASS
        return Verdict(self, float(value), margin, status)


@dataclass(frozen=True)
class Verdict:
    limit: Limit
    value: float
    margin_rel: float
    status: Status

    @property
    def passed(self) -> bool:
        return self.status is not Status.FAIL

    def describe(self, *, device: str, model: str, backend: str, samples: int | None = None) -> str:
        n = f", n={samples}" if samples is not None else ""
        src = f" [budget: {self.limit.source}]" if self.limit.source else ""
        unit = f" {self.limit.unit}" if self.limit.unit else ""
        return (f"{model} on {device} ({backend}): {self.limit.metric} = {self.value:.4g}{unit} "
                f"vs budget {self.limit.bound_text} — margin {self.margin_rel:+.1%}{n}{src}")


@dataclass(frozen=True)
class BudgetEntry:
    model: str
    device_kind: str
    limits: dict[str, Limit] = field(default_factory=dict)
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.model}-{self.device_kind}"


def _limit(metric: str, raw: Any, marginal: float, where: str) -> Limit:
    if isinstance(raw, (int, float)):
        raise ConfigError(f"{where}: {metric} = {raw}: write {{ max = {raw} }} or {{ min = {raw} }} so the direction is explicit")
    if not isinstance(raw, dict) or not ({"max", "min"} & raw.keys()):
        raise ConfigError(f"{where}: {metric} needs a table with `max` and/or `min`")
    unknown = raw.keys() - {"max", "min", "marginal", "published", "source", "direction"}
    if unknown:
        raise ConfigError(f"{where}: {metric} has unknown keys {sorted(unknown)}")
    direction = parse_direction(raw["direction"], f"{where}: {metric}") if "direction" in raw else None
    limit = Limit(metric=metric, max=raw.get("max"), min=raw.get("min"),
                  marginal_rel=float(raw.get("marginal", marginal)), published=raw.get("published"),
                  source=str(raw.get("source", "")), direction=direction)
    try:
        limit.spec  # noqa: B018  (a `direction` key that contradicts the vocabulary fails at load time)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return limit


def load_budgets(path: Path) -> list[BudgetEntry]:
    data = read_toml(path, "budget table", "pass --budgets PATH")
    marginal = float(data.get("defaults", {}).get("marginal", DEFAULT_MARGINAL_REL))
    entries: list[BudgetEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("budget", [])):
        where = f"{path} [[budget]] #{i + 1}"
        try:
            model, kind = str(raw["model"]), str(raw["device"])
        except KeyError as exc:
            raise ConfigError(f"{where}: missing {exc.args[0]!r}") from None
        limits = {m: _limit(m, v, marginal, where) for m, v in raw.get("limits", {}).items()}
        entry = BudgetEntry(model, kind, limits, str(raw.get("note", "")))
        if entry.id in seen:
            raise ConfigError(f"{where}: a second budget for {entry.id}; merge them into one entry")
        seen.add(entry.id)
        entries.append(entry)
    return entries
