"""pytest-repeat's `--count N` repeats of one test against a baseline run without --count (results/gate_origins.py).

The repeats are one test measured N times ("test[qsegment-imx500-1-3]", "[2-3]", ...), not N tests. Keyed
by their ids, none matched the baseline's test: the baseline's record was MISSING (not blocking by default),
the repeats NEW, and a +50 % energy passed the gate (with `--allow duplicates`, which the duplicates
problem itself suggests). The expected verdicts follow from the figures alone: every repeat is 1.5x the
baseline, far past the default 5 % energy threshold.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, GateStatus, compare_results

from .test_gate import record

DEFAULT = FailOn.parse(DEFAULT_FAIL_ON)
LOOP = "suites/test_energy.py::test_inference_energy[qsegment-imx500]"
SPREAD = np.linspace(0.99, 1.01, 30)  # deterministic samples: no seed decides a verdict here


def energy(test: str, scale: float):
    return replace(record("inference_mj", SPREAD * scale), test=test)


def repeats(scales: list[float]) -> list:
    n = len(scales)
    return [energy(f"{LOOP[:-1]}-{i}-{n}]", s) for i, s in enumerate(scales, 1)]


def test_count_repeats_of_a_regressed_test_block_against_an_unrepeated_baseline() -> None:
    report = compare_results([energy(LOOP, 0.011)], repeats([0.011 * 1.5, 0.011 * 1.49, 0.011 * 1.51]), DEFAULT)
    statuses = sorted(c.status.value for c in report.comparisons)
    assert not report.passed, f"every repeat is +50 % on the baseline's figure, yet the gate passed: {statuses}"
    assert GateStatus.MISSING not in {c.status for c in report.comparisons}, "the repeated test is in this run"


def test_count_repeats_of_an_unchanged_test_are_not_missing_or_new() -> None:
    report = compare_results([energy(LOOP, 0.011)], repeats([0.011, 0.011 * 1.001, 0.011 * 0.999]), DEFAULT)
    statuses = {c.status for c in report.comparisons}
    assert statuses == {GateStatus.SAME}, statuses
    assert report.passed


def test_a_repeat_of_a_test_without_parameters_is_read_as_its_test() -> None:
    report = compare_results([energy("suites/test_x.py::test_e", 0.011)],
                             [energy("suites/test_x.py::test_e[1-2]", 0.011 * 1.5),
                              energy("suites/test_x.py::test_e[2-2]", 0.011 * 1.52)], DEFAULT)
    assert [c.status for c in report.comparisons] == [GateStatus.REGRESSED]
