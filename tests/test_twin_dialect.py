"""The analyzer twin speaks exactly what each driver declares: no more, no less.

Every setting a driver declares is sent by the driver to the twin over pyvisa-py TCP and read back;
every header the twin answers is one the driver declares (or an IEEE 488.2 common command); a
driver whose declarations change gets a twin that follows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pyvisa

from pytest_edgehil.errors import ConfigError, InstrumentError, ScpiError
from pytest_edgehil.instruments import open_analyzer
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.instruments.keysight_n6705c import KeysightN6705C
from pytest_edgehil.instruments.rs_ngm202 import RsNgm202
from pytest_edgehil.instruments.scpi import Setting, SettingTable, Value
from pytest_edgehil.instruments.scpi_header import short_command
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
from pytest_edgehil.sim.instrument_rounding import INTERVAL_ROUNDING
from pytest_edgehil.sim.instrument_specs import TWIN_SPECS
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan
from pytest_edgehil.sim.twin_dialect import COMMON_HEADERS, DRIVERS, TwinDialect


def header_of(command: str) -> str:
    """The short-form header of a command (declared canonical, or as sent), read plainly (not with
    the twin's parser)."""
    return short_command(command).format(channel=1).split(" ")[0].rstrip("?").upper()


def declared_headers(driver: type[ScpiAnalyzer]) -> set[str]:
    commands = [*driver.start_commands, driver.stop_command, driver.status_query,
                *(fetch.query for fetch in driver.fetch_queries), *(query for _, query in driver.measure_queries),
                *([driver.status_event_query] if driver.status_event_query else [])]
    return {setting.short() for setting in driver.settings} | {header_of(c) for c in commands}


def valid_values(setting: Setting) -> list[Value]:
    """The *RST value and a second legal one (another choice, or the upper bound)."""
    if setting.choices:
        return [setting.choices[-1], setting.choices[0]]
    assert setting.maximum is not None and setting.reset is not None
    top = int(setting.maximum) if setting.kind is int else float(setting.maximum)
    return [setting.reset, min(top, 1000) if setting.kind is int else top]


def as_stored(driver: type[ScpiAnalyzer], setting: Setting, value: Value) -> Value:
    """What the instrument stores: its interval rounding (the twin's, from the manual: these values lie on
    the grid, tests/contract checks the rounding itself) and its range choice (the twin's data-sheet table)."""
    if setting.name == driver.roles.interval:
        rounding = INTERVAL_ROUNDING.get(driver.__name__)
        return rounding(value, {}) if rounding is not None else value
    if setting.name == driver.roles.current_range:
        spec = TWIN_SPECS.get(driver.__name__)
        return value if spec is None or spec.autoranging else spec.range_holding(float(value))
    return value


@pytest.fixture
def timeline() -> ActivityTimeline:
    bench = ActivityTimeline(idle_power_w=0.01, supply_v=3.3)
    bench.append(StageSpan("idle", 0.0, 0.25, 0.01))
    return bench


@pytest.fixture(params=sorted(DRIVERS))
def twin(request: pytest.FixtureRequest, timeline: ActivityTimeline) -> Iterator[AnalyzerTwin]:
    with AnalyzerTwin(timeline, dialect=str(request.param)) as analyzer_twin:
        yield analyzer_twin


def test_every_declared_setting_is_accepted_and_read_back(twin: AnalyzerTwin) -> None:
    driver = DRIVERS[twin.dialect_name]
    analyzer = open_analyzer(twin.resource, resource_manager=pyvisa.ResourceManager("@py"), timeout_ms=2000)
    try:
        assert type(analyzer) is driver
        for setting in driver.settings:
            for value in valid_values(setting):
                analyzer.apply(setting.name, value)  # raises ScpiError if the twin objects
                want = as_stored(driver, setting, setting.check(value, model="test"))
                got = analyzer.read_setting(setting.name)
                assert got == (pytest.approx(want) if isinstance(want, float) else want), setting.name
    finally:
        analyzer.close()


def test_the_twin_answers_exactly_the_declared_headers(twin: AnalyzerTwin) -> None:
    driver = DRIVERS[twin.dialect_name]
    assert twin.accepted_headers() - COMMON_HEADERS == declared_headers(driver)
    # Each other driver's settings that this one does not declare are undefined here.
    manager = pyvisa.ResourceManager("@py")
    handle = manager.open_resource(twin.resource, read_termination="\n", write_termination="\n",
                                   timeout=2000)
    try:
        foreign = {s.short() for other in DRIVERS.values() for s in other.settings} - declared_headers(driver)
        assert foreign, "the dialects share every header: this test would prove nothing"
        for header in sorted(foreign):
            handle.write(f"{header} 1")
            assert handle.query("SYST:ERR?") == '-113,"Undefined header"', header
    finally:
        handle.close()


def test_start_and_stop_commands_are_the_drivers(twin: AnalyzerTwin) -> None:
    driver = DRIVERS[twin.dialect_name]
    analyzer = open_analyzer(twin.resource, resource_manager=pyvisa.ResourceManager("@py"), timeout_ms=2000)
    try:
        interval_s = analyzer.supported_sample_interval_s(10e-6)
        analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=interval_s, points=20)
        analyzer.arm("EXT")
        # A triggered capture waits for its trigger; a FastLog stream (no trigger) is recording at once.
        assert analyzer.acquisition_status() == ("measuring" if driver.chunk_period_s else "waiting for trigger")
        analyzer.abort()  # the declared stop command; raises ScpiError if the twin objects
        assert analyzer.state == "configured"
        assert analyzer.acquisition_status() == "complete"
        with pytest.raises(InstrumentError, match=r"fetch_trace\(\) called while the driver is 'configured'"):
            analyzer.fetch_trace()
    finally:
        analyzer.close()
    sent = {header_of(c) for c in twin.commands}
    assert {header_of(c) for c in (*driver.start_commands, driver.stop_command)} <= sent


def test_a_changed_declaration_changes_the_twin(timeline: ActivityTimeline) -> None:
    extra = Setting("averaging", "SENS:AVER", "samples", int, 1, 16, reset=1)

    class Averaging(RsNgm202):
        settings = SettingTable([*RsNgm202.settings, extra])

    dialect = TwinDialect.from_driver(Averaging)
    assert "SENS:AVER" in dialect.accepted_headers()
    assert dialect.defaults["averaging"] == 1
    assert "SENS:AVER" not in TwinDialect.from_driver(RsNgm202).accepted_headers()

    class Forgetful(RsNgm202):
        settings = SettingTable([*RsNgm202.settings, Setting("filter", "SENS:FILT", kind=str,
                                                                 choices=("ON", "OFF"))])

    with pytest.raises(ValueError, match=r"no \*RST value for filter"):
        TwinDialect.from_driver(Forgetful)


def test_ranges_and_intervals_raise_instead_of_clamping() -> None:
    assert KeysightN6705C.select_current_range(0.05) == 0.1
    assert RsNgm202.select_current_range(0.05) == 0.1
    with pytest.raises(ConfigError, match=r"no current range holds 12 A.*0.01, 0.1, 1, 10 A"):
        RsNgm202.select_current_range(12.0)
    with pytest.raises(ConfigError, match="no rate is as slow"):
        RsNgm202.interval_rule.supported_s(1.0)
    # The interface's limits follow from the declarations.
    assert KeysightN6705C.max_points == KeysightN6705C.settings["points"].maximum
    assert RsNgm202.min_sample_interval_s == RsNgm202.interval_rule.minimum_s == 2e-6


def test_abort_is_refused_before_arming(timeline: ActivityTimeline) -> None:
    with AnalyzerTwin(timeline) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=pyvisa.ResourceManager("@py"))
        try:
            with pytest.raises(InstrumentError, match=r"abort\(\) called while the driver is 'open'"):
                analyzer.abort()
            analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=10.24e-6, points=20)
            with pytest.raises(ScpiError, match='-224,"Illegal parameter value"'):
                analyzer.send("INIT:ACQ NOW,(@1)")  # a start command with arguments the driver never sends
        finally:
            analyzer.close()


def test_a_capture_started_by_the_declared_commands_completes(timeline: ActivityTimeline) -> None:
    with AnalyzerTwin(timeline, dialect="keithley-2281s") as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=pyvisa.ResourceManager("@py"))
        try:
            analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=1e-3, points=10)
            analyzer.arm("BUS")
            analyzer.trigger_now()
            analyzer.wait_complete(timeout_s=2.0)
            trace = analyzer.fetch_trace()
        finally:
            analyzer.close()
    assert trace.current_a.size == 10 and trace.sample_interval_s == pytest.approx(1e-3)
    # TRAC:CLE then INIT, as declared, and the buffer read with its declared element list.
    assert [c for c in twin.commands if c in ("TRAC:CLE", "INIT")] == ["TRAC:CLE", "INIT"]
    assert 'DATA:DATA? "READ,SOUR,REL"' in twin.commands




def test_a_min_or_max_query_answers_the_limit_not_the_setting(timeline: ActivityTimeline) -> None:
    """`SENS:SWE:POIN? MAX,(@1)` is the instrument's limit (SCPI-99); answering the current setting would be
    a plausible wrong number (found by a new-user review)."""
    with AnalyzerTwin(timeline, dialect="keysight-n6705c") as twin:
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(twin.resource, read_termination="\n", write_termination="\n", timeout=2000)
        try:
            points = next(s for s in KeysightN6705C.settings if s.header.upper().endswith("POINTS"))
            assert points.minimum is not None and points.maximum is not None
            inst.write("SENS:SWE:POIN 1024,(@1)")
            assert float(inst.query("SENS:SWE:POIN? MAX,(@1)")) == points.maximum
            assert float(inst.query("SENS:SWE:POIN? MIN,(@1)")) == points.minimum
            assert float(inst.query("SENS:SWE:POIN? (@1)")) == 1024
            assert inst.query("SYST:ERR?").startswith("+0")
            inst.write("SENS:SWE:POIN? 5,(@1)")  # a number is no query parameter: an error, never a reply
            assert inst.query("SYST:ERR?").startswith("-224")
        finally:
            inst.close()
