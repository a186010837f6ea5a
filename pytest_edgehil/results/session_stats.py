"""Statistics for comparing a run with baseline runs from other sessions, and for same-session A/B rounds.

Pure functions over sample arrays (numpy and scipy, no pytest). Why the unit is the session (or the
A/B round) and not the inference:

* Across sessions, a bench draws a new power factor each session (temperature, supply, a re-seated
  probe: N(1, σ) with σ ≈ 1–2 % on real boards, `sim.bench_physics.session_factor` in the twins). Pooled
  per-inference samples of two sessions differ by that factor itself, and a test that treats thousands of
  inferences as independent calls it significant: pseudo-replication (the issue measured 16 % false
  alarms at σ = 1.5 %). The honest sample size is the number of sessions. `session_test` compares the
  new session's median with the baseline sessions' medians by a t prediction interval (Student, k − 1
  degrees of freedom, on log medians): the spread of the baseline's own session medians *is* the
  between-session variance, within-session noise included. With one baseline session that variance
  cannot be estimated, so an assumed drift σ is used and named in the verdict.
* Within one session on one board the factor is common to both models: interleaving candidate and
  baseline rounds (AB, BA, AB, …) cancels it, and the ABBA order cancels a linear warm-up too.
  `paired_rounds_test` takes each round's log ratio of medians as one paired difference (Student's
  paired t on rounds): the per-round ratios carry the board's slow wander, so it is not hidden.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.gate_stats import CONFIDENCE, RatioTest, ratio_test

ASSUMED_DRIFT_REL = 0.015  # σ of the session factor assumed when the baseline holds one session
MIN_SESSIONS = 5  # a baseline with fewer sessions is reported as weak evidence of the drift
IDENTICAL_LOG_SPREAD = 1e-12  # session medians within float round-off of each other: no spread measured
MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2)  # se(median) ≈ 1.2533·σ/√n for normal samples


def parse_drift(text: str | None, option: str = "--edgehil-session-drift") -> float:
    """`1.5%` or `0.015` → 0.015 (None: ASSUMED_DRIFT_REL). Raises ConfigError naming the option."""
    if text is None:
        return ASSUMED_DRIFT_REL
    text = text.strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 0.5:
        raise ConfigError(f"{option} {text!r}: give the between-session drift σ as a percentage below 50 % "
                          "(e.g. 1.5%) or a fraction (0.015)")
    return value


def log_median(samples: Sequence[float]) -> float:
    """log of the median of positive samples; NaN when the median is not positive."""
    return float(log_medians_and_se([np.asarray(samples, dtype=float)])[0][0])


def log_median_se(samples: Sequence[float]) -> float:
    """Standard error of the log median from the samples' own spread (robust: 1.4826·MAD of log x)."""
    return float(log_medians_and_se([np.asarray(samples, dtype=float)])[1][0])


def log_medians_and_se(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(`log_median`, `log_median_se`) of each 1-D array, one numpy call per group of arrays of one length
    (a nightly compare has thousands of records of equal sample counts: per-array calls were most of its
    time). log median: NaN when the median is not positive (or there are no samples); its standard error:
    0.0 with fewer than 2 samples or any sample ≤ 0."""
    log_median_of = np.full(len(arrays), math.nan)
    se = np.zeros(len(arrays))
    groups: dict[int, list[int]] = {}
    for index, array in enumerate(arrays):
        groups.setdefault(array.size, []).append(index)
    for size, indexes in groups.items():
        if size == 0:
            continue
        rows = np.stack([arrays[i] for i in indexes])
        for index, median in zip(indexes, np.median(rows, axis=1).tolist()):
            log_median_of[index] = math.log(median) if median > 0 else math.nan
        positive = np.all(rows > 0, axis=1)
        if size < 2 or not positive.any():
            continue
        logs = np.log(rows[positive])
        mad = np.median(np.abs(logs - np.median(logs, axis=1, keepdims=True)), axis=1)
        se[np.asarray(indexes)[positive]] = MEDIAN_EFFICIENCY * (1.4826 * mad) / math.sqrt(size)
    return log_median_of, se


# The distributions, without scipy.stats (it takes ~0.6 s CPU to import, more than a whole nightly
# compare should): the normal from the standard library (erfc keeps both tails accurate), Student's t
# from scipy.special's ufuncs, which are what scipy.stats.t calls itself (stdtr, stdtrit).
_NORMAL = statistics.NormalDist()


def _cdf(x: float, df: float) -> float:
    if math.isinf(df):
        return 0.5 * math.erfc(-x / math.sqrt(2.0))
    from scipy import special  # only a baseline of several sessions needs Student's t

    return float(special.stdtr(df, x))


def _ppf(q: float, df: float) -> float:
    if math.isinf(df):
        return _NORMAL.inv_cdf(q)
    from scipy import special

    return float(special.stdtrit(df, q))


@dataclass(frozen=True)
class SessionTest:
    """new / baseline ratio across sessions, with its interval, one-sided p-values and the drift used."""

    ratio: float
    ci_low: float
    ci_high: float
    p_greater: float  # H1: the new session's level is above the baseline sessions'
    p_less: float
    sessions: int  # baseline sessions compared with
    drift_rel: float  # between-session σ (relative): estimated from the sessions, or assumed (one session)
    assumed: bool  # drift_rel is the assumption, not an estimate
    se_log: float  # standard error of the log ratio the p-values used
    df: float  # degrees of freedom (inf: normal, with the assumed drift)
    # What `ratio` divides by: the baseline session's median, or for k >= 2 sessions the geometric mean of
    # their medians (exp of the mean log median); NaN when a median is not positive.
    base_level: float = math.nan

    def allowance(self, alpha: float) -> float:
        """The smallest relative change this comparison can call significant at one-sided `alpha`: the
        drift (plus noise) it cannot rule out."""
        return math.expm1(_ppf(1 - alpha, self.df) * self.se_log)


def session_test(base_sessions: Sequence[Sequence[float]], new: Sequence[float], *,
                 assumed_drift_rel: float = ASSUMED_DRIFT_REL) -> SessionTest:
    """Compare one new session's per-inference samples with ≥ 1 baseline sessions' samples.

    k ≥ 2 sessions: d = log median(new) − mean of the baseline's log medians, se = s·√(1 + 1/k) with s the
    sd of the baseline's log medians (floored at the new session's own standard error), Student t with
    k − 1 degrees of freedom; sessions with identical medians measure no drift, so s is floored at σ =
    `assumed_drift_rel` (log scale) and `assumed` is True. k = 1: se² = se_base² + se_new² + 2·σ², normal.
    Raises ValueError without a baseline session.
    """
    return session_tests([(base_sessions, new)], assumed_drift_rel=assumed_drift_rel)[0]


def session_tests(cases: Sequence[tuple[Sequence[Sequence[float]], Sequence[float]]], *,
                  assumed_drift_rel: float = ASSUMED_DRIFT_REL) -> list[SessionTest]:
    """`session_test` of each (baseline sessions, new samples) case: the same values, the medians of all
    cases computed together (`log_medians_and_se`). Raises ValueError for a case without a baseline session."""
    arrays: list[np.ndarray] = []
    for base_sessions, new in cases:
        if not base_sessions:
            raise ValueError("session_test needs at least one baseline session")
        arrays += [np.asarray(s, dtype=float) for s in base_sessions] + [np.asarray(new, dtype=float)]
    log_medians, ses = log_medians_and_se(arrays)
    tests, at = [], 0
    for base_sessions, _ in cases:
        k = len(base_sessions)
        tests.append(_session_test(log_medians[at:at + k], float(log_medians[at + k]), float(ses[at]),
                                   float(ses[at + k]), assumed_drift_rel))
        at += k + 1
    return tests


def _session_test(base_logs: np.ndarray, new_log: float, se_base: float, se_new: float,
                  assumed_drift_rel: float) -> SessionTest:
    """`session_test` from the log medians (and the first baseline session's and the new one's se)."""
    k = base_logs.size
    if not (np.all(np.isfinite(base_logs)) and math.isfinite(new_log)):
        return SessionTest(math.nan, math.nan, math.nan, 1.0, 1.0, k, math.nan, k == 1, math.nan, math.nan)
    base_log = float(base_logs[0]) if k == 1 else float(np.mean(base_logs))
    diff = new_log - base_log
    if k >= 2:
        # Sessions whose medians agree exactly (a coarse timer, a quantized reading) measure no drift: a spread
        # of 0 made any change certain (p = 0). Their spread is floored at the assumed drift, named as assumed;
        # Student's k − 1 degrees of freedom stay, so no verdict is more certain than the measured spread's.
        spread = max(float(np.std(base_logs, ddof=1)), se_new)
        identical = float(np.ptp(base_logs)) <= IDENTICAL_LOG_SPREAD
        if identical:
            spread = max(spread, math.log1p(assumed_drift_rel))
        drift = assumed_drift_rel if identical else math.expm1(spread)
        se, df, assumed = spread * math.sqrt(1 + 1 / k), float(k - 1), identical
    else:
        sigma = math.log1p(assumed_drift_rel)
        se = math.sqrt(se_base ** 2 + se_new ** 2 + 2 * sigma ** 2)
        df, drift, assumed = math.inf, assumed_drift_rel, True
    if se == 0.0:  # identical sessions with no spread at all: no evidence either way unless they differ
        p_greater = 0.0 if diff > 0 else 1.0
        p_less = 0.0 if diff < 0 else 1.0
        return SessionTest(math.exp(diff), math.exp(diff), math.exp(diff), p_greater, p_less, k, drift, assumed,
                           0.0, df, math.exp(base_log))
    z = diff / se
    half = _ppf(0.5 + CONFIDENCE / 2, df) * se
    return SessionTest(math.exp(diff), math.exp(diff - half), math.exp(diff + half), _cdf(-z, df),
                       _cdf(z, df), k, drift, assumed, se, df, math.exp(base_log))


def paired_rounds_test(base_rounds: Sequence[Sequence[float]], new_rounds: Sequence[Sequence[float]]) -> RatioTest:
    """Same-session A/B: round r's paired difference is log median(new_r) − log median(base_r).

    ≥ 2 rounds: Student's paired t over rounds (sd floored at the rounds' own sampling error, so two
    rounds that agree by chance do not make a zero-width interval). One round: the pooled per-inference
    test (`ratio_test`), whose p-value says how the two windows differ, not whether the models do (the
    board's drift between the windows is in it): the gate shows its ratio and tests nothing
    (`gate.compare_paired`). Raises ValueError when the sides have different numbers of rounds or none.
    """
    if len(base_rounds) != len(new_rounds) or not base_rounds:
        raise ValueError(f"paired rounds must match: {len(base_rounds)} baseline vs {len(new_rounds)} candidate")
    if len(base_rounds) == 1:
        test = ratio_test(base_rounds[0], new_rounds[0])
        return RatioTest(test.ratio, test.ci_low, test.ci_high, test.p_greater, test.p_less, "paired rounds",
                         1, 1)
    diffs = np.array([log_median(n) - log_median(b) for b, n in zip(base_rounds, new_rounds)])
    rounds = diffs.size
    if not np.all(np.isfinite(diffs)):
        return RatioTest(math.nan, math.nan, math.nan, 1.0, 1.0, "paired rounds", rounds, rounds)
    noise = math.sqrt(float(np.mean([log_median_se(b) ** 2 + log_median_se(n) ** 2
                                     for b, n in zip(base_rounds, new_rounds)])))
    sd = max(float(np.std(diffs, ddof=1)), noise)
    mean = float(np.mean(diffs))
    if sd == 0.0:
        p_greater, p_less = (0.0 if mean > 0 else 1.0), (0.0 if mean < 0 else 1.0)
        return RatioTest(math.exp(mean), math.exp(mean), math.exp(mean), p_greater, p_less, "paired rounds",
                         rounds, rounds)
    se = sd / math.sqrt(rounds)
    df = float(rounds - 1)
    half = _ppf(0.5 + CONFIDENCE / 2, df) * se
    return RatioTest(math.exp(mean), math.exp(mean - half), math.exp(mean + half), _cdf(-mean / se, df),
                     _cdf(mean / se, df), "paired rounds", rounds, rounds)
