"""An analyzer whose trigger never arrives (its line unwired) costs one acquisition timeout per device and
analyzer, not one per test: the first energy test waits it out and fails with the analyzer's own
InstrumentTimeout; every later test on that device and analyzer that needs the trigger fails at once,
naming the device, the analyzer, the test that timed out, what was seen and what to do.

The bench is the simulated one: the analyzer twin's `lost-trigger` fault (sim/analyzer_faults.py) arms
every acquisition and never triggers it, which is what an unwired trigger input looks like from the host.
Acquisitions are counted from the twin's log of received commands (each INITiate starts one), not timed.
"""

from __future__ import annotations

import json
import re

import pytest

from .conftest import REPO

ENERGY_SUITE = (REPO / "suites" / "test_energy.py").read_text(encoding="utf-8")

# Every acquisition of imx500's analyzer twin is armed and never triggered; the energy plan waits 0.5 s for
# a trigger instead of the simulated plan's 30 s. At the end, the INITiates each twin received are written out.
CONFTEST = """
import json
import pytest
from pytest_edgehil.measure.meter import EnergyPlan

UNWIRED = {"imx500"}
TWINS = {}


@pytest.fixture
def edgehil_analyzer(edgehil_analyzer, edgehil_bench, edgehil_pair):
    twin = edgehil_bench.analyzer_twin(edgehil_pair.device)
    if twin is not None and edgehil_pair.device not in TWINS:
        if edgehil_pair.device in UNWIRED:
            twin.inject("lost-trigger", count=1000)
        TWINS[edgehil_pair.device] = twin
    return edgehil_analyzer


@pytest.fixture
def edgehil_energy_plan():
    return EnergyPlan(windows=2, runs_per_window=3, timeout_s=0.5)


def pytest_sessionfinish(session):
    counts = {name: sum(c.strip().upper().startswith("INIT") for c in twin.commands)
              for name, twin in TWINS.items()}
    with open("acquisitions.json", "w") as f:
        json.dump(counts, f)
"""


def test_a_missing_trigger_is_waited_for_once_per_device_then_later_tests_fail_at_once(
        edgehil_project: pytest.Pytester) -> None:
    edgehil_project.makeconftest(CONFTEST)
    edgehil_project.makepyfile(test_energy=ENERGY_SUITE)
    result = edgehil_project.runpytest("--device=imx500", "--model=qsegment", "-p", "no:cacheprovider", "-rA")
    outcomes = result.parseoutcomes()
    # Every energy test the pair runs needs the trigger: all stay red (an error in the energy fixture), none
    # is skipped or passes.
    assert outcomes.get("passed", 0) == 0 and outcomes.get("skipped", 0) == 0, outcomes
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) >= 2, outcomes
    # One acquisition was started (the first window of the first test), not one per test.
    counts = json.loads((edgehil_project.path / "acquisitions.json").read_text(encoding="utf-8"))
    assert counts == {"imx500": 1}
    text = result.stdout.str()
    first = "test_energy.py::test_inference_energy[qsegment-imx500]"
    assert re.search(r"still waiting for trigger after 0\.5 s", text)
    # The later tests' message: the device, the analyzer, the test that timed out, what was seen, what to do.
    later = [line for line in text.splitlines() if "earlier in this session" in line]
    assert later, text
    for needle in ("device 'imx500'", "TCPIP::127.0.0.1::", first, "no trigger within 0.5 s",
                   "TRIG:SOUR", "trigger wiring", "rerun"):
        assert any(needle in line for line in later), (needle, later)


def test_the_rule_holds_per_device_across_models_and_spares_a_wired_device(
        edgehil_project: pytest.Pytester) -> None:
    # Two models on the unwired imx500 (two energy measurements, so the energy cache cannot be what spares
    # the second one its wait) and a coral whose trigger is wired: its tests must pass, not be refused.
    edgehil_project.makeconftest(CONFTEST)
    edgehil_project.makepyfile(test_energy=ENERGY_SUITE)
    result = edgehil_project.runpytest("--device=imx500,coral", "--model=qsegment,tinytracker",
                                       "-p", "no:cacheprovider", "-v")
    counts = json.loads((edgehil_project.path / "acquisitions.json").read_text(encoding="utf-8"))
    assert counts["imx500"] == 1 and counts["coral"] >= 2, counts
    words = dict(re.findall(r"^test_energy\.py::(\S+) (PASSED|FAILED|ERROR|SKIPPED)", result.stdout.str(), re.MULTILINE))
    imx500 = {test: word for test, word in words.items() if test.endswith("-imx500]")}
    coral = {test: word for test, word in words.items() if test.endswith("-coral]")}
    assert len(imx500) >= 3 and set(imx500.values()) == {"ERROR"}, words
    fast = [line for line in result.stdout.lines if line.startswith("TriggerTimedOutEarlier: device 'imx500'")]
    assert len(fast) == len(imx500) - 1, fast
    # The wired device is measured: nothing of it errors (a skip is the meter's own refusal, not this rule's).
    assert coral and "PASSED" in coral.values() and not {"ERROR", "FAILED"} & set(coral.values()), words
