"""The `edgehil_record` fixture's object: checks one measured value against the pair's budget, records it.

The records it makes are plain data (`results.records.MetricRecord`) carried in `item.user_properties`;
this module is the pytest side (failing the test, warning on a marginal value, the item's stash).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pytest

from pytest_edgehil.config.budgets import Limit, Status, Verdict
from pytest_edgehil.config.pairs import Pair
from pytest_edgehil.results.records import (
    MAX_TRACE_POINTS,
    TRACE_PROPERTY,
    USER_PROPERTY,
    MetricRecord,
    ab_context,
)
from pytest_edgehil.results.vocabulary import resolve

# What makes two measurements comparable, filled in by the fixtures as the bench comes up:
# model_sha256, device_firmware, protocol_version, instrument_idn, sample_interval_s.
context_key = pytest.StashKey[dict[str, object]]()


class EdgeHILMarginalWarning(UserWarning):
    """A measured value passed its budget but sits within the marginal band of the limit."""


class Recorder:
    """What a suite test uses to check one measured value against its pair's budget."""

    def __init__(self, item: pytest.Item, pair: Pair, backend: str) -> None:
        self.item = item
        self.pair = pair
        self.backend = backend

    def limit(self, metric: str) -> Limit | None:
        return self.pair.budget.limits.get(metric) if self.pair.budget else None

    def check(self, metric: str, value: float, *, samples: Sequence[float] | int | None = None,
              ci: tuple[float, float] | None = None, context: dict[str, object] | None = None) -> Verdict | None:
        """Record `value`; fail the test with a full message if it is outside the budget."""
        n = samples if isinstance(samples, int) or samples is None else len(samples)
        raw = None if isinstance(samples, int) or samples is None else [float(x) for x in samples]
        limit = self.limit(metric)
        verdict = limit.check(value) if limit is not None else None
        # The record carries unit, family and direction (the budget's where the vocabulary has none).
        spec = resolve(metric, limit)
        stashed_context: dict[str, object] = self.item.stash.get(context_key, {})
        record = MetricRecord(
            pair=self.pair.id, model=self.pair.model_name, device=self.pair.device, kind=self.pair.kind,
            metric=metric, value=float(value), unit=spec.unit, backend=self.backend,
            status=verdict.status.value if verdict else "info",
            bound=limit.bound_text if limit else "", margin_rel=verdict.margin_rel if verdict else None,
            samples=n, source=limit.source if limit else "",
            ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None, raw=raw,
            context={**stashed_context, **(context or {})},
            direction=spec.direction.value if spec.direction else None, family=spec.family.value,
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

    def check_median(self, metric: str, samples: Sequence[float], *,
                     context: dict[str, object] | None = None) -> Verdict | None:
        """Check the median of per-inference samples; the record keeps the samples and a 95 % CI."""
        # scipy: loaded when a test first needs it
        from pytest_edgehil.measure.sample_summary import summarize

        summary = summarize(np.asarray(samples, dtype=float))
        return self.check(metric, summary.median, samples=samples, ci=(summary.ci_low, summary.ci_high),
                          context=context)

    def check_paired(self, metric: str, candidate_rounds: Sequence[Sequence[float]],
                     baseline_rounds: Sequence[Sequence[float]], *, baseline_sha256: str, source: str) -> Verdict | None:
        """A same-session A/B record: the candidate's samples (all rounds) checked against the budget like
        `check_median`, both models' rounds kept for the A/B gate (`results.gate.compare_paired`)."""
        samples = [float(x) for r in candidate_rounds for x in r]
        return self.check_median(metric, samples, context=ab_context(
            baseline_rounds, candidate_rounds, baseline_sha256=baseline_sha256, source=source))
