"""The merge gate's decision rule: a verdict from a relative change, its one-sided p-values and a threshold.

* A threshold means what users read in it: `energy:5%` never fails a change whose estimate is under
  5 %. A change REGRESSES only when the estimate is past the threshold in the worse direction *and* it
  is significant (one-sided p < α); a change equal to the threshold passes (`_past`).
* Past the threshold but not significant is UNKNOWN ("~", as asv shows it): it asks for a rerun or more
  sessions, never a false block.
* Deterministic values (a file size, a score over a fixed set) are compared as they are: the threshold
  applies literally. A noisy value recorded without samples cannot be tested and is UNKNOWN past it.

Pure functions, no pytest, no I/O; which comparison produced the change and its p-values is `gate.py`'s.
"""

from __future__ import annotations

import math

from pytest_edgehil.results.comparison import GateStatus

ALPHA = 0.05  # one-sided significance level of a same-session comparison (A/B rounds, pooled samples)


def decide(worse: float, p_worse: float | None, p_better: float | None, cut: float,
            tested: bool, alpha: float = ALPHA) -> tuple[GateStatus, str]:
    """`worse` is the relative change of the value in the worse direction (+0.08: 8 % worse, −0.08: 8 %
    better, for a top1 falling 0.72 → 0.60 it is +0.167); `cut` the threshold past which it counts."""
    if math.isnan(worse) or (tested and math.isinf(worse)):
        return GateStatus.UNKNOWN, "no ratio: a value is missing, zero or of the other sign"
    if not tested:  # deterministic values: the threshold applies literally
        if _past(worse, cut):
            return GateStatus.REGRESSED, ""
        return (GateStatus.IMPROVED, "") if _past(-worse, cut) else (GateStatus.SAME, "")
    if p_worse is None or p_better is None:
        if _past(abs(worse), cut):
            return GateStatus.UNKNOWN, "~ past the threshold, but recorded without samples to test"
        return GateStatus.SAME, ""
    if _past(worse, cut):
        if p_worse < alpha:
            return GateStatus.REGRESSED, ""
        return GateStatus.UNKNOWN, f"~ past the threshold but not significant (p = {p_worse:.2g}): rerun"
    if _past(-worse, cut):
        if p_better < alpha:
            return GateStatus.IMPROVED, "consider refreshing the baseline"
        return GateStatus.UNKNOWN, f"~ better past the threshold but not significant (p = {p_better:.2g})"
    if min(p_worse, p_better) < alpha:
        return GateStatus.SAME, "a significant change, within the threshold"
    return GateStatus.SAME, ""


def _past(change: float, cut: float) -> bool:
    """Whether a relative change is past the threshold `cut`, which is the largest change that passes
    (docs/gate.md): a change equal to it up to float round-off passes (top1 0.72 → 0.7128 is 1 % worse, and
    1 − 0.7128 / 0.72 computes to 0.010000000000000009)."""
    return change > cut and not math.isclose(change, cut, rel_tol=1e-9, abs_tol=1e-12)


def worse_fraction(ratio: float, higher_is_better: bool) -> float:
    """Relative change new/base − 1 signed so that > 0 is worse (a fall, for a higher-is-better metric);
    NaN when there is no meaningful ratio (a value missing, or of the other sign). A threshold of 10 % then
    means what it says in both directions: latency up by more than 10 %, or a score down by more than 10 %.
    To or from zero is a change too: a ratio of 0 is 100 % (a top1 of 0.72 → 0 is 100 % worse), a ratio of
    +inf (0 → 3 false alarms) is unbounded, ±inf, past every threshold."""
    if math.isnan(ratio) or ratio < 0:
        return math.nan
    if math.isinf(ratio):
        return -math.inf if higher_is_better else math.inf
    return 1.0 - ratio if higher_is_better else ratio - 1.0
