"""Baseline records without a test id, and tests renamed, where a run keys a pair × metric by test
(results/gate_origins.py).

Before: a baseline whose records carry no test name (a file written before records carried one, or a
lab's own writer) against a run where two tests record the pair × metric with different values gave
MISSING + NEW + NEW, and a test renamed beside another one recording its metric gave MISSING + NEW: neither
blocks by default, and neither said why, so a regression of the renamed test passed unremarked. The
figures expected here are numpy medians of the samples given; the verdicts follow docs/gate.md's rule.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.cli import EXIT_OK, EXIT_REGRESSION, main
from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, GateStatus, compare_results, compare_sessions

from .test_gate_origins import LOOP, SPREAD, WINDOW, energy
from .test_gate_semantics import save

DEFAULT = FailOn.parse(DEFAULT_FAIL_ON)
WITH_UNKNOWN = FailOn.parse(DEFAULT_FAIL_ON + ",unknown")


def no_id(scale: float):
    return replace(energy(LOOP, scale), test="")


# ------------------------------------------------------------------------------ baseline records without a test id


def test_a_baseline_without_test_ids_against_two_tests_is_one_unknown_naming_them() -> None:
    report = compare_results([no_id(0.011)], [energy(LOOP, 0.011), energy(WINDOW, 0.016)], DEFAULT)
    (c,) = report.comparisons  # one verdict, not MISSING + NEW + NEW
    assert (c.pair, c.metric, c.status) == ("qsegment-imx500", "inference_mj", GateStatus.UNKNOWN)
    assert c.base_value == pytest.approx(float(np.median(SPREAD * 0.011)))
    for text in ("no test id", "2 tests", LOOP, WINDOW, "re-baseline"):
        assert text in c.note, (text, c.note)
    assert not c.blocking and report.passed  # not blocking by default...
    assert any(line.startswith("UNKNOWN qsegment-imx500 inference_mj") and WINDOW in line
               for line in report.detail_lines())  # ...but in the summary
    assert not compare_results([no_id(0.011)], [energy(LOOP, 0.011), energy(WINDOW, 0.016)], WITH_UNKNOWN).passed


def test_edgehil_compare_says_why_a_baseline_without_test_ids_is_not_compared(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = save(tmp_path / "old-writer.json", [no_id(0.011)])
    new = save(tmp_path / "new.json", [energy(LOOP, 0.011), energy(WINDOW, 0.016 * 1.3)])
    # The run's two figures are a DUPLICATES input problem (blocking unless allowed); allowed, the verdict says why.
    assert main(["compare", str(base), str(new), "--history", "off"]) == EXIT_REGRESSION
    capsys.readouterr()
    assert main(["compare", str(base), str(new), "--history", "off", "--allow", "duplicates"]) == EXIT_OK
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("UNKNOWN qsegment-imx500 inference_mj"))
    assert "old-writer.json" in line and "no test id" in line and LOOP in line and WINDOW in line
    assert "NEW" not in out.split("edgehil gate")[-1].split(";")[0]  # the headline counts no NEW


def test_a_baseline_session_without_test_ids_is_not_guessed_where_another_session_names_two_tests() -> None:
    """An older session without ids beside a newer one where two tests record the pair × metric: the id-less
    record may be either test's figure (here it is near the loop test's, but see the next test, where it is
    not), so this run's only test is compared with the session that names it, and the id-less record is
    one UNKNOWN naming its file (it was taken as the loop test's: a guess)."""
    older = [no_id(0.011)]
    newer = [energy(LOOP, 0.0112), energy(WINDOW, 0.016)]
    report = compare_sessions([older, newer], [energy(LOOP, 0.0111)], DEFAULT, base_sources=["old.json", "new.json"])
    by_origin = {c.origin: c for c in report.comparisons}
    assert set(by_origin) == {LOOP, WINDOW, ""}
    loop = by_origin[LOOP]
    assert loop.n_base == 1 and loop.status is GateStatus.SAME
    assert loop.base_value == pytest.approx(float(np.median(SPREAD * 0.0112)))
    assert by_origin[WINDOW].status is GateStatus.MISSING
    untested = by_origin[""]
    assert untested.status is GateStatus.UNKNOWN and "old.json" in untested.note and WINDOW in untested.note


def test_a_baseline_without_test_ids_against_one_test_is_compared_and_a_rise_blocks() -> None:
    report = compare_results([no_id(0.011)], [energy(LOOP, 0.011 * 1.3)], DEFAULT)
    (c,) = report.comparisons
    assert c.status is GateStatus.REGRESSED and c.ratio == pytest.approx(1.3) and not report.passed


# ---------------------------------------------------------------------------------------------- renamed tests


@pytest.mark.parametrize("renamed", [
    "suites/test_window.py::test_window_energy_v2[qsegment-imx500]",  # renamed
    "suites/test_window.py::test_window_energy[qsegment-imx500-int8]",  # re-parametrized
])
def test_a_renamed_test_beside_another_is_missing_with_a_note_naming_the_new_id(renamed: str) -> None:
    base = [energy(LOOP, 0.011), energy(WINDOW, 0.016)]
    new = [energy(LOOP, 0.011), energy(renamed, 0.016 * 1.3)]  # +30 % under the new id
    report = compare_results(base, new, DEFAULT)
    by_origin = {c.origin: c for c in report.comparisons}
    assert by_origin[WINDOW].status is GateStatus.MISSING and by_origin[renamed].status is GateStatus.NEW
    line = next(line for line in report.detail_lines() if line.startswith("MISSING"))
    assert WINDOW in line and "renamed?" in line and renamed in line and "qsegment-imx500 inference_mj" in line


def test_a_test_renamed_alone_is_still_compared() -> None:
    """One test per pair × metric on each side: the pair × metric is not keyed by test, so a rename changes nothing."""
    report = compare_results([energy(WINDOW, 0.016)], [energy(WINDOW + "-v2", 0.016 * 1.3)], DEFAULT)
    (c,) = report.comparisons
    assert c.status is GateStatus.REGRESSED and not report.passed


def test_a_baseline_record_without_test_id_is_not_given_to_one_test_where_the_baseline_shows_two() -> None:
    """An old session without ids beside a newer one where two tests record the pair × metric (the loop test
    0.011, the window test 0.016), and this run collects the window test alone (+30 %). The id-less 0.011 is
    the loop test's figure by every sign, yet was taken as the window test's, the only one of this run: the
    baseline then 'spread 30 %' between sessions and the +30 % passed as UNKNOWN. Expected: the window test is
    judged on the session that names it (as with that session alone: REGRESSED), the id-less record UNKNOWN."""
    sessions = [[no_id(0.011)], [energy(LOOP, 0.011), energy(WINDOW, 0.016)]]
    alone = compare_sessions(sessions[1:], [energy(WINDOW, 0.016 * 1.3)], DEFAULT)
    expected = next(c for c in alone.comparisons if c.origin == WINDOW)
    assert expected.status is GateStatus.REGRESSED  # the independent reference: the session naming the test
    report = compare_sessions(sessions, [energy(WINDOW, 0.016 * 1.3)], DEFAULT, base_sources=["old.json", "night.json"])
    window = next(c for c in report.comparisons if c.origin == WINDOW)
    assert (window.status, window.base_value) == (GateStatus.REGRESSED, pytest.approx(expected.base_value))
    assert window.blocking and not report.passed
    untested = [c for c in report.comparisons if not c.origin]
    assert [c.status for c in untested] == [GateStatus.UNKNOWN] and "old.json" in untested[0].note, untested
