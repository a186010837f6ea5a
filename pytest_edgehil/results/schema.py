"""Schema of a results file (and so of a baseline): see `store.py` for the layout and its history.

Strict like every input schema (`pytest_edgehil.config.schema`), with one difference: keys this version
does not know are ignored rather than refused, in `run`, records and traces. Results files are written
by the plugin, not by hand, and a newer minor version adds keys (`direction` and `family` came that
way); an incompatible change raises `schema_version`, which is checked. Imported by
`store.results_from_json` only (it loads pydantic).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from pytest_edgehil.config.schema import StrictModel

Finite = float  # every float is finite (allow_inf_nan=False)
MAX_SAMPLES = 10**12  # no run measures more; a 401-digit "count" is a damaged file


class _Lenient(StrictModel):
    model_config = ConfigDict(extra="ignore")


class RunSchema(_Lenient):
    started_at: str
    backend: str
    edgehil_version: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    seed: int | None = None
    lab: str | None = None
    devices: list[str] | None = None
    python: str | None = None
    platform: str | None = None
    argv: list[str] | None = None
    finished_at: str | None = None
    complete: bool | None = None
    exit_status: int | None = None
    run_id: str | None = None

    @field_validator("started_at", "finished_at")
    @classmethod
    def _instant(cls, value: str | None) -> str | None:
        """An ISO 8601 time, returned in UTC: the gate takes its latest baseline session and the history store
        its newest runs by this text, and "09:30-01:00" (10:30 UTC) sorts before "10:00+00:00" as text. A time
        without an offset is taken as UTC (the plugin has always written UTC)."""
        if value is None:
            return None
        try:
            instant = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time (the plugin writes e.g. "
                             "2026-12-01T10:00:00+00:00)") from None
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=timezone.utc)
        return instant.astimezone(timezone.utc).isoformat()


class RecordSchema(_Lenient):
    pair: str
    metric: Annotated[str, Field(min_length=1)]
    value: Finite | None  # null: the value was NaN or infinite when written (fps of a zero-length run)
    unit: str
    model: str = ""
    device: str = ""
    kind: str = ""
    backend: str = ""
    status: str = ""
    bound: str = ""
    margin_rel: Finite | None = None
    samples: Annotated[int, Field(ge=0)] | None = None
    source: str = ""
    ci_low: Finite | None = None
    ci_high: Finite | None = None
    raw: list[Finite] | None = None
    context: dict[str, Any] | None = None
    direction: Literal["higher", "lower"] | None = None
    # The `Family` values, or "" (schema 1); tests/test_validation_results.py keeps the two in step.
    family: Literal["", "latency", "energy", "power", "throughput", "footprint", "accuracy"] = ""
    test: str = ""
    outcome: str = ""
    median: Finite | None = None
    published: Finite | None = None
    limit_min: Finite | None = None
    limit_max: Finite | None = None
    marginal_rel: Finite | None = None

    @model_validator(mode="after")
    def _physical(self) -> RecordSchema:
        """A cost (time, energy, power, rate, size) or a score is never negative, in the value or any raw sample: a
        file that says so was edited or corrupted, and the gate would compare the samples silently."""
        if self.samples is not None and self.samples > MAX_SAMPLES:
            raise ValueError(f"`samples` = {self.samples} is not a count of measurements")
        # min() first: one C-level pass over the samples; the list only for the message.
        # Accuracy too: the budgets refuse a negative accuracy bound for the same reason (config/schemas.py).
        if self.family in ("latency", "energy", "power", "throughput", "footprint", "accuracy") and (
                (self.value is not None and self.value < 0) or (self.raw and min(self.raw) < 0)):
            negative = [v for v in [self.value, *(self.raw or [])] if v is not None and v < 0]
            article = "an" if self.family[0] in "aeiou" else "a"
            raise ValueError(f"{self.metric} ({article} {self.family} figure) is negative ({negative[0]:g}): the file "
                             "was edited or damaged; measure again")
        return self


class TraceSchema(_Lenient):
    pair: str
    time_s: list[Finite]
    power_w: list[Finite]
    windows_s: list[Annotated[list[Finite], Field(min_length=2, max_length=2)]] = Field(default_factory=list)
    backend: str | None = None
    test: str = ""
    stages_s: dict[str, list[Annotated[list[Finite], Field(min_length=2, max_length=2)]]] = Field(default_factory=dict)
    zoom_time_s: list[Finite] = Field(default_factory=list)
    zoom_power_w: list[Finite] = Field(default_factory=list)
    caption: str = ""

    @field_validator("power_w")
    @classmethod
    def _same_length(cls, power_w: list[float], info: Any) -> list[float]:
        time_s = info.data.get("time_s")
        if time_s is not None and len(time_s) != len(power_w):
            raise ValueError(f"{len(power_w)} power samples for {len(time_s)} times: the two lists pair up")
        return power_w


class ResultsSchema(_Lenient):
    format: str
    schema_version: Annotated[int, Field(ge=1)]
    run: RunSchema
    records: list[RecordSchema]
    traces: list[TraceSchema] = Field(default_factory=list)
    # A run still measuring names its journal here (results/journal.py); `load_results` reads that first.
    journal: str | None = None
