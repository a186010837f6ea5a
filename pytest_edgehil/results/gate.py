"""The merge gate: is a run's energy or latency worse than the baseline's, beyond noise and beyond a threshold?

Pure comparison of two sets of result records (no pytest, no I/O; statistics in `gate_stats.py`, the
verdicts and their table in `comparison.py`). Per pair × metric it gives a
`Comparison`: the ratio new/base with a 95 % confidence interval, a one-sided p-value, and a status —
IMPROVED, SAME, REGRESSED, UNKNOWN, MISSING (only in the baseline) or NEW (only in this run) — plus flags
when the two sides are not like for like (model SHA-256, firmware, protocol, sample interval, instrument).

The decision rule, and why (see the "Merge gate" facts in the project's reference notes):

* A pair REGRESSES only when both hold on the per-inference samples:
  (1) one-sided Mann–Whitney U p < 0.05 in the worse direction (significant), and
  (2) the Hodges–Lehmann estimate of the ratio (median of all pairwise log-ratios new/base) is past
      1 + threshold/2 in the worse direction (relevant).
  A `--edgehil-fail-on energy:5%` threshold is read as "the regression we must catch": a true +5 % has
  its estimate centred on 1.05, so cutting at the threshold itself would catch only half of them, while
  cutting at half the threshold catches them nearly always and lets sub-threshold changes (+2 %) through.
  Mann–Whitney alone would block real +2 % changes most of the time at these sample sizes; "CI lower
  bound > 1.05" catches only half of true +5 % regressions; on lognormal samples (CV 2 % with 10 per
  side, CV 3 % with 20) this rule gives ≤ 0.5 % false alarms and ≥ 99 % detection of +5 %.
  HL rather than a bootstrap of the ratio of medians: it has a distribution-free CI from the same
  U statistic (Moses' interval), is deterministic, and is far steadier than a median on small samples.
* Past the cut but not significant is UNKNOWN ("~", as asv shows it): it asks for a rerun, it does not
  block (Pinpoint's DIFFERENT / SAME / UNKNOWN). Significant but below the cut is SAME.
* Benches drift. Pooling per-inference samples assumes they are exchangeable; if a run's own
  consecutive blocks (≈ acquisition windows) differ significantly (Kruskal–Wallis p < 0.01) and by more
  than the cut, that assumption is broken and pooled p-values are overconfident, so the test falls back
  to the block medians (as MLPerf Tiny compares window medians), and a change no larger than the run's
  own drift is UNKNOWN — a rerun with more windows or a settled bench — never a false block. Drift
  *between* sessions is invisible inside one run: estimate it with an A/A comparison (`edgehil compare`
  of two unchanged runs) and set thresholds above it (docs/gate.md).
* Which way is worse comes from the record (the metric vocabulary's verdict when it was recorded, the
  budget's `min`/`max` included; see `vocabulary.py`), never from the metric's name. A metric whose
  direction is unknown is UNKNOWN with a note saying how to declare it, never IMPROVED or REGRESSED.
* Records without per-inference samples (footprint, accuracy over a fixed set) are deterministic:
  their values are compared directly and the threshold applies literally. A noisy metric recorded as
  a single value (fps) cannot be tested and is UNKNOWN when past the cut.
"""


from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

from pytest_edgehil.results.comparison import DEFAULT_FAIL_ON, Comparison, FailOn, GateReport, GateStatus
from pytest_edgehil.results.gate_stats import (
    RatioTest,
    block_medians,
    drift_of,
    hodges_lehmann_ratio,
    hodges_lehmann_shift,
    ratio_test,
    ratio_tests,
)
from pytest_edgehil.results.store import ResultRecord, RunInfo
from pytest_edgehil.results.vocabulary import Direction, Family, how_to_declare

__all__ = ["DEFAULT_FAIL_ON", "Comparison", "FailOn", "Family", "GateReport", "GateStatus", "RatioTest",
           "block_medians", "compare_records", "compare_results", "context_flags", "drift_of",
           "hodges_lehmann_ratio", "hodges_lehmann_shift", "ratio_test", "run_flags"]

ALPHA = 0.05  # one-sided significance level
ESTIMATE_CUT_FRACTION = 0.5  # the HL estimate must be past 1 + this × threshold
REPORT_THRESHOLD = 0.05  # families that do not gate are still classified at this threshold

# Metrics of these families, when recorded without samples, are deterministic (a file size, a score
# over a fixed evaluation set): compared as values.
_EXACT_FAMILIES = (Family.FOOTPRINT, Family.ACCURACY)
_CONTEXT_CHECKS = (("model_sha256", "model SHA-256"), ("device_firmware", "firmware"),
                   ("protocol_version", "protocol version"), ("sample_interval_s", "sample interval"),
                   ("instrument_idn", "instrument"))


def context_flags(base: ResultRecord, new: ResultRecord) -> list[str]:
    """What differs between the two sides' measurement context; empty when like for like."""
    flags = []
    a, b = base.context or {}, new.context or {}
    for key, label in _CONTEXT_CHECKS:
        if a.get(key) in (None, "") or b.get(key) in (None, ""):
            continue
        x, y = a[key], b[key]
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            differs = not math.isclose(float(x), float(y), rel_tol=1e-6)
        else:
            differs = str(x) != str(y)
        if differs:
            short = (lambda v: str(v)[:12]) if key == "model_sha256" else str
            flags.append(f"{label} differs: {short(x)} → {short(y)}")
    return flags


def _decide(worse: float, p_worse: float | None, p_better: float | None, cut: float,
            tested: bool) -> tuple[GateStatus, str]:
    """`worse` is the relative change of the value in the worse direction (+0.08: 8 % worse, −0.08: 8 %
    better, for a top1 falling 0.72 → 0.60 it is +0.167); `cut` the fraction past which it counts."""
    if not math.isfinite(worse):
        return GateStatus.UNKNOWN, "no ratio: a value is zero or of the other sign"
    if not tested:  # deterministic values: the threshold applies literally
        if worse > cut:
            return GateStatus.REGRESSED, ""
        return (GateStatus.IMPROVED, "") if -worse > cut else (GateStatus.SAME, "")
    if p_worse is None or p_better is None:
        if abs(worse) > cut:
            return GateStatus.UNKNOWN, "~ past the cut, but recorded without samples to test"
        return GateStatus.SAME, ""
    if worse > cut:
        if p_worse < ALPHA:
            return GateStatus.REGRESSED, ""
        return GateStatus.UNKNOWN, f"~ past the cut but not significant (p = {p_worse:.2g}): rerun"
    if -worse > cut:
        if p_better < ALPHA:
            return GateStatus.IMPROVED, "consider refreshing the baseline"
        return GateStatus.UNKNOWN, f"~ better past the cut but not significant (p = {p_better:.2g})"
    if min(p_worse, p_better) < ALPHA:
        return GateStatus.SAME, "a significant change, smaller than the cut"
    return GateStatus.SAME, ""


def worse_fraction(ratio: float, higher_is_better: bool) -> float:
    """Relative change new/base − 1 signed so that > 0 is worse (a fall, for a higher-is-better metric);
    NaN when there is no meaningful ratio. A threshold of 10 % then means what it says in both directions:
    latency up by more than 10 %, or a score down by more than 10 %."""
    if not (math.isfinite(ratio) and ratio > 0):
        return math.nan
    return 1.0 - ratio if higher_is_better else ratio - 1.0


def _drift_limit(record: ResultRecord, fail_on: FailOn) -> float:
    """The within-run drift past which `ratio_test` compares window medians: the estimate cut."""
    return ESTIMATE_CUT_FRACTION * fail_on.thresholds.get(record.spec.family, REPORT_THRESHOLD)


def compare_records(base: ResultRecord, new: ResultRecord, fail_on: FailOn, *,
                    test: RatioTest | None = None) -> Comparison:
    """One pair × metric: which way is worse comes from the records themselves (their direction, or
    the vocabulary's for files written before records carried one). `test`: the ratio test of their raw
    samples if already computed (`compare_results` batches them), else computed here."""
    base_spec, spec = base.spec, new.spec
    family = spec.family
    direction = spec.direction or base_spec.direction
    gated = family in fail_on.thresholds
    threshold = fail_on.thresholds.get(family, REPORT_THRESHOLD)
    comparison = Comparison(pair=new.pair, metric=new.metric, unit=new.unit, family=family, direction=direction,
                            status=GateStatus.UNKNOWN, blocking=False, gated=gated, threshold=threshold,
                            base_value=base.value, new_value=new.value, flags=tuple(context_flags(base, new)))
    incomparable = []
    if base.unit != new.unit:
        incomparable.append(f"units differ: {base.unit!r} → {new.unit!r}")
    if base.backend and new.backend and base.backend != new.backend:
        incomparable.append(f"backends differ: {base.backend} → {new.backend}")
    if base_spec.direction and spec.direction and base_spec.direction is not spec.direction:
        incomparable.append(f"directions differ: {base_spec.direction.value} is better in the baseline, "
                            f"{spec.direction.value} in this run")
    if incomparable:
        return replace(comparison, blocking=gated and fail_on.unknown, flags=tuple(incomparable) + comparison.flags,
                       note="not comparable: rerun both sides on the same bench with the same budgets")
    hib = direction is Direction.HIGHER  # an unknown direction is oriented as lower here, then overruled
    raw_b, raw_n = base.raw or [], new.raw or []
    if len(raw_b) >= 2 and len(raw_n) >= 2:
        cut = ESTIMATE_CUT_FRACTION * threshold
        if test is None:
            test = ratio_test(raw_b, raw_n, drift_limit=cut)
        p_worse, p_better = (test.p_less, test.p_greater) if hib else (test.p_greater, test.p_less)
        status, note = _decide(worse_fraction(test.ratio, hib), p_worse, p_better, cut, tested=True)
        if test.method == "window medians":
            drift_note = f"a run drifted {test.drift:.1%} between its own windows, so window medians were compared"
            note = "; ".join(filter(None, [drift_note, note]))
            # A change no larger than the bench's own wander within one run cannot be told from drift.
            within_drift = abs(math.log(test.ratio)) <= math.log1p(test.drift)
            if status in (GateStatus.REGRESSED, GateStatus.IMPROVED) and within_drift:
                status = GateStatus.UNKNOWN
                note += "; the change is within that drift: rerun (more windows, a settled bench)"
        comparison = replace(comparison, ratio=test.ratio, ci_low=test.ci_low, ci_high=test.ci_high,
                             p_value=p_worse if direction else None, method=test.method, n_base=test.n_base,
                             n_new=test.n_new)
    else:
        exact = family in _EXACT_FAMILIES
        ratio = new.value / base.value if base.value else (1.0 if new.value == base.value else math.nan)
        cut = threshold if exact else ESTIMATE_CUT_FRACTION * threshold
        status, note = _decide(worse_fraction(ratio, hib), None, None, cut, tested=not exact)
        comparison = replace(comparison, ratio=ratio, method="values", n_base=len(raw_b), n_new=len(raw_n))
    if direction is None and status is not GateStatus.SAME:
        # Better or worse is a matter of direction, and nobody said which: no verdict but a way to get one.
        status = GateStatus.UNKNOWN
        note = f"direction unknown, so not judged better or worse: {how_to_declare(new.metric)}"
    blocking = gated and (status is GateStatus.REGRESSED or (status is GateStatus.UNKNOWN and fail_on.unknown))
    return replace(comparison, status=status, note=note, blocking=blocking)


def _index(records: Iterable[ResultRecord], side: str) -> tuple[dict[tuple[str, str], ResultRecord], list[str]]:
    by_key: dict[tuple[str, str], ResultRecord] = {}
    notes: list[str] = []
    for record in records:
        if record.key in by_key:
            # The footprint suite records model_kb from two tests: equal values, compare the first.
            first = by_key[record.key]
            if first.value != record.value or first.raw != record.raw:
                notes.append(f"{side}: {record.pair} {record.metric} recorded twice with different values "
                             f"({first.test or '?'} and {record.test or '?'}); compared the first")
            continue
        by_key[record.key] = record
    return by_key, notes


def run_flags(base_run: RunInfo | None, new_run: RunInfo | None) -> list[str]:
    if base_run is None or new_run is None:
        return []
    flags = []
    if base_run.backend != new_run.backend:
        flags.append(f"the baseline ran on {base_run.backend}, this run on {new_run.backend}: records of "
                     "different backends are not compared")
    if not base_run.complete:
        flags.append(f"the baseline run (started {base_run.started_at}) did not finish: what it lacks shows as NEW")
    if base_run.edgehil_version != new_run.edgehil_version:
        flags.append(f"pytest-edgehil {base_run.edgehil_version} wrote the baseline, {new_run.edgehil_version} "
                     "this run")
    if base_run.git_commit and base_run.git_commit == new_run.git_commit and not new_run.git_dirty:
        flags.append(f"both runs are of commit {base_run.git_commit[:12]}: this compares the bench with itself "
                     "(an A/A run; its ratios show the bench's between-session spread)")
    return flags


def compare_results(base: Iterable[ResultRecord], new: Iterable[ResultRecord], fail_on: FailOn, *,
                    base_run: RunInfo | None = None, new_run: RunInfo | None = None) -> GateReport:
    """Compare every pair × metric of `new` with `base`; nothing on either side goes unreported."""
    base_by_key, notes_b = _index(base, "baseline")
    new_by_key, notes_n = _index(new, "this run")
    comparisons = []
    keys = sorted(base_by_key.keys() | new_by_key.keys())
    # The statistics of every pair with samples on both sides, in one batch (what compare_records would
    # compute one by one), for pairs whose records are comparable at all.
    tested = [key for key in keys if key in base_by_key and key in new_by_key
              and len(base_by_key[key].raw or []) >= 2 and len(new_by_key[key].raw or []) >= 2]
    tests = dict(zip(tested, ratio_tests(
        [(base_by_key[key].raw or [], new_by_key[key].raw or []) for key in tested],
        [_drift_limit(new_by_key[key], fail_on) for key in tested])))
    for key in keys:
        b, n = base_by_key.get(key), new_by_key.get(key)
        if b is not None and n is not None:
            comparisons.append(compare_records(b, n, fail_on, test=tests.get(key)))
            continue
        record = b if b is not None else n
        assert record is not None
        spec = record.spec
        family = spec.family
        gated = family in fail_on.thresholds
        status = GateStatus.MISSING if n is None else GateStatus.NEW
        comparisons.append(Comparison(
            pair=record.pair, metric=record.metric, unit=record.unit, family=family, direction=spec.direction,
            status=status,
            blocking=status is GateStatus.MISSING and gated and fail_on.missing, gated=gated,
            threshold=fail_on.thresholds.get(family, REPORT_THRESHOLD),
            base_value=b.value if b else None, new_value=n.value if n else None,
            n_base=len(b.raw or []) if b else 0, n_new=len(n.raw or []) if n else 0))
    return GateReport(comparisons, fail_on, tuple(run_flags(base_run, new_run)), tuple(notes_b + notes_n))
