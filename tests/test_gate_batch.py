"""The gate's batched statistics give exactly what one scipy call per record gave."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from pytest_edgehil.results.gate_stats import (
    DRIFT_ALPHA,
    RatioTest,
    block_medians,
    drift_of,
    hodges_lehmann_ratio,
    ratio_tests,
)


def one_by_one(base, new, drift_limit):
    """ratio_test as it was: drift, Mann-Whitney and HL with one scipy call per record."""
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    drift = max(drift_of(b), drift_of(n))
    method = "per-inference"
    if drift > drift_limit:
        b_blocks, n_blocks = block_medians(b), block_medians(n)
        if b_blocks.size >= 2 and n_blocks.size >= 2:
            b, n, method = b_blocks, n_blocks, "window medians"
    ratio, lo, hi = hodges_lehmann_ratio(b, n)
    if np.ptp(np.concatenate([b, n])) == 0:
        p_greater = p_less = 1.0
    else:
        p_greater = float(np.nan_to_num(stats.mannwhitneyu(n, b, alternative="greater").pvalue, nan=1.0))
        p_less = float(np.nan_to_num(stats.mannwhitneyu(n, b, alternative="less").pvalue, nan=1.0))
    return RatioTest(ratio, lo, hi, p_greater, p_less, method, b.size, n.size, drift)


def test_batched_ratio_tests_equal_one_call_per_record():
    rng = np.random.default_rng(2)  # any seed: equality must hold for every input
    pairs, limits = [], []
    for i in range(120):
        size_b, size_n = rng.choice([2, 3, 7, 10, 50]), rng.choice([2, 7, 50, 51])
        base = rng.normal(10, 0.2, size_b)
        new = rng.normal(10 * rng.choice([1.0, 1.05, 0.9]), 0.2, size_n)
        if i % 7 == 0:
            new = new + np.linspace(0, 3, size_n)  # a run that drifts: window medians
        if i % 11 == 0:
            base = np.full(size_b, 4.0)
            new = np.full(size_n, 4.0)  # all equal: no evidence either way
        if i % 13 == 0:
            base = base - 20  # non-positive samples: the HL shift relative to the median
        pairs.append((base.tolist(), new.tolist()))
        limits.append(float(rng.choice([0.01, 0.05, math.inf])))
    batched = ratio_tests(pairs, limits)
    expected = [one_by_one(b, n, limit) for (b, n), limit in zip(pairs, limits)]
    assert [t.method for t in expected].count("window medians") > 0  # the drift path is exercised
    for got, want in zip(batched, expected):
        assert got.method == want.method and (got.n_base, got.n_new) == (want.n_base, want.n_new)
        np.testing.assert_array_equal([got.ratio, got.ci_low, got.ci_high, got.p_greater, got.p_less, got.drift],
                                      [want.ratio, want.ci_low, want.ci_high, want.p_greater, want.p_less,
                                       want.drift])
    assert DRIFT_ALPHA < 1
