"""The merge gate: is a run's energy or latency worse than the baseline's, beyond noise and beyond a threshold?

Pure comparison of two sets of result records (no pytest, no I/O). Per pair × metric it gives a
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
* Records without per-inference samples (footprint, accuracy over a fixed set) are deterministic:
  their values are compared directly and the threshold applies literally. A noisy metric recorded as
  a single value (fps) cannot be tested and is UNKNOWN when past the cut.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
from scipy import stats

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.store import ResultRecord, RunInfo

ALPHA = 0.05  # one-sided significance level
ESTIMATE_CUT_FRACTION = 0.5  # the HL estimate must be past 1 + this × threshold
CONFIDENCE = 0.95  # of the reported ratio interval
MAX_SAMPLES_PAIRWISE = 2000  # per side for HL: 4 M pairwise ratios at most (long latency records are thinned)
BLOCKS = 5  # consecutive blocks per side for the drift check ...
MIN_BLOCK_SAMPLES = 5  # ... each with at least this many samples
DRIFT_ALPHA = 0.01  # blocks count as drifted only when they differ this significantly
REPORT_THRESHOLD = 0.05  # families that do not gate are still classified at this threshold
DEFAULT_FAIL_ON = "energy:5%,latency:10%"


class Family(str, Enum):
    ENERGY = "energy"  # *_mj, *_mw
    LATENCY = "latency"  # *_ms, *_us, fps
    ACCURACY = "accuracy"  # roc_auc, binary_accuracy, *_cm errors
    FOOTPRINT = "footprint"  # *_kb, *_bytes, *_macs


class GateStatus(str, Enum):
    IMPROVED = "IMPROVED"
    SAME = "SAME"
    REGRESSED = "REGRESSED"
    UNKNOWN = "UNKNOWN"
    MISSING = "MISSING"  # in the baseline, not in this run
    NEW = "NEW"  # in this run, not in the baseline


_HIGHER_IS_BETTER_WORDS = ("fps", "accuracy", "auc", "iou", "dice", "f1", "precision", "recall")
# Metrics of these families, when recorded without samples, are deterministic (a file size, a score
# over a fixed evaluation set): compared as values.
_EXACT_FAMILIES = (Family.FOOTPRINT, Family.ACCURACY)


def metric_family(metric: str) -> Family:
    if metric.endswith(("_mj", "_mw")):
        return Family.ENERGY
    if metric.endswith(("_ms", "_us", "_fps")) or metric == "fps":
        return Family.LATENCY
    if metric.endswith(("_kb", "_bytes", "_macs")):
        return Family.FOOTPRINT
    return Family.ACCURACY


def higher_is_better(metric: str) -> bool:
    """fps and scores (accuracy, AUC, …) improve upwards; times, energies, errors and sizes downwards."""
    return any(word in metric for word in _HIGHER_IS_BETTER_WORDS)


# ---------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class FailOn:
    """Which metric families block a merge and at what relative regression; `missing`/`unknown` make
    those verdicts block too (default: reported, not blocking)."""

    thresholds: dict[Family, float] = field(default_factory=dict)
    missing: bool = False
    unknown: bool = False

    @classmethod
    def parse(cls, text: str) -> FailOn:
        """`energy:5%,latency:10%[,missing][,unknown]`; a bare fraction (`energy:0.05`) works too."""
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
                raise ConfigError(f"--edgehil-fail-on {text!r}: unknown metric family {name.strip()!r}; use "
                                  f"{families} (e.g. energy:5%,latency:10%), or the words missing/unknown") from None
            amount = amount.strip()
            try:
                value = float(amount[:-1]) / 100.0 if amount.endswith("%") else float(amount)
            except ValueError:
                value = -1.0
            if not sep or not (0.0 < value < 10.0) or (not amount.endswith("%") and value >= 1.0):
                raise ConfigError(f"--edgehil-fail-on {text!r}: {token!r} needs a positive relative threshold "
                                  f"such as {family.value}:5% (or {family.value}:0.05)")
            thresholds[family] = value
        return cls(thresholds, **flags)

    def describe(self) -> str:
        parts = [f"{family.value} +{value * 100:g} %" for family, value in self.thresholds.items()]
        parts += [word for word, on in (("missing", self.missing), ("unknown", self.unknown)) if on]
        return ", ".join(parts) or "nothing (report only)"


# ------------------------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class RatioTest:
    """new/base ratio estimate, its CI and one-sided p-values, from the samples of both sides."""

    ratio: float
    ci_low: float
    ci_high: float
    p_greater: float  # H1: new is stochastically larger than base
    p_less: float  # H1: new is stochastically smaller
    method: str  # "per-inference" | "window medians"
    n_base: int
    n_new: int
    drift: float = 0.0  # largest within-run spread of block medians (max/min - 1), either side


def _thin(x: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` evenly spaced order statistics: keeps the distribution's shape for HL."""
    if x.size <= limit:
        return x
    return np.sort(x)[np.linspace(0, x.size - 1, limit).round().astype(int)]


def hodges_lehmann_shift(base: np.ndarray, new: np.ndarray,
                         confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """HL shift estimate of new − base with Moses' distribution-free confidence interval."""
    b, n = _thin(base, MAX_SAMPLES_PAIRWISE), _thin(new, MAX_SAMPLES_PAIRWISE)
    diffs = (n[:, None] - b[None, :]).ravel()
    total = diffs.size
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    k = math.floor(total / 2 - z * math.sqrt(b.size * n.size * (b.size + n.size + 1) / 12.0))
    k = min(max(k, 0), (total - 1) // 2)
    mid_lo, mid_hi = (total - 1) // 2, total // 2
    part = np.partition(diffs, sorted({k, mid_lo, mid_hi, total - 1 - k}))
    return float((part[mid_lo] + part[mid_hi]) / 2), float(part[k]), float(part[total - 1 - k])


def hodges_lehmann_ratio(base: np.ndarray, new: np.ndarray,
                         confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(ratio, low, high) of new over base: HL on log samples when all are positive, else the HL shift
    relative to the baseline median."""
    if np.all(base > 0) and np.all(new > 0):
        est, lo, hi = hodges_lehmann_shift(np.log(base), np.log(new), confidence)
        return math.exp(est), math.exp(lo), math.exp(hi)
    scale = float(np.median(base))
    if scale == 0.0:
        return math.nan, math.nan, math.nan
    est, lo, hi = hodges_lehmann_shift(base, new, confidence)
    ordered = sorted((1 + lo / scale, 1 + hi / scale))
    return 1 + est / scale, ordered[0], ordered[1]


def block_medians(x: np.ndarray) -> np.ndarray:
    """Medians of up to BLOCKS consecutive blocks (samples are in acquisition order: blocks ≈ windows)."""
    count = min(BLOCKS, x.size // MIN_BLOCK_SAMPLES)
    if count < 2:
        return np.empty(0)
    return np.array([np.median(block) for block in np.array_split(x, count)])


def drift_of(x: np.ndarray) -> float:
    """How far a run's consecutive blocks disagree (max/min of block medians − 1), counted only when the
    blocks differ beyond sampling noise (Kruskal–Wallis p < DRIFT_ALPHA): medians of a few samples
    scatter by themselves, and that scatter must not pass for drift."""
    count = min(BLOCKS, x.size // MIN_BLOCK_SAMPLES)
    if count < 2 or np.ptp(x) == 0:
        return 0.0
    blocks = np.array_split(x, count)
    medians = np.array([np.median(block) for block in blocks])
    if np.min(medians) <= 0 or stats.kruskal(*blocks).pvalue >= DRIFT_ALPHA:
        return 0.0
    return float(np.max(medians) / np.min(medians) - 1.0)


def _mann_whitney(base: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    if np.ptp(np.concatenate([base, new])) == 0:
        return 1.0, 1.0  # all samples equal: no evidence either way (scipy would return NaN)
    greater = stats.mannwhitneyu(new, base, alternative="greater").pvalue
    less = stats.mannwhitneyu(new, base, alternative="less").pvalue
    return float(np.nan_to_num(greater, nan=1.0)), float(np.nan_to_num(less, nan=1.0))


def ratio_test(base: Sequence[float], new: Sequence[float], *, drift_limit: float = math.inf) -> RatioTest:
    """Compare per-inference samples; falls back to block medians when a side drifted past `drift_limit`."""
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    drift = max(drift_of(b), drift_of(n))
    method = "per-inference"
    if drift > drift_limit:
        b_blocks, n_blocks = block_medians(b), block_medians(n)
        if b_blocks.size >= 2 and n_blocks.size >= 2:  # too few samples on a side to block: stay pooled
            b, n, method = b_blocks, n_blocks, "window medians"
    ratio, lo, hi = hodges_lehmann_ratio(b, n)
    p_greater, p_less = _mann_whitney(b, n)
    return RatioTest(ratio, lo, hi, p_greater, p_less, method, b.size, n.size, drift)


# ------------------------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    pair: str
    metric: str
    unit: str
    family: Family
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
    method: str = ""  # per-inference | window medians | values
    n_base: int = 0
    n_new: int = 0
    flags: tuple[str, ...] = ()
    note: str = ""

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric)

    @property
    def worse_change(self) -> float | None:
        """Relative change in the worse direction (+0.08: 8 % worse), whatever the metric's direction."""
        if self.ratio is None or not math.isfinite(self.ratio) or self.ratio <= 0:
            return None
        return (1 / self.ratio if self.higher_is_better else self.ratio) - 1.0

    def ratio_text(self) -> str:
        if self.ratio is None or not math.isfinite(self.ratio):
            return ""
        if self.ci_low is None or self.ci_high is None:
            return f"{self.ratio:.3f}"
        return f"{self.ratio:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}]"

    def describe(self) -> str:
        """One sentence naming the pair, the metric, the values, the ratio, its CI and the evidence."""
        unit = f" {self.unit}" if self.unit else ""
        head = f"{self.pair} {self.metric}"
        if self.status is GateStatus.MISSING:
            return f"{head}: in the baseline ({_fmt(self.base_value)}{unit}) but not measured in this run"
        if self.status is GateStatus.NEW:
            return f"{head}: measured in this run ({_fmt(self.new_value)}{unit}), not in the baseline"
        text = f"{head}: {_fmt(self.base_value)} → {_fmt(self.new_value)}{unit}"
        if self.ratio is not None and math.isfinite(self.ratio):
            text += f", ratio {self.ratio:.3f}"
            if self.ci_low is not None and self.ci_high is not None:
                text += f" (95 % CI {self.ci_low:.3f}–{self.ci_high:.3f})"
        if self.p_value is not None:
            text += (f", one-sided Mann–Whitney p = {self.p_value:.2g} on {self.n_base} vs {self.n_new} "
                     f"{'per-inference samples' if self.method == 'per-inference' else self.method}")
        worse = self.worse_change
        if worse is not None and self.status in (GateStatus.REGRESSED, GateStatus.IMPROVED, GateStatus.UNKNOWN):
            direction = "worse" if worse > 0 else "better"
            text += (f"; {abs(worse):.1%} {direction} ({'higher' if self.higher_is_better else 'lower'} is "
                     f"better; {self.family.value} threshold {self.threshold:.0%})")
        if self.note:
            text += f"; {self.note}"
        if self.flags:
            text += f" [{'; '.join(self.flags)}]"
        return text


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


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


def _decide(worse_ratio: float, p_worse: float | None, p_better: float | None, cut: float,
            tested: bool) -> tuple[GateStatus, str]:
    if not math.isfinite(worse_ratio):
        return GateStatus.UNKNOWN, "no ratio: a value is zero or of the other sign"
    if not tested:  # deterministic values: the threshold applies literally
        if worse_ratio > cut:
            return GateStatus.REGRESSED, ""
        return (GateStatus.IMPROVED, "") if 1 / worse_ratio > cut else (GateStatus.SAME, "")
    if p_worse is None or p_better is None:
        if worse_ratio > cut or 1 / worse_ratio > cut:
            return GateStatus.UNKNOWN, "~ past the cut, but recorded without samples to test"
        return GateStatus.SAME, ""
    if worse_ratio > cut:
        if p_worse < ALPHA:
            return GateStatus.REGRESSED, ""
        return GateStatus.UNKNOWN, f"~ past the cut but not significant (p = {p_worse:.2g}): rerun"
    if 1 / worse_ratio > cut:
        if p_better < ALPHA:
            return GateStatus.IMPROVED, "consider refreshing the baseline"
        return GateStatus.UNKNOWN, f"~ better past the cut but not significant (p = {p_better:.2g})"
    if min(p_worse, p_better) < ALPHA:
        return GateStatus.SAME, "a significant change, smaller than the cut"
    return GateStatus.SAME, ""


def _worse_ratio(ratio: float, hib: bool) -> float:
    """The ratio oriented so that > 1 is worse; NaN when there is no meaningful ratio."""
    if not (math.isfinite(ratio) and ratio > 0):
        return math.nan
    return 1 / ratio if hib else ratio


def compare_records(base: ResultRecord, new: ResultRecord, fail_on: FailOn) -> Comparison:
    family = metric_family(new.metric)
    gated = family in fail_on.thresholds
    threshold = fail_on.thresholds.get(family, REPORT_THRESHOLD)
    comparison = Comparison(pair=new.pair, metric=new.metric, unit=new.unit, family=family,
                            status=GateStatus.UNKNOWN, blocking=False, gated=gated, threshold=threshold,
                            base_value=base.value, new_value=new.value, flags=tuple(context_flags(base, new)))
    incomparable = []
    if base.unit != new.unit:
        incomparable.append(f"units differ: {base.unit!r} → {new.unit!r}")
    if base.backend and new.backend and base.backend != new.backend:
        incomparable.append(f"backends differ: {base.backend} → {new.backend}")
    if incomparable:
        return replace(comparison, blocking=gated and fail_on.unknown, flags=tuple(incomparable) + comparison.flags,
                       note="not comparable: rerun both sides on the same bench")
    hib = higher_is_better(new.metric)
    raw_b, raw_n = base.raw or [], new.raw or []
    if len(raw_b) >= 2 and len(raw_n) >= 2:
        cut = 1 + ESTIMATE_CUT_FRACTION * threshold
        test = ratio_test(raw_b, raw_n, drift_limit=cut - 1)
        p_worse, p_better = (test.p_less, test.p_greater) if hib else (test.p_greater, test.p_less)
        worse_ratio = _worse_ratio(test.ratio, hib)
        status, note = _decide(worse_ratio, p_worse, p_better, cut, tested=True)
        if test.method == "window medians":
            drift_note = f"a run drifted {test.drift:.1%} between its own windows, so window medians were compared"
            note = "; ".join(filter(None, [drift_note, note]))
            # A change no larger than the bench's own wander within one run cannot be told from drift.
            within_drift = abs(math.log(worse_ratio)) <= math.log1p(test.drift)
            if status in (GateStatus.REGRESSED, GateStatus.IMPROVED) and within_drift:
                status = GateStatus.UNKNOWN
                note += "; the change is within that drift: rerun (more windows, a settled bench)"
        comparison = replace(comparison, ratio=test.ratio, ci_low=test.ci_low, ci_high=test.ci_high,
                             p_value=p_worse, method=test.method, n_base=test.n_base, n_new=test.n_new)
    else:
        exact = family in _EXACT_FAMILIES
        ratio = new.value / base.value if base.value else (1.0 if new.value == base.value else math.nan)
        cut = 1 + (threshold if exact else ESTIMATE_CUT_FRACTION * threshold)
        status, note = _decide(_worse_ratio(ratio, hib), None, None, cut, tested=not exact)
        comparison = replace(comparison, ratio=ratio, method="values", n_base=len(raw_b), n_new=len(raw_n))
    blocking = gated and (status is GateStatus.REGRESSED or (status is GateStatus.UNKNOWN and fail_on.unknown))
    return replace(comparison, status=status, note=note, blocking=blocking)


# ----------------------------------------------------------------------------------------------- report


_ATTENTION_ORDER = (GateStatus.REGRESSED, GateStatus.UNKNOWN, GateStatus.MISSING, GateStatus.IMPROVED,
                    GateStatus.NEW, GateStatus.SAME)


@dataclass(frozen=True)
class GateReport:
    comparisons: list[Comparison]
    fail_on: FailOn
    run_flags: tuple[str, ...] = ()
    duplicate_notes: tuple[str, ...] = ()

    @property
    def blocking(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.blocking]

    @property
    def passed(self) -> bool:
        return not self.blocking

    def count(self, status: GateStatus) -> int:
        return sum(1 for c in self.comparisons if c.status is status)

    def headline(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s.value}" for s in _ATTENTION_ORDER if self.count(s))
        verdict = f"FAILED: {len(self.blocking)} blocking" if self.blocking else "passed"
        return f"edgehil gate {verdict} ({counts or 'nothing compared'}; fail on {self.fail_on.describe()})"

    def table_lines(self) -> list[str]:
        rows = [("pair", "metric", "baseline", "new", "ratio [95 % CI]", "p", "verdict", "flags")]
        order = {s: i for i, s in enumerate(_ATTENTION_ORDER)}
        for c in sorted(self.comparisons, key=lambda c: (not c.blocking, order[c.status], c.pair, c.metric)):
            unit = f" {c.unit}" if c.unit else ""
            verdict = ("~ " if c.status is GateStatus.UNKNOWN else "") + c.status.value
            if c.blocking:
                verdict += " ✗ FAILS"
            elif not c.gated and c.status in (GateStatus.REGRESSED, GateStatus.IMPROVED):
                verdict += " (not gated)"
            rows.append((c.pair, c.metric, _fmt(c.base_value) + (unit if c.base_value is not None else ""),
                         _fmt(c.new_value) + (unit if c.new_value is not None else ""), c.ratio_text(),
                         "" if c.p_value is None else f"{c.p_value:.2g}", verdict, "; ".join(c.flags)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return lines

    def detail_lines(self) -> list[str]:
        """Full sentences for what needs attention: blocking first, then UNKNOWN and MISSING."""
        lines = [f"FAIL {c.describe()}" for c in self.blocking]
        for c in self.comparisons:
            if not c.blocking and c.status in (GateStatus.UNKNOWN, GateStatus.MISSING):
                lines.append(f"{c.status.value} {c.describe()}")
        lines += [f"note: {flag}" for flag in self.run_flags]
        lines += [f"note: {text}" for text in self.duplicate_notes]
        return lines

    def to_json_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "fail_on": self.fail_on.describe(), "run_flags": list(self.run_flags),
                "comparisons": [{**{k: getattr(c, k) for k in (
                    "pair", "metric", "unit", "base_value", "new_value", "ratio", "ci_low", "ci_high", "p_value",
                    "method", "n_base", "n_new", "note", "blocking", "gated", "threshold")},
                    "family": c.family.value, "status": c.status.value, "flags": list(c.flags)}
                    for c in self.comparisons]}


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
    for key in sorted(base_by_key.keys() | new_by_key.keys()):
        b, n = base_by_key.get(key), new_by_key.get(key)
        if b is not None and n is not None:
            comparisons.append(compare_records(b, n, fail_on))
            continue
        record = b if b is not None else n
        assert record is not None
        family = metric_family(record.metric)
        gated = family in fail_on.thresholds
        status = GateStatus.MISSING if n is None else GateStatus.NEW
        comparisons.append(Comparison(
            pair=record.pair, metric=record.metric, unit=record.unit, family=family, status=status,
            blocking=status is GateStatus.MISSING and gated and fail_on.missing, gated=gated,
            threshold=fail_on.thresholds.get(family, REPORT_THRESHOLD),
            base_value=b.value if b else None, new_value=n.value if n else None,
            n_base=len(b.raw or []) if b else 0, n_new=len(n.raw or []) if n else 0))
    return GateReport(comparisons, fail_on, tuple(run_flags(base_run, new_run)), tuple(notes_b + notes_n))
