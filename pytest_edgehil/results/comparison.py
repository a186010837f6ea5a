"""What the gate decides, as data: which families block (`FailOn`), one verdict per pair × metric
(`Comparison`), and the whole report with its terminal table (`GateReport`). The decision itself is in
`gate.py`, the statistics in `gate_stats.py`. No pytest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.vocabulary import Direction, Family

# A threshold is the largest change that passes (`energy:5%` never fails a +4.9 % estimate). The defaults
# keep the cuts the gate applied before thresholds meant that (it cut at half the threshold, then):
# 2.5 % for energy and power, 5 % for latency and throughput; accuracy, deterministic, was literal.
DEFAULT_FAIL_ON = "energy:2.5%,power:2.5%,latency:5%,throughput:5%,accuracy:1%"


class GateStatus(str, Enum):
    IMPROVED = "IMPROVED"
    SAME = "SAME"
    REGRESSED = "REGRESSED"
    UNKNOWN = "UNKNOWN"
    MISSING = "MISSING"  # in the baseline, not in this run
    NEW = "NEW"  # in this run, not in the baseline


# ---------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class FailOn:
    """Which metric families block a merge and at what relative regression; `missing`/`unknown` make
    those verdicts block too (default: reported, not blocking)."""

    thresholds: dict[Family, float] = field(default_factory=dict)
    missing: bool = False
    unknown: bool = False

    @classmethod
    def parse(cls, text: str, option: str = "--edgehil-fail-on") -> FailOn:
        """`energy:5%,latency:10%[,missing][,unknown]`; a bare fraction (`energy:0.05`) works too.

        Raises ConfigError naming `option` (the pytest option, or `edgehil compare --fail-on`)."""
        thresholds: dict[Family, float] = {}
        flags = {"missing": False, "unknown": False}
        families = ", ".join(f.value for f in Family)
        for token in (t.strip() for t in text.split(",")):
            if not token:
                continue
            if token in flags:
                flags[token] = True
                continue
            name, sep, amount = token.partition(":")
            try:
                family = Family(name.strip())
            except ValueError:
                raise ConfigError(f"{option} {text!r}: unknown metric family {name.strip()!r}; use "
                                  f"{families} (e.g. energy:5%,latency:10%), or the words missing/unknown") from None
            amount = amount.strip()
            try:
                value = float(amount[:-1]) / 100.0 if amount.endswith("%") else float(amount)
            except ValueError:
                value = -1.0
            if not sep or not (0.0 < value < 10.0) or (not amount.endswith("%") and value >= 1.0):
                raise ConfigError(f"{option} {text!r}: {token!r} needs a relative threshold: a percentage "
                                  f"below 1000 % such as {family.value}:5%, or a fraction below 1 such as "
                                  f"{family.value}:0.05 (a bare 5 would mean 500 %)")
            thresholds[family] = value
        return cls(thresholds, **flags)

    def describe(self) -> str:
        parts = [f"{family.value} +{value * 100:g} %" for family, value in self.thresholds.items()]
        parts += [word for word, on in (("missing", self.missing), ("unknown", self.unknown)) if on]
        return ", ".join(parts) or "nothing (report only)"


# ------------------------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    pair: str
    metric: str
    unit: str
    family: Family
    direction: Direction | None  # None: unknown; never judged IMPROVED or REGRESSED
    status: GateStatus
    blocking: bool  # this comparison fails the gate
    gated: bool  # its family has a --edgehil-fail-on threshold
    threshold: float  # relative; REPORT_THRESHOLD for families that do not gate
    base_value: float | None = None
    new_value: float | None = None
    ratio: float | None = None  # new / base
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None  # one-sided, in the worse direction
    method: str = ""  # how it was tested: session medians (…) | A/B paired rounds (…) | values
    n_base: int = 0
    n_new: int = 0
    flags: tuple[str, ...] = ()
    note: str = ""
    base_unit: str | None = None  # the baseline's unit when it is not `unit` (then never compared)
    # The test (node id) whose record this is, where the run held the pair × metric more than once
    # (results/gate_origins.py); "" otherwise.
    origin: str = ""

    @property
    def base_unit_text(self) -> str:
        """" mJ": the unit the baseline value was recorded in, to print beside it."""
        unit = self.unit if self.base_unit is None else self.base_unit
        return f" {unit}" if unit else ""

    @property
    def higher_is_better(self) -> bool:
        return self.direction is Direction.HIGHER

    @property
    def worse_change(self) -> float | None:
        """Relative change in the worse direction (+0.08: 8 % worse), whatever the metric's direction;
        None without a ratio or a known direction."""
        if self.direction is None or self.ratio is None or not math.isfinite(self.ratio) or self.ratio < 0:
            return None  # (a ratio of 0 is 100 % in either direction; +inf, from zero, has no percentage)
        # The same orientation as the gate's decision (results.gate_decision.worse_fraction): a top1 falling
        # 0.72 → 0.60 is 16.7 % worse, not 1/0.833 − 1 = 20 %.
        return 1.0 - self.ratio if self.higher_is_better else self.ratio - 1.0

    def ratio_text(self) -> str:
        if self.ratio is None or not math.isfinite(self.ratio):
            return ""
        if self.ci_low is None or self.ci_high is None:
            return f"{self.ratio:.3f}"
        return f"{self.ratio:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}]"

    def describe(self) -> str:
        """One sentence naming the pair, the metric, the values, the ratio, its CI and the evidence."""
        unit = f" {self.unit}" if self.unit else ""
        head = f"{self.pair} {self.metric}" + (f" (from {self.origin})" if self.origin else "")
        note = f"; {self.note}" if self.note else ""
        if self.status is GateStatus.MISSING:
            return f"{head}: in the baseline ({fmt(self.base_value)}{self.base_unit_text}) but not measured in this run{note}"
        if self.status is GateStatus.NEW:
            return f"{head}: measured in this run ({fmt(self.new_value)}{unit}), not in the baseline{note}"
        if self.base_unit is not None or self.new_value is None:  # each value with its own unit
            text = (f"{head}: {fmt(self.base_value)}{self.base_unit_text} → {fmt(self.new_value)}"
                    f"{unit if self.new_value is not None else ''}")
        else:
            text = f"{head}: {fmt(self.base_value)} → {fmt(self.new_value)}{unit}"
        if self.ratio is not None and math.isfinite(self.ratio):
            text += f", ratio {self.ratio:.3f}"
            if self.ci_low is not None and self.ci_high is not None:
                text += f" (95 % CI {self.ci_low:.3f}–{self.ci_high:.3f})"
        if self.p_value is not None:
            text += f", one-sided p = {self.p_value:.2g} on {self.method}"
        worse = self.worse_change
        if worse is not None and self.status in (GateStatus.REGRESSED, GateStatus.IMPROVED, GateStatus.UNKNOWN):
            direction = "worse" if worse > 0 else "better"
            text += (f"; {abs(worse):.1%} {direction} ({'higher' if self.higher_is_better else 'lower'} is "
                     f"better; {self.family.value} threshold {self.threshold * 100:g}%)")
        if self.note:
            text += f"; {self.note}"
        if self.flags:
            text += f" [{'; '.join(self.flags)}]"
        return text


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def listed(names: Sequence[str], limit: int = 3) -> str:
    """The names for a message: the first `limit`, then "and N more" ("a.json, b.json, c.json and 2 more")."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ----------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class InputProblem:
    """One named reason the comparison's inputs cannot be trusted; `blocking` unless allowed."""

    kind: str  # one of INPUT_KINDS
    text: str
    blocking: bool

    def describe(self) -> str:
        allowed = "" if self.blocking else " (allowed)"
        return f"INPUT {self.kind.upper()}{allowed}: {self.text}"


_ATTENTION_ORDER = (GateStatus.REGRESSED, GateStatus.UNKNOWN, GateStatus.MISSING, GateStatus.IMPROVED,
                    GateStatus.NEW, GateStatus.SAME)


@dataclass(frozen=True)
class GateReport:
    comparisons: list[Comparison]
    fail_on: FailOn
    run_flags: tuple[str, ...] = ()
    duplicate_notes: tuple[str, ...] = ()
    inputs: tuple[InputProblem, ...] = ()  # named input problems (results.gate_inputs), blocking unless allowed

    @property
    def blocking(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.blocking]

    @property
    def blocking_inputs(self) -> list[InputProblem]:
        return [i for i in self.inputs if i.blocking]

    @property
    def passed(self) -> bool:
        return not self.blocking and not self.blocking_inputs

    def count(self, status: GateStatus) -> int:
        return sum(1 for c in self.comparisons if c.status is status)

    def headline(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s.value}" for s in _ATTENTION_ORDER if self.count(s))
        failures = [f"{len(self.blocking)} blocking"] if self.blocking else []
        failures += [f"input {i.kind}" for i in self.blocking_inputs]
        verdict = f"FAILED: {', '.join(failures)}" if failures else "passed"
        return f"edgehil gate {verdict} ({counts or 'nothing compared'}; fail on {self.fail_on.describe()})"

    def table_lines(self) -> list[str]:
        labelled = any(c.origin for c in self.comparisons)  # a column only where a run repeated a pair × metric
        rows = [("pair", "metric", "baseline", "new", "ratio [95 % CI]", "p", "verdict", "flags")
                + (("from",) if labelled else ())]
        order = {s: i for i, s in enumerate(_ATTENTION_ORDER)}
        for c in sorted(self.comparisons, key=lambda c: (not c.blocking, order[c.status], c.pair, c.metric)):
            unit = f" {c.unit}" if c.unit else ""
            verdict = ("~ " if c.status is GateStatus.UNKNOWN else "") + c.status.value
            if c.blocking:
                verdict += " ✗ FAILS"
            elif not c.gated and c.status in (GateStatus.REGRESSED, GateStatus.IMPROVED):
                verdict += " (not gated)"
            rows.append((c.pair, c.metric, fmt(c.base_value) + (c.base_unit_text if c.base_value is not None else ""),
                         fmt(c.new_value) + (unit if c.new_value is not None else ""), c.ratio_text(),
                         "" if c.p_value is None else f"{c.p_value:.2g}", verdict, "; ".join(c.flags))
                        + ((c.origin,) if labelled else ()))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return lines

    def detail_lines(self) -> list[str]:
        """Full sentences for what needs attention: blocking first, then UNKNOWN and MISSING."""
        lines = [f"FAIL {i.describe()}" if i.blocking else i.describe() for i in self.inputs]
        lines += [f"FAIL {c.describe()}" for c in self.blocking]
        for c in self.comparisons:
            if not c.blocking and c.status in (GateStatus.UNKNOWN, GateStatus.MISSING):
                lines.append(f"{c.status.value} {c.describe()}")
        lines += [f"note: {flag}" for flag in self.run_flags]
        lines += [f"note: {text}" for text in self.duplicate_notes]
        return lines

    def to_json_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "fail_on": self.fail_on.describe(), "run_flags": list(self.run_flags),
                "inputs": [{"kind": i.kind, "text": i.text, "blocking": i.blocking} for i in self.inputs],
                "comparisons": [{**{k: getattr(c, k) for k in (
                    "pair", "metric", "unit", "base_value", "new_value", "ratio", "ci_low", "ci_high", "p_value",
                    "method", "n_base", "n_new", "note", "blocking", "gated", "threshold", "origin")},
                    "base_unit": c.unit if c.base_unit is None else c.base_unit,
                    "family": c.family.value, "direction": c.direction.value if c.direction else None,
                    "status": c.status.value, "flags": list(c.flags)}
                    for c in self.comparisons]}
