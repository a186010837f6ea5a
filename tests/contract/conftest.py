"""The SCPI contract suite: what each instrument's programming manual says it does, sent as raw
pyvisa writes and queries (never through our drivers).

By default every test runs against the analyzer twin of each instrument (a live idle timeline with a
synthetic periodic load, so supply current always flows). With `--analyzer RESOURCE` the same tests
run against that resource instead (a lab's real instrument): tests for another instrument than its
`*IDN?` names are skipped, and tests that need the twin's truth (`twin_only`) are skipped. The
resource is reached once per session first: if it cannot be (refused, unknown host, silent), the first
test errors with the InstrumentError naming the resource and what to check, and every other test skips
pointing at it, rather than each repeating pyvisa's traceback.

Safety on a real bench: the capture tests program 3.3 V and turn the output on; run the suite with the
device under test disconnected (or at a voltage it takes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pyvisa

from pytest_edgehil.errors import InstrumentError
from pytest_edgehil.instruments.registry import open_visa
from pytest_edgehil.instruments.visa_link import VisaLink

DIALECT_IDN = {  # dialect -> (manufacturer pattern, model pattern) of its *IDN? reply
    "keysight-n6705c": (r"(Keysight|Agilent) Technologies", r"N6705[ABC]?\b"),
    "rs-ngm202": (r"Rohde\s*&\s*Schwarz", r"NGM20[12]\b"),
    "keithley-2281s": (r"Keithley", r"(MODEL\s+)?2281S"),
}
LOAD = (0.02, 0.005, 0.5)  # the twin's synthetic load: 5 ms at 0.5 W every 20 ms
IDLE_POWER_W = 0.05
LIVE_GRACE_S = 30.0  # the live timeline covers a window in real time: wait for it
TIMEOUT_MS = 10000
# The --analyzer resource's *IDN? reply, or the InstrumentError that reaching it raised: asked once a session.
reached_key = pytest.StashKey["str | InstrumentError"]()


@dataclass
class Target:
    """One instrument under contract: a raw pyvisa session, its dialect, and its twin if simulated."""

    handle: pyvisa.resources.MessageBasedResource
    dialect: str
    twin: object | None  # AnalyzerTwin when simulated

    def check(self, command: str) -> None:
        """Send a command, then assert the error queue is empty and the session in step (*OPC? = 1).

        INITiate is overlapped: the acquisition it starts is a pending operation until its trigger system
        is idle again (Keysight's and Keithley's *OPC text), so `*OPC?` after it would hold off the `*TRG`
        behind it; it gets the error query only."""
        self.handle.write(command)
        assert self.handle.query("SYST:ERR?") == '+0,"No error"', command
        if not command.lstrip(":").upper().startswith("INIT"):
            assert self.handle.query("*OPC?") == "1", f"reply shifted after {command!r}"


def dialect_of(idn: str) -> str | None:
    parts = [part.strip() for part in idn.split(",")]
    for dialect, (maker, model) in DIALECT_IDN.items():
        if len(parts) > 1 and re.search(maker, parts[0], re.IGNORECASE) and re.search(model, parts[1], re.IGNORECASE):
            return dialect
    return None


def reach(config: pytest.Config, resource: str) -> str:
    """The `*IDN?` reply of `resource`, asked once a session through the product's open path (typed errors).

    The first caller gets the InstrumentError if the instrument cannot be reached; later callers skip,
    naming the resource and pointing at that error (one failure, not one traceback per test)."""
    reached = config.stash.get(reached_key, None)
    if reached is None:
        try:
            handle = open_visa(resource, timeout_ms=TIMEOUT_MS)
            try:
                reached = VisaLink(handle, resource).query("*IDN?")
            finally:
                handle.close()
        except InstrumentError as exc:
            config.stash[reached_key] = exc
            raise
        config.stash[reached_key] = reached
    if isinstance(reached, InstrumentError):
        pytest.skip(f"analyzer {resource} could not be reached ({type(reached).__name__}); the first test's "
                    "error says why and what to check")
    return reached


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "instrument(dialect): a test of one instrument's programming manual")
    config.addinivalue_line("markers", "twin_only: needs the analyzer twin's truth or its synthetic load")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" not in metafunc.fixturenames:
        return
    resource = metafunc.config.getoption("--analyzer", default=None)
    marker = metafunc.definition.get_closest_marker("instrument")
    if resource:
        metafunc.parametrize("target", [f"visa:{resource}"], indirect=True)
    elif marker is not None:
        metafunc.parametrize("target", [f"twin:{marker.args[0]}"], indirect=True)
    else:
        metafunc.parametrize("target", [f"twin:{name}" for name in DIALECT_IDN], indirect=True)


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    kind, _, name = str(request.param).partition(":")
    marker = request.node.get_closest_marker("instrument")
    manager = pyvisa.ResourceManager("@py")
    if kind == "visa":
        if request.node.get_closest_marker("twin_only"):
            pytest.skip("needs the analyzer twin (its truth or its synthetic load)")
        dialect = dialect_of(reach(request.config, name))
        if marker is not None and marker.args[0] != dialect:
            pytest.skip(f"written for {marker.args[0]}; {name} is {dialect or 'another instrument'}")
        handle = manager.open_resource(name, read_termination="\n", write_termination="\n", timeout=TIMEOUT_MS)
        handle.write("*RST")
        handle.write("*CLS")
        try:
            yield Target(handle, dialect or "unknown", None)
        finally:
            handle.close()
        return
    # Imported here: the contract against real hardware needs no simulation.
    from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
    from pytest_edgehil.sim.live_bench import LiveTimeline, PeriodicLoad
    from pytest_edgehil.sim.timeline import ActivityTimeline

    timeline = ActivityTimeline(idle_power_w=IDLE_POWER_W, supply_v=3.3)
    live = LiveTimeline(timeline, PeriodicLoad(*LOAD)).start()
    twin = AnalyzerTwin(timeline, dialect=name, seed=1, grace_s=LIVE_GRACE_S)
    try:
        handle = manager.open_resource(twin.start(), read_termination="\n", write_termination="\n", timeout=5000)
        try:
            yield Target(handle, name, twin)
        finally:
            handle.close()
    finally:
        twin.close()
        live.stop()
