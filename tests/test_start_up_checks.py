"""Counts from the ini and --analyzer's missing supply settings are refused once, at start-up or with a
typed reason, never as a traceback per test (found by a new-user review)."""

from __future__ import annotations

import pytest

from .conftest import REPO


@pytest.mark.parametrize(("name", "value"), [("edgehil_latency_runs", "abc"), ("edgehil_energy_windows", "0"),
                                             ("edgehil_energy_runs", "-5"), ("edgehil_latency_runs", "nan")])
def test_a_bad_count_in_the_ini_stops_the_run_at_start_up(edgehil_project, name, value):
    edgehil_project.makepyfile(test_latency=(REPO / "suites" / "test_latency.py").read_text())
    result = edgehil_project.runpytest("--device=coral", "-o", f"{name}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*ini value {name} = '{value}' must be a whole number >= 1*"])


def test_analyzer_without_the_boards_supply_settings_says_which_are_missing(edgehil_project):
    edgehil_project.makepyfile(test_energy=(REPO / "suites" / "test_energy.py").read_text())
    result = edgehil_project.runpytest("--device=coral", "--model=tinytracker", "-rs",
                                       "--analyzer=TCPIP::127.0.0.1::1::SOCKET")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0 and outcomes.get("failed", 0) == 0, result.stdout.str()
    assert "AssertionError" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*no power analyzer wired*current_range_a*"])
