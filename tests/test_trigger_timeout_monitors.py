"""The LPM01A's trigger that never comes is a TriggerTimeout, so the once-per-session rule covers it.

With `trigsrc d7` the board sends nothing between `start` and the first rising edge on D7 (UM2269; its twin,
`sim/lpm01a_twin.py`, does the same). A capture that waits out its timeout with nothing received is
therefore an unwired or silent trigger line, typed TriggerTimeout with the board's port and the timeout;
`plugin/trigger_faults.trigger_once` then refuses later captures on that device without sending `start`
again (counted from the twin's own count of captures, not timed).

The USB monitors that stream from `arm()` (PPK2, Joulescope, Otii) have no trigger input: their start
timeout means the stream never began (source mode, USB), not a missing trigger, and stays InstrumentTimeout.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from pytest_edgehil.errors import InstrumentTimeout, TriggerTimedOutEarlier, TriggerTimeout
from pytest_edgehil.instruments.lpm01a import LPM01A
from pytest_edgehil.plugin.trigger_faults import trigger_once
from pytest_edgehil.sim.lpm01a_twin import LPM01ATwin
from pytest_edgehil.sim.timeline import ActivityTimeline

from .conftest import MODELS, REPO

TIMEOUT_S = 0.3


@pytest.fixture
def unwired():
    """An LPM01A twin whose D7 never rises (the device twin records no trigger span), and the driver on it."""
    twin = LPM01ATwin(ActivityTimeline(idle_power_w=0.01, supply_v=3.3))
    port = twin.start()
    monitor = LPM01A(port)
    try:
        yield twin, monitor
    finally:
        monitor.close()
        twin.close()


@pytest.mark.parametrize(("interval_s", "points", "fmt"), [(1e-5, 1000, "bin_hexa"), (1e-3, 100, "ascii_dec")])
def test_nothing_after_start_is_a_trigger_timeout_naming_the_board(unwired, interval_s, points, fmt) -> None:
    twin, monitor = unwired
    monitor.configure(voltage_v=3.3, current_range_a=0.045, sample_interval_s=interval_s, points=points)
    assert f"format {fmt}" in twin.commands and "trigsrc d7" in twin.commands
    monitor.arm()
    with pytest.raises(TriggerTimeout) as excinfo:
        monitor.wait_complete(TIMEOUT_S)
    assert excinfo.value.resource == monitor.resource and excinfo.value.timeout_s == TIMEOUT_S
    for needle in ("ST X-NUCLEO-LPM01A", monitor.resource, f"{TIMEOUT_S:g} s", "D7", "trigger pin"):
        assert needle in str(excinfo.value), needle


def test_a_second_capture_on_the_unwired_board_is_refused_without_starting_it(unwired) -> None:
    twin, monitor = unwired
    session = SimpleNamespace(stash=pytest.Stash())
    monitor.configure(voltage_v=3.3, current_range_a=0.045, sample_interval_s=1e-3, points=100)

    def capture(test: str) -> None:
        with trigger_once(session, "cortex-m4", monitor.resource, test):  # type: ignore[arg-type]
            monitor.arm()
            monitor.wait_complete(TIMEOUT_S)

    with pytest.raises(TriggerTimeout) as first:
        capture("t.py::test_a")
    assert not isinstance(first.value, TriggerTimedOutEarlier)
    with pytest.raises(TriggerTimedOutEarlier) as later:
        capture("t.py::test_b")
    assert twin.captures == 1  # `start` was sent once
    assert later.value.first_test == "t.py::test_a" and later.value.device == "cortex-m4"
    assert str(first.value) in str(later.value)  # what the board said, its D7 hint included, is repeated


def test_a_wired_board_still_measures(unwired) -> None:
    """The silence check must not refuse a capture whose trigger comes: the twin with its trigger from
    software (`trigsrc sw` is what the twin defaults to before configure) streams at once."""
    twin, monitor = unwired
    monitor.configure(voltage_v=3.3, current_range_a=0.045, sample_interval_s=1e-3, points=100)
    twin.settings["trigsrc"] = "sw"  # as if D7 rose at once
    monitor.arm()
    monitor.wait_complete(5.0)
    assert monitor.fetch_trace().current_a.size == 100



class _StallingTwin(LPM01ATwin):
    """Sends the first half of its first reply after `start`'s ack, then nothing: a capture that began
    (its trigger came) and stopped part-way, as a USB link that drops out does."""

    def __init__(self, timeline: ActivityTimeline) -> None:
        super().__init__(timeline)
        self.stalled = False

    def write(self, data: bytes) -> bool:
        if self.captures == 0 or b"ack" in data:
            return super().write(data)
        if self.stalled:
            return True
        self.stalled = True
        return super().write(data[: len(data) // 2])


def test_a_capture_that_stops_part_way_is_not_blamed_on_the_trigger() -> None:
    twin = _StallingTwin(ActivityTimeline(idle_power_w=0.01, supply_v=3.3))
    monitor = LPM01A(twin.start())
    try:
        monitor.configure(voltage_v=3.3, current_range_a=0.045, sample_interval_s=1e-5, points=1000)
        twin.settings["trigsrc"] = "sw"  # the trigger comes at once
        monitor.arm()
        with pytest.raises(InstrumentTimeout) as excinfo:
            monitor.wait_complete(TIMEOUT_S)
    finally:
        monitor.close()
        twin.close()
    assert twin.stalled and not isinstance(excinfo.value, TriggerTimeout)
    assert "no end mark" in str(excinfo.value) and "stopped part-way" in str(excinfo.value)


# The energy suite on a Cortex-M4 twin measured by the LPM01A twin whose D7 never rises; the plan waits
# 0.5 s. At the end, how many captures the board was asked to start.
UNWIRED_CONFTEST = '''

import json as _json
import time as _time

from pytest_edgehil.measure.meter import EnergyPlan as _Plan

_TWINS = {}


class _Unwired:
    """The device twin's timeline as the LPM01A twin sees it, with no trigger edge ever reaching D7."""

    def __init__(self, timeline):
        self._timeline = timeline

    def wait_for_trigger(self, after_s, timeout_s):
        _time.sleep(timeout_s)
        return None

    def __getattr__(self, name):
        return getattr(self._timeline, name)


@pytest.fixture
def edgehil_analyzer(edgehil_analyzer, edgehil_bench, edgehil_pair):
    twin = edgehil_bench.monitor_twins.get(edgehil_pair.device)
    if twin is not None and edgehil_pair.device not in _TWINS:
        twin.timeline = _Unwired(twin.timeline)
        _TWINS[edgehil_pair.device] = twin
    return edgehil_analyzer


@pytest.fixture
def edgehil_energy_plan():
    return _Plan(windows=2, runs_per_window=3, timeout_s=0.5)


def pytest_sessionfinish(session):
    with open("captures.json", "w") as f:
        _json.dump({name: twin.captures for name, twin in _TWINS.items()}, f)
'''


def test_the_plugin_waits_for_the_lpm01a_trigger_once_per_session(pytester: pytest.Pytester) -> None:
    suites = REPO / "suites"
    pytester.makeini(f"[pytest]\nedgehil_models_dir = {MODELS}\n")
    pytester.makefile(".toml", lab='[devices.cortex-m4]\nkind = "cortex-m4"\nsimulated = true\n'
                                   'twin_monitor = "lpm01a"\n')
    pytester.makeconftest((suites / "conftest.py").read_text(encoding="utf-8") + UNWIRED_CONFTEST)
    pytester.makepyfile(test_energy=(suites / "test_energy.py").read_text(encoding="utf-8"))
    result = pytester.runpytest("test_energy.py", "--lab=lab.toml", f"--budgets={REPO / 'fixtures' / 'budgets.toml'}",
                                "--model=lowres_seg", "-p", "no:cacheprovider", "-v")
    words = dict(re.findall(r"^test_energy\.py::(\S+) (PASSED|FAILED|ERROR|SKIPPED)", result.stdout.str(), re.MULTILINE))
    measured = {test: word for test, word in words.items() if test.endswith("[lowres_seg-cortex-m4]")}
    assert len(measured) >= 2 and set(measured.values()) == {"ERROR"}, words
    assert json.loads((pytester.path / "captures.json").read_text(encoding="utf-8")) == {"cortex-m4": 1}
    text = result.stdout.str()
    assert "TriggerTimeout: ST X-NUCLEO-LPM01A" in text and "Arduino pin D7" in text
    later = [line for line in result.stdout.lines if line.startswith("TriggerTimedOutEarlier: device 'cortex-m4'")]
    assert len(later) == len(measured) - 1 and all("Arduino pin D7" in line for line in later), later
