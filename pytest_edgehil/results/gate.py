"""The merge gate: is a run's energy or latency worse than the baseline's, beyond noise, drift and a threshold?

Pure comparison of result records (no pytest, no I/O; statistics in `gate_stats.py` and
`session_stats.py`, the verdict from a change and its p-values in `gate_decision.py`, the verdicts and their
table in `comparison.py`). Per pair × metric it gives a
`Comparison`: the ratio new/base with a 95 % confidence interval, a one-sided p-value, and a status —
IMPROVED, SAME, REGRESSED, UNKNOWN, MISSING (only in the baseline) or NEW (only in this run) — plus flags
when the two sides are not like for like (model SHA-256, firmware, protocol, sample interval, instrument).

The decision rule, and why (docs/gate.md has the measured figures):

* A threshold means what users read in it: `energy:5%` never fails a change whose estimate is under
  5 %. A pair REGRESSES only when the estimate is past the threshold in the worse direction *and* the
  change is significant (one-sided p < α). A true change of exactly the threshold is then caught about
  half the time; the docs give the power at 1×, 1.5× and 2× the threshold. To catch +5 % reliably, set a
  threshold of about half of it, and use a comparison whose noise allows it (A/B below).
* Same-session A/B (`compare_paired`, `--edgehil-ab`): candidate and baseline model ran interleaved on
  one board in one session; each round's log ratio is one paired difference (`paired_rounds_test`), so
  the session's drift cancels. α = ALPHA. This is the comparison a model repo's merge gate should use.
* Across sessions (`compare_records`, `--edgehil-baseline`): the unit is the session, not the inference
  (`session_test`): the new session's median against the baseline sessions' medians, whose spread is
  the between-session drift. With a single baseline session the drift is assumed (σ = 1.5 %, settable)
  and a change the drift could explain is UNKNOWN ("cannot rule out N % drift"), never a false block.
  α = ALPHA_SESSIONS, stricter: a nightly gate that blocks one night in twenty gets switched off.
* Past the threshold but not significant is UNKNOWN ("~", as asv shows it): it asks for a rerun or more
  sessions; it does not block unless `unknown` is in the fail-on list.
* Which way is worse comes from the record (the metric vocabulary's verdict when it was recorded, the
  budget's `min`/`max` included; see `vocabulary.py`), never from the metric's name. A metric whose
  direction is unknown is UNKNOWN with a note saying how to declare it, never IMPROVED or REGRESSED.
* Records without per-inference samples (footprint, accuracy over a fixed set) are deterministic:
  their values are compared directly and the threshold applies literally. A noisy metric recorded as
  a single value (fps) cannot be tested and is UNKNOWN when past the threshold.
"""


from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from pytest_edgehil.results.comparison import DEFAULT_FAIL_ON, Comparison, FailOn, GateReport, GateStatus
from pytest_edgehil.results.gate_decision import ALPHA, decide, worse_fraction
from pytest_edgehil.results.gate_flags import context_flags, earlier_session_flags, run_flags
from pytest_edgehil.results.gate_origins import ab_notes, attach_untested, index_sides, note_renames, split_ab
from pytest_edgehil.results.gate_stats import (
    RatioTest,
    block_medians,
    drift_of,
    drifts_past,
    hodges_lehmann_ratio,
    hodges_lehmann_shift,
    ratio_test,
)
from pytest_edgehil.results.gate_units import UNITS_DIFFER, align_units
from pytest_edgehil.results.records import paired_rounds
from pytest_edgehil.results.session_stats import (
    ASSUMED_DRIFT_REL,
    MIN_SESSIONS,
    SessionTest,
    paired_rounds_test,
    session_tests,
)
from pytest_edgehil.results.store import ResultRecord, RunInfo
from pytest_edgehil.results.vocabulary import UNGATED_METRICS, Direction, Family, how_to_declare

__all__ = [
    "ALPHA",
    "ALPHA_SESSIONS",
    "DEFAULT_FAIL_ON",
    "Comparison",
    "FailOn",
    "Family",
    "GateReport",
    "GateStatus",
    "RatioTest",
    "block_medians",
    "compare_ab",
    "compare_paired",
    "compare_records",
    "compare_results",
    "compare_sessions",
    "context_flags",
    "drift_of",
    "hodges_lehmann_ratio",
    "hodges_lehmann_shift",
    "ratio_test",
    "run_flags",
    "worse_fraction",
]

ALPHA_SESSIONS = 0.005  # across sessions: ≤ 1 % false alarms at the default threshold (docs/gate.md)
REPORT_THRESHOLD = 0.05  # families that do not gate are still classified at this threshold

# Metrics of these families, when recorded without samples, are deterministic (a file size, a score
# over a fixed evaluation set): compared as values.
_EXACT_FAMILIES = (Family.FOOTPRINT, Family.ACCURACY)


def _start(base: ResultRecord, new: ResultRecord, fail_on: FailOn) -> tuple[Comparison, list[str]]:
    """The comparison's fixed part, and why the two records cannot be compared (empty when they can)."""
    base_spec, spec = base.spec, new.spec
    family = spec.family
    comparison = Comparison(pair=new.pair, metric=new.metric, unit=new.unit, family=family,
                            direction=spec.direction or base_spec.direction, status=GateStatus.UNKNOWN,
                            blocking=False, gated=family in fail_on.thresholds and new.metric not in UNGATED_METRICS,
                            threshold=fail_on.thresholds.get(family, REPORT_THRESHOLD),
                            base_value=base.value, new_value=new.value, flags=tuple(context_flags(base, new)),
                            base_unit=base.unit if base.unit != new.unit else None)
    incomparable = []  # (units: gate_units.align_units, before this)
    if base.backend and new.backend and base.backend != new.backend:
        incomparable.append(f"backends differ: {base.backend} → {new.backend}")
    if base_spec.direction and spec.direction and base_spec.direction is not spec.direction:
        incomparable.append(f"directions differ: {base_spec.direction.value} is better in the baseline, "
                            f"{spec.direction.value} in this run")
    return comparison, incomparable


def _evolve(comparison: Comparison, **changes: Any) -> Comparison:
    """`dataclasses.replace` without running __init__ again (Comparison has no __post_init__ to skip):
    ~1 µs instead of ~8, and a nightly compare of 5,000 records makes three per record."""
    evolved = object.__new__(Comparison)
    evolved.__dict__.update(comparison.__dict__, **changes)
    return evolved


def _finish(comparison: Comparison, status: GateStatus, note: str, fail_on: FailOn, metric: str) -> Comparison:
    if comparison.direction is None and status is not GateStatus.SAME:
        # Better or worse is a matter of direction, and nobody said which: no verdict but a way to get one.
        status = GateStatus.UNKNOWN
        note = f"direction unknown, so not judged better or worse: {how_to_declare(metric)}"
    blocking = comparison.gated and (status is GateStatus.REGRESSED
                                     or (status is GateStatus.UNKNOWN and fail_on.unknown))
    return _evolve(comparison, status=status, note=note, blocking=blocking)


def compare_records(base: ResultRecord | Sequence[ResultRecord], new: ResultRecord, fail_on: FailOn, *,
                    assumed_drift_rel: float = ASSUMED_DRIFT_REL) -> Comparison:
    """One pair × metric across sessions: `base` is the baseline's record of it, one per baseline session
    (oldest first; a single record is one session). Which way is worse comes from the records themselves
    (their direction, or the vocabulary's for files written before records carried one)."""
    bases = [base] if isinstance(base, ResultRecord) else list(base)
    return _compare_many([(bases, new)], fail_on, assumed_drift_rel)[0]


def _compare_many(items: Sequence[tuple[Sequence[ResultRecord], ResultRecord]], fail_on: FailOn,
                  assumed_drift_rel: float, sources: Sequence[Sequence[str]] | None = None) -> list[Comparison]:
    """`compare_records` of each (baseline records, new record): the same verdicts, the statistics of all
    items computed together (`session_tests`, `drifts_past`), not one numpy/scipy round per record.
    `sources` names each baseline record's file, for messages. A baseline record in other units of the same
    dimension is compared in the run's (`gate_units.align_units`)."""
    started = []
    aligned = []
    for k, (bases, new) in enumerate(items):
        bases, unit_flags, incomparable = align_units(bases, new, sources[k] if sources is not None else None)
        aligned.append((bases, new))
        comparison, problems = _start(bases[-1], new, fail_on)
        incomparable += problems
        for other in bases[:-1]:
            incomparable += [text for text in _start(other, new, fail_on)[1] if text not in incomparable]
        if len(bases) > 1:
            comparison = _evolve(comparison, flags=comparison.flags + earlier_session_flags(bases, new))
        if unit_flags:
            comparison = _evolve(comparison, flags=unit_flags + comparison.flags)
        started.append((comparison, incomparable))
    items = aligned
    # Records with samples on every side are tested across sessions; the others compare values.
    tested = [i for i, ((bases, new), (_, incomparable)) in enumerate(zip(items, started)) if not incomparable
              and all(len(b.raw or []) >= 2 for b in bases) and len(items[i][1].raw or []) >= 2]
    tests = dict(zip(tested, session_tests([([b.raw or [] for b in items[i][0]], items[i][1].raw or [])
                                            for i in tested], assumed_drift_rel=assumed_drift_rel)))
    arrays, owners, limits = [], [], []
    for i in tested:
        for record in [items[i][1], *items[i][0]]:
            arrays.append(np.asarray(record.raw, dtype=float))
            owners.append(i)
            limits.append(started[i][0].threshold)
    within = dict.fromkeys(tested, 0.0)
    for i, drift in zip(owners, drifts_past(arrays, limits)):
        within[i] = max(within[i], drift)
    return [_conclude(comparison, incomparable, bases, new, fail_on, tests.get(i), within.get(i, 0.0))
            for i, ((bases, new), (comparison, incomparable)) in enumerate(zip(items, started))]


def _change(allowance: float) -> str:
    """A relative change as it reads: "4.2 %", or beyond +100 % a factor ("a factor of 24.8"): with two
    baseline sessions Student's t has one degree of freedom (t ≈ 32 at α = 0.01) and the percentage ran to
    "2383.5 %" or 10^9 %, which says nothing a reader can use."""
    return f"{allowance:.1%}" if allowance < 1.0 else f"a factor of {1.0 + allowance:.3g}"


def _conclude(comparison: Comparison, incomparable: list[str], bases: Sequence[ResultRecord], new: ResultRecord,
              fail_on: FailOn, test: SessionTest | None, within: float) -> Comparison:
    """The verdict of one item of `_compare_many`, given its session test (None: compared as values) and
    the largest within-run drift of its sides (exact when past the threshold, else at most it)."""
    if incomparable:
        return _evolve(comparison, blocking=comparison.gated and fail_on.unknown,
                       flags=tuple(incomparable) + comparison.flags,
                       note="not comparable: " + ("record both sides in one unit" if all(
                           text.startswith(UNITS_DIFFER) for text in incomparable)
                           else "rerun both sides on the same bench with the same budgets"))
    hib = comparison.direction is Direction.HIGHER  # unknown is oriented as lower here, then overruled
    threshold = comparison.threshold
    if test is not None:
        p_worse, p_better = (test.p_less, test.p_greater) if hib else (test.p_greater, test.p_less)
        status, note = decide(worse_fraction(test.ratio, hib), p_worse, p_better, threshold, tested=True,
                               alpha=ALPHA_SESSIONS)
        if status is GateStatus.UNKNOWN and test.assumed:
            which = ("a single-session baseline" if test.sessions == 1 else
                     f"the baseline's {test.sessions} sessions have identical medians (no drift measured) and")
            note += (f"; {which} cannot rule out {_change(test.allowance(ALPHA_SESSIONS))} drift "
                     f"between sessions (σ {test.drift_rel:.1%} assumed): compare with ≥ {MIN_SESSIONS} "
                     "baseline sessions (a directory of results files), or run A/B in one session (--edgehil-ab)")
        elif status is GateStatus.UNKNOWN:
            note += (f"; the baseline's {test.sessions} sessions spread {test.drift_rel:.1%} (σ): this change "
                     f"is within what that drift can explain ({_change(test.allowance(ALPHA_SESSIONS))})")
        if within > threshold:
            note = "; ".join(filter(None, [f"a run drifted {within:.1%} between its own windows", note]))
            # A change no larger than the bench's own wander within one run cannot be told from drift.
            if status in (GateStatus.REGRESSED, GateStatus.IMPROVED) and abs(math.log(test.ratio)) <= math.log1p(within):
                status = GateStatus.UNKNOWN
                note += "; the change is within that drift: rerun (more windows, a settled bench)"
        if test.sessions < MIN_SESSIONS and not test.assumed:
            few = (f"drift estimated from {test.sessions} sessions only: add baseline sessions (≥ {MIN_SESSIONS}) to "
                   "call smaller changes")
            note = "; ".join(filter(None, [note, few]))
        method = (f"session medians ({test.sessions} baseline sessions, drift σ {test.drift_rel:.1%}"
                  f"{' assumed' if test.assumed else ''})")
        # Show the figures the ratio divides, not the records' values: over several sessions the baseline is
        # their centre (else "259.9 → 254.1 mW, ratio 0.999" reads as a 2 % change that is not one), and a
        # record whose value is another statistic of its samples (a mean) is shown by its samples' median.
        several = test.sessions >= 2 and math.isfinite(test.base_level)
        if several:
            method += f"; baseline: the geometric mean of the {test.sessions} session medians"
        base_median = test.base_level if several else float(np.median(bases[-1].raw or [math.nan]))
        comparison = _evolve(comparison, ratio=test.ratio, ci_low=test.ci_low, ci_high=test.ci_high,
                             p_value=p_worse if comparison.direction else None, method=method,
                             n_base=test.sessions, n_new=1,
                             base_value=base_median if math.isfinite(base_median) else comparison.base_value,
                             new_value=float(np.median(new.raw or [math.nan])))
    else:
        latest = bases[-1]
        exact = comparison.family in _EXACT_FAMILIES
        # Deterministic values do not drift: the latest baseline session is the reference.
        # From zero, any rise is unbounded (+inf): a verdict for exact values, not "no ratio" (NaN: none).
        ratio = (new.value / latest.value if latest.value
                 else 1.0 if new.value == 0 else math.inf if new.value > 0 else math.nan)
        status, note = decide(worse_fraction(ratio, hib), None, None, threshold, tested=not exact)
        comparison = _evolve(comparison, ratio=ratio, method="values", n_base=len(latest.raw or []),
                             n_new=len(new.raw or []))
    return _finish(comparison, status, note, fail_on, new.metric)


def compare_paired(record: ResultRecord, fail_on: FailOn) -> Comparison | None:
    """A same-session A/B record (`paired_rounds(record)` not None): the candidate's rounds against the
    baseline model's rounds, interleaved on the same board; None for a record that is not A/B."""
    rounds = paired_rounds(record)
    if rounds is None:
        return None
    base_rounds, new_rounds, base_sha = rounds
    base = replace(record, value=float(np.median(np.concatenate(base_rounds))) if base_rounds else math.nan,
                   context={**(record.context or {}), "model_sha256": base_sha})
    comparison, _ = _start(base, record, fail_on)
    hib = comparison.direction is Direction.HIGHER
    test = paired_rounds_test(base_rounds, new_rounds)
    p_worse: float | None
    p_better: float | None
    p_worse, p_better = (test.p_less, test.p_greater) if hib else (test.p_greater, test.p_less)
    ci: tuple[float | None, float | None] = (test.ci_low, test.ci_high)
    # Rounds whose differences agree exactly (every sample one value of a coarse reading) measure no spread:
    # a paired t of 0 spread is no test, and the reading's step can make +0.2 % read as +10 %.
    no_spread = test.n_base >= 2 and test.ci_low == test.ci_high
    if test.n_base < 2 or no_spread:
        # One round is one paired difference (a paired t on it has 0 df): its samples show how steady each window
        # was, not how far the board moved between the two, so a bench settling 3 % would pass for a regression.
        p_worse = p_better = None
        ci = (None, None)
    status, note = decide(worse_fraction(test.ratio, hib), p_worse, p_better, comparison.threshold, tested=True)
    if test.n_base < 2 and status is GateStatus.UNKNOWN:
        note = ("~ past the threshold, but one A/B round cannot tell a change from the board's drift between its "
                "two windows: run 2 rounds or more (ini edgehil_energy_windows)")
    elif no_spread and status is GateStatus.UNKNOWN:
        note = ("~ past the threshold, but the rounds agree exactly (no spread measured: a coarse reading?), so "
                "no test can tell the change from the reading's step: record finer samples")
    comparison = replace(comparison, ratio=test.ratio, ci_low=ci[0], ci_high=ci[1],
                         p_value=p_worse if comparison.direction else None,
                         method=f"A/B paired rounds ({test.n_base} rounds, one session)", n_base=test.n_base,
                         n_new=test.n_new)
    return _finish(comparison, status, note, fail_on, record.metric)


def compare_sessions(base_sessions: Sequence[Iterable[ResultRecord]], new: Iterable[ResultRecord], fail_on: FailOn,
                     *, base_run: RunInfo | None = None, new_run: RunInfo | None = None,
                     assumed_drift_rel: float = ASSUMED_DRIFT_REL,
                     base_sources: Sequence[str] | None = None) -> GateReport:
    """Compare every pair × metric of `new` with the baseline sessions (oldest first, one list of records per
    session, `base_sources` naming their files); nothing on either side goes unreported. A/B records
    (`paired_rounds`) are not cross-session measurements: they are left to `compare_ab`, and a note says so.
    A pair × metric two tests recorded with different values is compared test by test (`gate_origins`)."""
    plain, ab = zip(*(split_ab(records) for records in [*base_sessions, new]))
    names = ["baseline"] * (len(plain) - 1) + ["this run"]
    ab_keys, ab_texts = ab_notes(ab, names)
    indexed, notes = index_sides(plain, names)
    *sessions, new_by_key = indexed
    notes += ab_texts
    base_sources = base_sources or [""] * len(sessions)
    attached, untested = attach_untested(sessions, new_by_key, base_sources)
    keys = set(new_by_key).union(*(by_key.keys() for by_key in sessions))
    both: list[tuple[list[ResultRecord], ResultRecord]] = []
    sources: list[list[str]] = []
    slots: list[Comparison | None] = []
    origins: list[str] = []
    for key in sorted(keys):
        bs = [by_key[key] for by_key in sessions if key in by_key]
        n = new_by_key.get(key)
        if key[2] and key[:2] in untested and not bs:
            continue  # named in the UNKNOWN verdict of the baseline's record without a test id
        # Named where the pair × metric is keyed by test, or where an A/B record of it was left out: which
        # of this run's records the verdict is about.
        origins.append(key[2] or ((n or bs[-1]).test if key[:2] in ab_keys else ""))
        if bs and n is not None:
            both.append((bs, n))
            sources.append([name for name, by_key in zip(base_sources, sessions) if key in by_key])
            slots.append(None)  # filled below, all such pairs compared in one batch
            continue
        one = _one_sided(bs[-1] if bs else None, n, fail_on)
        if key[:2] in untested and not key[2]:  # MISSING said nothing of why: which test it was is unknown
            one = _evolve(one, status=GateStatus.UNKNOWN, note=untested[key[:2]], blocking=one.gated and fail_on.unknown)
        slots.append(one)
    compared = iter(_compare_many(both, fail_on, assumed_drift_rel, sources))
    comparisons = [c if c is not None else next(compared) for c in slots]
    comparisons = [_evolve(c, origin=origin, flags=(*attached.get((c.pair, c.metric, origin), ()), *c.flags))
                   if origin else c for c, origin in zip(comparisons, origins)]
    return GateReport(note_renames(comparisons), fail_on, tuple(run_flags(base_run, new_run)), tuple(notes))


def compare_results(base: Iterable[ResultRecord], new: Iterable[ResultRecord], fail_on: FailOn, *,
                    base_run: RunInfo | None = None, new_run: RunInfo | None = None,
                    assumed_drift_rel: float = ASSUMED_DRIFT_REL, base_source: str = "") -> GateReport:
    """`compare_sessions` with a single-session baseline (`base_source`: its file, for messages)."""
    return compare_sessions([list(base)], new, fail_on, base_run=base_run, new_run=new_run,
                            assumed_drift_rel=assumed_drift_rel, base_sources=[base_source])


def compare_ab(records: Iterable[ResultRecord], fail_on: FailOn) -> GateReport:
    """The same-session A/B gate: one verdict per A/B record (candidate vs baseline model, paired rounds)."""
    (by_key,), notes = index_sides([[r for r in records if paired_rounds(r) is not None]], ["this run"])
    comparisons = [_evolve(c, origin=key[2]) for key, r in sorted(by_key.items())
                   if (c := compare_paired(r, fail_on)) is not None]
    return GateReport(comparisons, fail_on, (), tuple(notes))


def _one_sided(b: ResultRecord | None, n: ResultRecord | None, fail_on: FailOn) -> Comparison:
    record = b if b is not None else n
    assert record is not None
    spec = record.spec
    family = spec.family
    gated = family in fail_on.thresholds and record.metric not in UNGATED_METRICS
    status = GateStatus.MISSING if n is None else GateStatus.NEW
    return Comparison(
        pair=record.pair, metric=record.metric, unit=record.unit, family=family, direction=spec.direction,
        status=status, blocking=status is GateStatus.MISSING and gated and fail_on.missing, gated=gated,
        threshold=fail_on.thresholds.get(family, REPORT_THRESHOLD),
        base_value=b.value if b else None, new_value=n.value if n else None,
        n_base=len(b.raw or []) if b else 0, n_new=len(n.raw or []) if n else 0)
