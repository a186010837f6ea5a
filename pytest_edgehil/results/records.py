"""Per-test measurement records: what one budget check produced, as plain data (no pytest).

Records travel in `item.user_properties` as ("edgehil", dict) so they survive xdist and reach JUnit XML;
the controller collects them from the reports (see `summary.py`). The pytest side that makes them, the
`Recorder` behind the `edgehil_record` fixture, is `pytest_edgehil.plugin.recorder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from pytest_edgehil.results.vocabulary import Direction, Family, MetricSpec, lookup

USER_PROPERTY = "edgehil"
TRACE_PROPERTY = "edgehil_trace"
MAX_TRACE_POINTS = 600  # a report plot needs the shape of the trace, not every sample


@dataclass(frozen=True)
class MetricRecord:
    pair: str
    model: str
    device: str
    kind: str
    metric: str
    value: float
    unit: str
    backend: str
    status: str  # pass | marginal | fail | info (no budget)
    bound: str = ""
    margin_rel: float | None = None
    samples: int | None = None
    source: str = ""
    ci_low: float | None = None  # 95 % bootstrap confidence interval of the median, when samples were given
    ci_high: float | None = None
    raw: list[float] | None = None  # the per-inference samples, kept for the regression gate
    context: dict[str, object] | None = None
    # The vocabulary's verdict when the record was made (budget included), so the gate needs no lookup:
    # "higher" | "lower" | None (unknown), and a `Family` value. "" family: a record written before
    # records carried them (results schema 1); `spec` then asks the vocabulary.
    direction: str | None = None
    family: str = ""
    published: float | None = None  # the budget's published figure (paper, datasheet), shown beside the value
    # The budget as numbers (bound_text is for reading): the report's trend plots draw the budget band and
    # the marginal band from them. None: no such bound, or a file written before records carried them.
    limit_min: float | None = None
    limit_max: float | None = None
    marginal_rel: float | None = None

    @property
    def spec(self) -> MetricSpec:
        """Unit, family and direction of this record: its own, else the vocabulary's (older files)."""
        if not self.family:
            known = lookup(self.metric)  # built directly, not by dataclasses.replace: the gate asks 10,000 times a night
            return MetricSpec(known.name, self.unit, known.family, known.direction, known.origin)
        direction = Direction(self.direction) if self.direction else None
        return MetricSpec(self.metric, self.unit, Family(self.family), direction, "record")


AB_CONTEXT = "ab"  # a same-session A/B record's context key: the paired rounds of both models


def ab_context(baseline_rounds: Sequence[Sequence[float]], candidate_rounds: Sequence[Sequence[float]], *,
               baseline_sha256: str, source: str) -> dict[str, object]:
    """What a same-session A/B record carries beside its own samples (`raw`, the candidate's, all rounds):
    both models' per-round samples in measurement order, the baseline model's SHA-256 and where it came from."""
    return {AB_CONTEXT: {"baseline_rounds": [[float(x) for x in r] for r in baseline_rounds],
                         "candidate_rounds": [[float(x) for x in r] for r in candidate_rounds],
                         "baseline_sha256": baseline_sha256, "source": source}}


def paired_rounds(record: MetricRecord) -> tuple[list[list[float]], list[list[float]], str] | None:
    """(baseline rounds, candidate rounds, baseline SHA-256) of an A/B record; None for any other record."""
    ab = (record.context or {}).get(AB_CONTEXT)
    if not isinstance(ab, dict):
        return None
    base, new = ab.get("baseline_rounds"), ab.get("candidate_rounds")
    if not isinstance(base, list) or not isinstance(new, list):
        return None
    return ([[float(x) for x in r] for r in base], [[float(x) for x in r] for r in new],
            str(ab.get("baseline_sha256", "")))


_FIELDS = {f.name for f in fields(MetricRecord)}


def records_from_properties(user_properties: Sequence[tuple[str, object]]) -> list[MetricRecord]:
    """The `MetricRecord`s among a report's user properties (keys a newer writer added are ignored)."""
    return [MetricRecord(**{k: v for k, v in value.items() if k in _FIELDS})  # type: ignore[arg-type]
            for key, value in user_properties if key == USER_PROPERTY and isinstance(value, dict)]
