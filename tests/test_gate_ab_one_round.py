"""Same-session A/B with one round (ini `edgehil_energy_windows = 1`): one window per model, the candidate's
first. The unit of an A/B comparison is the round (docs/gate.md): a round's log ratio is one paired
difference, and Student's paired t on one difference has 0 degrees of freedom — no test. The per-inference
samples of the two windows say how steady each window was, not how far the board moved between them: a
bench settling by 3 % from the first window to the second reads as a 3 % regression of the same model.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from pytest_edgehil.results.gate import FailOn, GateStatus, compare_paired
from pytest_edgehil.results.records import ab_context
from pytest_edgehil.results.store import ResultRecord

ENERGY = FailOn.parse("energy:2.5%")


def window(level: float, n: int = 10, cv: float = 0.01) -> list[float]:
    """Samples whose median is exactly `level` (a symmetric spread around it)."""
    return [float(x) for x in level * np.exp(np.linspace(-1.5, 1.5, n) * cv)]


def ab_record(baseline_rounds: list[list[float]], candidate_rounds: list[list[float]]) -> ResultRecord:
    record = ResultRecord(pair="qsegment-imx500", model="qsegment", device="imx500", kind="imx500",
                          metric="inference_mj", value=float(np.median(np.concatenate(candidate_rounds))),
                          unit="mJ", backend="HW", status="info", raw=[x for r in candidate_rounds for x in r],
                          context={"model_sha256": "a" * 64}, direction="lower", family="energy",
                          test="suites/test_ab.py::test_ab_energy[qsegment-imx500]", outcome="passed")
    return replace(record, context={**(record.context or {}), **ab_context(
        baseline_rounds, candidate_rounds, baseline_sha256="a" * 64, source="git:main")})


def test_one_round_cannot_tell_a_change_from_the_board_settling_between_its_windows() -> None:
    # The same model on both sides; the bench settles from 1.03 (candidate's window, first) to 1.00.
    c = compare_paired(ab_record([window(1.00)], [window(1.03)]), ENERGY)
    assert c is not None
    assert c.ratio is not None and math.isclose(c.ratio, 1.03, rel_tol=0.01)  # the estimate is shown ...
    assert c.status is GateStatus.UNKNOWN and not c.blocking  # ... but not called significant
    assert "one A/B round" in c.note and "edgehil_energy_windows" in c.note
    assert c.p_value is None and c.ci_low is None


def test_two_rounds_in_abba_order_cancel_the_same_settling() -> None:
    """Round 1 candidate first (1.03, then baseline 1.02), round 2 baseline first (1.01, then candidate 1.00):
    log ratios +0.98 % and −0.99 %, mean ≈ 0: SAME."""
    c = compare_paired(ab_record([window(1.02), window(1.01)], [window(1.03), window(1.00)]), ENERGY)
    assert c is not None
    expected = math.exp((math.log(1.03 / 1.02) + math.log(1.00 / 1.01)) / 2)
    assert c.ratio is not None and math.isclose(c.ratio, expected, rel_tol=1e-9)
    assert c.status is GateStatus.SAME and not c.blocking


def test_one_round_still_blocks_nothing_and_two_rounds_still_catch_a_real_regression() -> None:
    c = compare_paired(ab_record([window(1.00), window(1.00)], [window(1.10), window(1.10)]), ENERGY)
    assert c is not None and c.status is GateStatus.REGRESSED and c.blocking


def test_rounds_that_agree_exactly_measure_no_spread_and_claim_no_certainty() -> None:
    """A coarse reading (1 step of 0.1 mJ at 1.0 mJ) gives every sample of each side one value: the rounds'
    differences are equal, their spread 0, and a paired t of 0 spread is no test (p = 0, a zero-width
    interval, was REGRESSED). A true +0.2 % reads 1.0 → 1.1 as readily as a true +10 %."""
    c = compare_paired(ab_record([[1.0] * 5, [1.0] * 5], [[1.1] * 5, [1.1] * 5]), ENERGY)
    assert c is not None and c.status is GateStatus.UNKNOWN and not c.blocking
    assert c.p_value is None and "no spread" in c.note
