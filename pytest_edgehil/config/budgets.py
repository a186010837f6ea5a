"""Budgets: one entry per model/device pair, each metric a limit with its unit and where it came from.

A check returns a `Verdict` (value, limit, margin) rather than raising, so the caller decides how to
report; a value inside the limit but within the marginal band of it passes with a warning, the way
OpenHTF's marginal limits make a drift visible before it fails.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_edgehil.config.tomlfile import read_toml
from pytest_edgehil.errors import ConfigError, RenamedMetricWarning

# Units, families and directions are the metric vocabulary's (one table for budgets, gate and report).
from pytest_edgehil.results.vocabulary import MetricSpec, current_name, lookup, resolve, unit_of

if TYPE_CHECKING:
    from pytest_edgehil.config.schemas import LimitTable

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
    tolerance: float | None = None  # relative; with `published`, the bound is published × (1 ± tolerance)
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
        from pytest_edgehil.results.summary import format_against  # not at import: the plugin loads budgets

        value = format_against(self.value, self.limit.min, self.limit.max)
        return (f"{model} on {device} ({backend}): {self.limit.metric} = {value}{unit} "
                f"vs budget {self.limit.bound_text}{self._published_text(unit)} — margin {self.margin_rel:+.1%}{n}{src}")

    def _published_text(self, unit: str) -> str:
        """` (published 10 mJ, +21.5% from it)`: the figure a limit derives from is what a reader checks a
        failure against, so it is named with the value's distance from it (empty without one)."""
        published = self.limit.published
        if published is None:
            return ""
        distance = f", {self.value / published - 1:+.1%} from it" if published else ""
        return f" (published {published:g}{unit}{distance})"


@dataclass(frozen=True)
class BudgetEntry:
    model: str
    device_kind: str
    limits: dict[str, Limit] = field(default_factory=dict)
    note: str = ""
    origin: str = field(default="", compare=False)  # "budget table PATH [[budget]] #N (…)": for messages
    replace_lower: bool = False  # `replace = true`: drop a lower layer's limits of this pair (budget_layers)

    @property
    def id(self) -> str:
        """`qsegment-coral`; a model given by path counts by its stem (`my_net-coral`)."""
        model = Path(self.model).stem if self.model.endswith(".tflite") else self.model
        return f"{model}-{self.device_kind}"


BUDGET_FIX = "fix the budget table (its keys and the built-in metrics are listed in docs/budgets.md)"


def published_bounds(published: float, tolerance: float, direction: str | None) -> tuple[float | None, float | None]:
    """(max, min) a published figure and its relative tolerance give: max = published × (1 + tolerance) for
    a lower-is-better metric, min = published × (1 − tolerance) for a higher-is-better one, both for a
    metric of unknown direction (a band)."""
    upper = published * (1 + tolerance) if direction != "higher" else None
    lower = published * (1 - tolerance) if direction != "lower" else None
    return upper, lower


def _limit(metric: str, table: LimitTable, marginal: float, where: str) -> Limit:
    upper, lower = table.max, table.min
    if table.tolerance is not None and table.published is not None:  # conflicts were refused by the schema
        direction = table.direction or (d.value if (d := lookup(metric).direction) is not None else None)
        derived_max, derived_min = published_bounds(table.published, table.tolerance, direction)
        upper = derived_max if derived_max is not None else upper
        lower = derived_min if derived_min is not None else lower
    if upper is not None and lower is not None and lower > upper:
        raise ConfigError(f"{where}: {metric}: min = {lower:g} is above max = {upper:g} (published "
                          f"{table.published:g} with tolerance {table.tolerance:g}): no value can pass; lower the min")
    limit = Limit(metric=metric, max=upper, min=lower,
                  marginal_rel=table.marginal if table.marginal is not None else marginal,
                  published=table.published, tolerance=table.tolerance, source=table.source,
                  direction=table.direction)
    try:
        limit.spec  # noqa: B018  (a `direction` key that contradicts the vocabulary fails at load time)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return limit


def _renamed(limits: dict[str, LimitTable], where: str) -> dict[str, LimitTable]:
    """`limits` with each renamed built-in metric under its new name (RenamedMetricWarning saying so); both
    names in one entry is a ConfigError (which bound was meant cannot be told)."""
    out: dict[str, LimitTable] = {}
    for metric, table in limits.items():
        new = current_name(metric)
        if new != metric:
            if new in limits:
                raise ConfigError(f"{where}: both {metric} and {new} are given; they are one metric ({new} in "
                                  f"KiB, {metric} its old name): keep {new} only")
            warnings.warn(RenamedMetricWarning(
                f"{where}: {metric} is now called {new} (the same figure: bytes / 1024, KiB, as before); "
                f"the limit is applied to {new} unchanged. Rename the key to {new}"), stacklevel=2)
        out[new] = table
    return out


def budgets_from_data(data: Any, path: Path) -> list[BudgetEntry]:
    """Budget entries from a parsed budget table; every problem is a ConfigError naming the file, the
    `[[budget]] #N (model-device)` entry and the key."""
    from pytest_edgehil.config.schema import named_tables, validate  # pydantic: loaded on use only
    from pytest_edgehil.config.schemas import BudgetFile, budget_label

    table = validate(BudgetFile, data, what="budget table", source=str(path), fix=BUDGET_FIX,
                     entry=named_tables("budget", budget_label))
    entries: list[BudgetEntry] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(table.budget):
        where = f"budget table {path}: {budget_label(i, raw.model_dump())}"
        limits = {m: _limit(m, v, table.defaults.marginal, where) for m, v in _renamed(raw.limits, where).items()}
        model = raw.model
        if model.endswith(".tflite") and not Path(model).is_absolute():
            model = str(Path(path).parent / model)  # a model path in a budget is relative to the table
        entry = BudgetEntry(model, raw.device, limits, raw.note, origin=where, replace_lower=raw.replace)
        if entry.id in seen:
            raise ConfigError(f"{where}: a second budget for {entry.id} (the first is [[budget]] "
                              f"#{seen[entry.id] + 1}); merge them into one entry")
        seen[entry.id] = i
        entries.append(entry)
    return entries


def load_budgets(path: Path) -> list[BudgetEntry]:
    """Read and validate a budget table (TOML). Raises ConfigError naming the file, entry and key."""
    return budgets_from_data(read_toml(path, "budget table", "pass --budgets PATH"), Path(path))
