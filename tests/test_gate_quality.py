"""The gate's own quality with between-session drift (σ = 1.5 %), in both modes, CI-sized.

The statistical core runs on synthetic sessions drawn the way the twins draw them
(`sim.gate_trials.synthetic_ab_session`: a session factor N(1, σ) within ±4σ, per-inference spread 1 %,
3 rounds × 10 inferences per model); a smaller end-to-end run goes through the real twins (device twin on
a pty, analyzer twin over PyVISA/TCP, `measure_energy_ab`). The full figures, with ≥ 200 comparisons per
cell, come from `scripts/gate_quality.py` and are in docs/gate.md.

These tests fail when α or the threshold is broken: with α = 0.5 the tiny-threshold false-alarm checks
fail, with the threshold cut to half (or removed) the "+3 % passes energy:5%" and false-alarm checks fail.
Every seed is fixed; the bounds leave room for binomial noise at the trial counts used.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pytest_edgehil.results.comparison import DEFAULT_FAIL_ON, FailOn
from pytest_edgehil.sim.gate_trials import ab_verdict, session_verdict, synthetic_ab_session, twin_ab_session

from .conftest import MODELS

SIGMA = 0.015
TRIALS = 300
DEFAULT = FailOn.parse(DEFAULT_FAIL_ON)  # energy:2.5%


def ab_block_rate(seed: int, effect: float, fail_on: FailOn, trials: int = TRIALS) -> float:
    rng = np.random.default_rng(seed)
    return sum(ab_verdict(*synthetic_ab_session(rng, drift_rel=SIGMA, effect_rel=effect), fail_on).blocking
               for _ in range(trials)) / trials


def session_block_rate(seed: int, effect: float, fail_on: FailOn, sessions: int, trials: int = TRIALS) -> float:
    rng = np.random.default_rng(seed)

    def one(effect_rel: float = 0.0) -> list[list[float]]:
        return synthetic_ab_session(rng, drift_rel=SIGMA, effect_rel=effect_rel)[1]

    return sum(session_verdict([one() for _ in range(sessions)], one(effect), fail_on).blocking
               for _ in range(trials)) / trials


def test_ab_at_the_default_threshold_catches_plus_5_and_never_blocks_unchanged() -> None:
    assert ab_block_rate(1, 0.0, DEFAULT) <= 0.01
    assert ab_block_rate(2, 0.05, DEFAULT) >= 0.95


def test_ab_threshold_means_what_it_says() -> None:
    """energy:5%: +3 % passes, +5 % is a coin toss (the estimate is centred on the threshold), +7.5 % fails."""
    five = FailOn.parse("energy:5%")
    assert ab_block_rate(3, 0.03, five, 200) <= 0.02
    assert 0.3 <= ab_block_rate(4, 0.05, five, 200) <= 0.7
    assert ab_block_rate(5, 0.075, five, 200) >= 0.95


def test_ab_significance_level_holds_at_a_tiny_threshold() -> None:
    """With the threshold out of the way (0.1 %), only α stands between noise and a block: ≈ 5 %."""
    assert ab_block_rate(6, 0.0, FailOn.parse("energy:0.1%"), 400) <= 0.09


def test_cross_session_with_five_baseline_sessions_keeps_false_alarms_under_1_percent() -> None:
    assert session_block_rate(7, 0.0, DEFAULT, sessions=5) <= 0.01
    # The significance level alone (threshold 0.1 %): α = 0.5 % across sessions.
    assert session_block_rate(8, 0.0, FailOn.parse("energy:0.1%"), sessions=5) <= 0.02
    # Drift limits what it can see: +5 % is caught sometimes, and more with more sessions.
    five, ten = (session_block_rate(9, 0.05, DEFAULT, sessions=k, trials=200) for k in (5, 10))
    assert 0.05 <= five < ten


def test_cross_session_single_baseline_does_not_block_on_drift() -> None:
    assert session_block_rate(10, 0.0, DEFAULT, sessions=1) <= 0.02


@pytest.fixture(scope="module")
def twin_sessions() -> dict[str, list[tuple[list[list[float]], list[list[float]]]]]:
    # Sessions run side by side: each waits on its pty and TCP link most of the time; seeds never overlap.
    def run(seeds: range, effect: float) -> list[tuple[list[list[float]], list[list[float]]]]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda s: twin_ab_session(s, drift_rel=SIGMA, effect_rel=effect,
                                                           models_dir=MODELS), seeds))

    return {"unchanged": run(range(100, 108), 0.0), "plus5": run(range(200, 208), 0.05)}


def test_ab_through_the_twins(twin_sessions: dict[str, list[tuple[list[list[float]], list[list[float]]]]]) -> None:
    """Real twins with σ = 1.5 % session drift: every +5 % caught, no unchanged pair blocked, and the
    sessions really differ (the drift is there, the A/B cancels it)."""
    unchanged = [ab_verdict(b, n, DEFAULT) for b, n in twin_sessions["unchanged"]]
    plus5 = [ab_verdict(b, n, DEFAULT) for b, n in twin_sessions["plus5"]]
    assert not any(c.blocking for c in unchanged), [c.describe() for c in unchanged if c.blocking]
    assert all(c.blocking for c in plus5), [c.describe() for c in plus5 if not c.blocking]
    levels = [float(np.median(np.concatenate(b))) for b, _ in twin_sessions["unchanged"]]
    assert np.std(np.log(levels)) > 0.004  # the sessions' levels spread: the drift is real
    for b, n in twin_sessions["plus5"]:
        shift = np.median(np.concatenate(n)) / np.median(np.concatenate(b))
        assert 1.03 < shift < 1.08
