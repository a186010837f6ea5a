"""The `edgehil_record` fixture's object: checks one measured value against the pair's budget, records it.

The records it makes are plain data (`results.records.MetricRecord`) carried in `item.user_properties`;
this module is the pytest side (failing the test, warning on a marginal value, the item's stash).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from pytest_edgehil.config.budgets import Limit, Status, Verdict
from pytest_edgehil.config.pairs import Pair
from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.results.records import (
    MAX_TRACE_POINTS,
    TRACE_PROPERTY,
    USER_PROPERTY,
    MetricRecord,
    ab_context,
)
from pytest_edgehil.results.vocabulary import current_name, resolve

if TYPE_CHECKING:
    from pytest_edgehil.measure.meter import EnergyMeasurement

# What makes two measurements comparable, filled in by the fixtures as the bench comes up:
# model_sha256, device_firmware, protocol_version, instrument_idn, sample_interval_s.
context_key = pytest.StashKey[dict[str, object]]()


_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


def _caller_stacklevel() -> int:
    """The `warnings.warn` stacklevel of the first frame outside pytest-edgehil: the line of the test (or
    the user's helper) that recorded the value, not this module's `check_median` → `check`.
    (Python 3.12's `skip_file_prefixes` does this; 3.10 and 3.11 are supported.)"""
    frame = sys._getframe(1)  # the caller of this function, i.e. the frame calling warnings.warn
    level = 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


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
        metric = current_name(metric)  # a test written for an old name (model_kb) records the new one
        n = samples if isinstance(samples, int) or samples is None else len(samples)
        raw = None if isinstance(samples, int) or samples is None else [float(x) for x in samples]
        if raw is not None and not all(map(np.isfinite, raw)):
            # JSON has no NaN: written as null, which the results file's reader refuses among samples, so one
            # such sample would leave the whole run's file unreadable. check_median refuses them the same way.
            bad = sum(1 for x in raw if not np.isfinite(x))
            raise MeasurementError(f"{metric} on {self.pair.id}: {bad} of {len(raw)} samples are NaN or infinite; "
                                   "drop failed runs before recording, or record the value alone (samples=N)")
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
            published=limit.published if limit else None,
            limit_min=limit.min if limit else None, limit_max=limit.max if limit else None,
            marginal_rel=limit.marginal_rel if limit else None,
        )
        self.item.user_properties.append((USER_PROPERTY, asdict(record)))
        if verdict is None:
            return None
        message = verdict.describe(device=self.pair.device, model=self.pair.model_name, backend=self.backend,
                                   samples=n)
        if verdict.status is Status.FAIL:
            pytest.fail(f"over budget: {message}", pytrace=False)
        if verdict.status is Status.MARGINAL:
            warnings.warn(EdgeHILMarginalWarning(f"marginal: {message}"), stacklevel=_caller_stacklevel())
        return verdict

    def attach_trace(self, time_s: np.ndarray, power_w: np.ndarray, windows_s: np.ndarray, *,
                     stages_s: Mapping[str, np.ndarray] | None = None, caption: str = "") -> None:
        """Keep the power trace for the report: peak-detect decimated to `MAX_TRACE_POINTS` (every dip and
        spike at its depth), with the inference windows, the stage windows by name and a caption."""
        from pytest_edgehil.results.decimate import peak_decimate

        time_s, power_w, windows_s = np.asarray(time_s), np.asarray(power_w), np.asarray(windows_s).reshape(-1, 2)
        # Buckets split at the inference windows' edges: each dip keeps its own minimum (results.decimate).
        t, p = peak_decimate(time_s, power_w, MAX_TRACE_POINTS, breaks_s=windows_s)
        # The zoomed panel: the middle inference with a width of margin on each side, at full resolution
        # (decimated only if the analyzer sampled it more finely than a plot can show).
        zoom_t, zoom_p = np.zeros(0), np.zeros(0)
        if len(windows_s):
            t0, t1 = windows_s[len(windows_s) // 2]
            pad = max(t1 - t0, 4 * float(np.median(np.diff(time_s))) if len(time_s) > 1 else 0.0)
            inside = (time_s >= t0 - pad) & (time_s <= t1 + pad)
            zoom_t, zoom_p = peak_decimate(time_s[inside], power_w[inside], MAX_TRACE_POINTS // 2)
        self.item.user_properties.append((TRACE_PROPERTY, {
            "pair": self.pair.id, "time_s": t.tolist(), "power_w": p.tolist(),
            "windows_s": windows_s.tolist(), "backend": self.backend,
            "stages_s": {name: np.asarray(w).tolist() for name, w in (stages_s or {}).items()},
            "zoom_time_s": zoom_t.tolist(), "zoom_power_w": zoom_p.tolist(), "caption": caption,
        }))

    def attach_energy_trace(self, energy: EnergyMeasurement) -> None:
        """The last acquisition of an energy measurement, its stages shaded, captioned with the analyzer,
        the sample interval and the uncertainty of the figure it yields (inference energy, else end to end)."""
        from pytest_edgehil.measure.device_windows import inference_windows_s, stage_windows_s

        trace = energy.last_trace
        if trace is None or not energy.timings:
            return
        timings = energy.timings[-1]
        name, label = ("inference_j", "inference") if energy.inference_refused is None else ("end_to_end_j", "end-to-end")
        s = energy.summary(name)
        caption = (f"analyzer {energy.idn or 'unknown'}; sample interval {energy.sample_interval_s * 1e6:.4g} µs; "
                   f"{label} energy median {s.median * 1e3:.4g} mJ, 95 % CI {s.ci_low * 1e3:.4g}–"
                   f"{s.ci_high * 1e3:.4g} mJ (n={s.n})")
        self.attach_trace(trace.time_s, trace.power_w, inference_windows_s(timings),
                          stages_s=stage_windows_s(timings), caption=caption)

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
