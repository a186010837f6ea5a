"""Per-test measurement records and the budget check that turns them into a verdict.

Records travel in `item.user_properties` as ("edgehil", dict) so they survive xdist and reach JUnit XML;
the controller collects them from the reports (see `summary.py`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pytest

from pytest_edgehil.config.budgets import Limit, Status, Verdict, unit_of
from pytest_edgehil.config.pairs import Pair
from pytest_edgehil.measure.metrics import summarize

USER_PROPERTY = "edgehil"
TRACE_PROPERTY = "edgehil_trace"
MAX_TRACE_POINTS = 600  # a report plot needs the shape of the trace, not every sample

# What makes two measurements comparable, filled in by the fixtures as the bench comes up:
# model_sha256, device_firmware, protocol_version, instrument_idn, sample_interval_s.
context_key = pytest.StashKey[dict[str, object]]()


class EdgeHILMarginalWarning(UserWarning):
    """A measured value passed its budget but sits within the marginal band of the limit."""


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


class Recorder:
    """What a suite test uses to check one measured value against its pair's budget."""

    def __init__(self, item: pytest.Item, pair: Pair, backend: str) -> None:
        self.item = item
        self.pair = pair
        self.backend = backend

    def limit(self, metric: str) -> Limit | None:
        return self.pair.budget.limits.get(metric) if self.pair.budget else None

    def check(self, metric: str, value: float, *, samples: Sequence[float] | int | None = None,
              ci: tuple[float, float] | None = None) -> Verdict | None:
        """Record `value`; fail the test with a full message if it is outside the budget."""
        n = samples if isinstance(samples, int) or samples is None else len(samples)
        raw = None if isinstance(samples, int) or samples is None else [float(x) for x in samples]
        limit = self.limit(metric)
        verdict = limit.check(value) if limit is not None else None
        record = MetricRecord(
            pair=self.pair.id, model=self.pair.model_name, device=self.pair.device, kind=self.pair.kind,
            metric=metric, value=float(value), unit=unit_of(metric), backend=self.backend,
            status=verdict.status.value if verdict else "info",
            bound=limit.bound_text if limit else "", margin_rel=verdict.margin_rel if verdict else None,
            samples=n, source=limit.source if limit else "",
            ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None, raw=raw,
            context=dict(self.item.stash.get(context_key, {})),
        )
        self.item.user_properties.append((USER_PROPERTY, asdict(record)))
        if verdict is None:
            return None
        message = verdict.describe(device=self.pair.device, model=self.pair.model_name, backend=self.backend,
                                   samples=n)
        if verdict.status is Status.FAIL:
            pytest.fail(f"over budget: {message}", pytrace=False)
        if verdict.status is Status.MARGINAL:
            warnings.warn(EdgeHILMarginalWarning(f"marginal: {message}"), stacklevel=2)
        return verdict

    def attach_trace(self, time_s: np.ndarray, power_w: np.ndarray, windows_s: np.ndarray) -> None:
        """Keep a decimated power trace (and the inference windows on it) for the report's plots."""
        step = max(1, int(np.ceil(len(time_s) / MAX_TRACE_POINTS)))
        n = len(time_s) // step * step
        self.item.user_properties.append((TRACE_PROPERTY, {
            "pair": self.pair.id, "time_s": np.asarray(time_s[:n]).reshape(-1, step).mean(axis=1).tolist(),
            "power_w": np.asarray(power_w[:n]).reshape(-1, step).mean(axis=1).tolist(),
            "windows_s": np.asarray(windows_s).tolist(), "backend": self.backend,
        }))

    def check_median(self, metric: str, samples: Sequence[float]) -> Verdict | None:
        """Check the median of per-inference samples; the record keeps the samples and a 95 % CI."""
        summary = summarize(np.asarray(samples, dtype=float))
        return self.check(metric, summary.median, samples=samples, ci=(summary.ci_low, summary.ci_high))


def records_from_properties(user_properties: Sequence[tuple[str, object]]) -> list[MetricRecord]:
    return [MetricRecord(**value) for key, value in user_properties  # type: ignore[arg-type]
            if key == USER_PROPERTY and isinstance(value, dict)]
