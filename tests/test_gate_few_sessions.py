"""The cross-session gate with baseline sessions whose medians agree exactly (samples on a coarse timer, a
quantized reading): their spread is 0, which estimates no drift at all. It must not turn into certainty
(p = 0, a zero-width interval) that one such session alone, with its assumed drift, does not give.

Expected values come from the prediction test docs/gate.md states, t = d / (s·√(1 + 1/k)) with k − 1 degrees
of freedom, its spread s floored at the assumed drift σ = 1.5 % when the sessions measure none, computed here
with scipy.stats.t.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_edgehil.results.gate import FailOn, GateStatus, compare_records
from pytest_edgehil.results.session_stats import session_test
from pytest_edgehil.results.store import ResultRecord

SIGMA = 0.015


def record(samples: list[float]) -> ResultRecord:
    return ResultRecord(pair="lowres_seg-cortex-m4", model="lowres_seg", device="cortex-m4", kind="cortex-m4",
                        metric="inference_mj", value=float(np.median(samples)), unit="mJ", backend="HW",
                        status="info", raw=samples, context={"model_sha256": "a" * 64}, direction="lower",
                        family="energy", test="suites/test_energy.py::test_e[lowres_seg-cortex-m4]", outcome="passed")


def assumed_p(ratio: float, sessions: int) -> float:
    se = math.log1p(SIGMA) * math.sqrt(1 + 1 / sessions)
    return float(stats.t.sf(math.log(ratio) / se, df=sessions - 1))


@pytest.mark.parametrize("sessions", [2, 3, 5])
def test_identical_session_medians_estimate_no_drift_and_claim_no_certainty(sessions: int) -> None:
    base = [[2.0] * 5] * sessions  # a 0.5 mJ-step reading: every session's median is 2.0 mJ
    new = [2.2] * 5
    test = session_test(base, new)
    assert test.assumed and test.p_greater == pytest.approx(assumed_p(1.1, sessions), rel=1e-6)
    assert test.p_greater > 0 and test.ci_low < 1.1 < test.ci_high
    one = session_test(base[:1], new)  # one such session: judged with the assumed drift
    assert test.p_greater >= one.p_greater  # identical sessions are no more certain than one of them


def test_plus_4_percent_against_identical_sessions_is_unknown_not_a_block() -> None:
    """+4 % at energy:2.5 % against 3 identical sessions: p = 0.075 (t, 2 df), above α = 0.5 %: UNKNOWN."""
    assert assumed_p(1.04, 3) > 0.005
    c = compare_records([record([2.0] * 5)] * 3, record([2.08] * 5), FailOn.parse("energy:2.5%"))
    assert c.status is GateStatus.UNKNOWN and not c.blocking
    assert c.p_value == pytest.approx(assumed_p(1.04, 3), rel=1e-6)
    assert "3 sessions" in c.note and "identical" in c.note and "1.5% assumed" in c.note
    assert "single-session" not in c.note


def test_sessions_that_do_differ_still_measure_their_drift() -> None:
    """The fallback is for a spread of exactly 0 only: two sessions 1 % apart keep Student's t with 1 df."""
    base = [[2.0] * 5, [2.02] * 5]
    new = [2.2] * 5
    test = session_test(base, new)
    logs = np.log([2.0, 2.02])
    se = float(np.std(logs, ddof=1)) * math.sqrt(1 + 1 / 2)
    expected = float(stats.t.sf((math.log(2.2) - logs.mean()) / se, df=1))
    assert not test.assumed and test.p_greater == pytest.approx(expected, rel=1e-6)
