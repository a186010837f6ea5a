"""Power-analyzer drivers against pyvisa-sim definitions of each instrument (set-up dialogues only).

pyvisa-sim cannot serve binary blocks, so captures are tested against the TCP analyzer twin
(tests/test_analyzer_twin.py); here: identification, the settings each driver sends, validation
that raises instead of clamping, the instrument's own error text, timeouts and the state machine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import pyvisa

from pytest_edgehil.errors import (
    ConfigError,
    InstrumentError,
    InstrumentTimeout,
    MeasurementError,
    ScpiError,
)
from pytest_edgehil.instruments import driver_for_idn, known_models, open_analyzer, register_analyzer
from pytest_edgehil.instruments.keithley_2281s import Keithley2281S
from pytest_edgehil.instruments.keysight_n6705c import KeysightN6705C
from pytest_edgehil.instruments.registry import unregister_analyzer
from pytest_edgehil.instruments.rs_ngm202 import RsNgm202
from pytest_edgehil.instruments.scpi import (
    Setting,
    check_plausible,
    decode_block,
    encode_float32_block,
    float32_payload,
    parse_error,
)

INSTRUMENTS = Path(__file__).resolve().parent.parent / "instruments"

SIMULATED = {
    "n6705c": ("TCPIP0::192.168.10.5::inst0::INSTR", KeysightN6705C, 5.12e-6),
    "k2281s": ("USB0::0x05E6::0x2281::04386580::INSTR", Keithley2281S, 1e-3),
    "ngm202": ("TCPIP0::192.168.10.6::5025::SOCKET", RsNgm202, 2e-6),
}


def open_sim(name: str):
    resource, _driver, _interval = SIMULATED[name]
    manager = pyvisa.ResourceManager(f"{INSTRUMENTS / (name + '.yaml')}@sim")
    return open_analyzer(resource, resource_manager=manager, timeout_ms=500)


@pytest.mark.parametrize("name", sorted(SIMULATED))
def test_idn_picks_the_driver_and_configure_reads_back(name: str) -> None:
    _resource, driver, interval_s = SIMULATED[name]
    analyzer = open_sim(name)
    try:
        assert type(analyzer) is driver
        assert analyzer.idn.split(",")[1].strip() in analyzer.idn
        analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=interval_s, points=100)
        capture = analyzer.capture
        assert capture is not None
        assert capture.points == 100
        assert capture.sample_interval_s == pytest.approx(interval_s)
        assert capture.current_range_a == pytest.approx(0.1)
        assert analyzer.read_setting("voltage_v") == pytest.approx(3.3)
    finally:
        analyzer.close()


def test_keysight_digitizes_voltage_only_where_the_module_can_do_both() -> None:
    analyzer = open_sim("n6705c")
    try:
        analyzer.configure(voltage_v=1.8, current_range_a=0.1, sample_interval_s=5.12e-6, points=10)
        assert analyzer.capture is not None and not analyzer.capture.digitize_voltage
        assert analyzer.read_setting("digitize_voltage") == "OFF"
        analyzer.configure(voltage_v=1.8, current_range_a=0.1, sample_interval_s=10.24e-6, points=10,
                           pretrigger_points=3)
        assert analyzer.capture is not None and analyzer.capture.digitize_voltage
        assert analyzer.read_setting("digitize_voltage") == "ON"
        assert analyzer.read_setting("offset_points") == -3
    finally:
        analyzer.close()


def test_out_of_range_setting_raises_with_bounds_and_is_not_sent() -> None:
    analyzer = open_sim("n6705c")
    try:
        analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=10.24e-6, points=10)
        with pytest.raises(ConfigError, match=r"voltage_v = 25 V is out of range.*0 to 20 V"):
            analyzer.configure(voltage_v=25.0, current_range_a=0.1, sample_interval_s=10.24e-6, points=10)
        assert analyzer.read_setting("voltage_v") == pytest.approx(3.3)  # not clamped to 20
        with pytest.raises(ConfigError, match="sample_interval_s = 1e-06 s is out of range"):
            analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=1e-6, points=10)
        with pytest.raises(ConfigError, match="pretrigger_points = 10"):
            analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=10.24e-6, points=10,
                               pretrigger_points=10)
    finally:
        analyzer.close()


@pytest.mark.parametrize("name", sorted(SIMULATED))
def test_instrument_error_text_is_raised_with_the_command(name: str) -> None:
    analyzer = open_sim(name)
    try:
        with pytest.raises(ScpiError, match=r'-113,"Undefined header".*after `BOGUS:HEADER 1`'):
            analyzer.send("BOGUS:HEADER 1")
        # The queue was drained: the next command goes through cleanly.
        analyzer.send("*CLS")
    finally:
        analyzer.close()


def test_close_drains_the_error_queue_and_raises_what_was_left() -> None:
    analyzer = open_sim("ngm202")
    analyzer.link.write("NOT:A:COMMAND")  # bypasses the per-command drain on purpose
    with pytest.raises(ScpiError, match="checked at close"):
        analyzer.close()
    assert analyzer.state == "closed"


@pytest.mark.parametrize("name", sorted(SIMULATED))
def test_a_capture_that_never_completes_times_out_with_what_to_check(name: str) -> None:
    _resource, _driver, interval_s = SIMULATED[name]
    analyzer = open_sim(name)
    try:
        analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=interval_s, points=10)
        analyzer.arm("EXT")
        with pytest.raises(InstrumentTimeout) as info:
            analyzer.wait_complete(0.05)
        message = str(info.value)
        assert analyzer.resource in message and "pyvisa-info" in message
        if isinstance(analyzer, RsNgm202):  # FastLog has no trigger: the stream offered no chunk in time
            assert "FastLog held 0 of 10 pairs" in message and "a chunk comes every 250 ms" in message
            assert "FLOG:TARGet is SCPI" in message
        else:
            assert "waiting for trigger" in message and "trigger cabling" in message
    finally:
        analyzer.close()


def test_methods_called_out_of_order_name_the_method_and_state() -> None:
    analyzer = open_sim("n6705c")
    try:
        with pytest.raises(InstrumentError, match=r"fetch_trace\(\) called while the driver is 'open'"):
            analyzer.fetch_trace()
        with pytest.raises(InstrumentError, match=r"arm\(\) called while"):
            analyzer.arm()
        analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=10.24e-6, points=10)
        with pytest.raises(ConfigError, match="trigger source 'IMM'"):
            analyzer.arm("IMM")
    finally:
        analyzer.close()


def test_keithley_says_plainly_when_a_window_is_too_short_to_resolve() -> None:
    analyzer = open_sim("k2281s")
    try:
        with pytest.raises(MeasurementError, match="shorter than it can resolve"):
            analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=5e-6, points=100)
        with pytest.raises(MeasurementError, match="cannot resolve"):
            analyzer.check_resolves(0.23e-3)  # one MLPerf-Tiny-sized inference
        analyzer.check_resolves(0.5)
        with pytest.raises(ConfigError, match="no pre-trigger"):
            analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=1e-3, points=100,
                               pretrigger_points=5)
    finally:
        analyzer.close()
    digitizer = open_sim("n6705c")
    try:
        digitizer.check_resolves(0.23e-3)  # 5.12 us sampling resolves it
    finally:
        digitizer.close()


def test_ngm_rejects_an_interval_it_has_no_rate_for_instead_of_rounding() -> None:
    analyzer = open_sim("ngm202")
    try:
        with pytest.raises(ConfigError, match=r"cannot sample every 3 us.*2 us, 4 us"):
            analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=3e-6, points=10)
        analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=4e-6, points=10)
        assert analyzer.read_setting("sample_rate") == "S250K"
    finally:
        analyzer.close()


def test_keysight_refuses_an_interval_off_its_grid_instead_of_letting_it_round() -> None:
    # 25.6 us: a real N6705C runs it at 20.48 us (the guide's RES20 rounding), a 20 % shorter capture.
    analyzer = open_sim("n6705c")
    try:
        analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=10.24e-6, points=10)
        with pytest.raises(ConfigError, match=r"cannot sample every 25.6 us.*20.48 us or 40.96 us"):
            analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=25.6e-6, points=10)
        assert analyzer.read_setting("sample_interval_s") == pytest.approx(10.24e-6)  # nothing was sent
        analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=40.96e-6, points=10)
        assert analyzer.capture is not None and analyzer.capture.sample_interval_s == pytest.approx(40.96e-6)
    finally:
        analyzer.close()


def test_every_write_and_read_is_logged_under_the_resource(caplog: pytest.LogCaptureFixture) -> None:
    resource = SIMULATED["n6705c"][0]
    with caplog.at_level(logging.DEBUG, logger="pytest_edgehil.visa"):
        analyzer = open_sim("n6705c")
        analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=10.24e-6, points=10)
        analyzer.close()
    ours = [r for r in caplog.records if r.name == f"pytest_edgehil.visa.{resource}"]
    messages = [r.getMessage() for r in ours]
    assert "write VOLT 3.3,(@1)" in messages
    assert any(m.startswith("read Keysight Technologies,N6705C") for m in messages)
    assert messages.count("write SYST:ERR?") >= 10  # drained after every setting


def test_unknown_idn_lists_the_known_models() -> None:
    with pytest.raises(InstrumentError) as info:
        driver_for_idn("ACME Corp,PowerMeter 9000,1,1.0")
    for model in known_models():
        assert model in str(info.value)
    assert driver_for_idn("Agilent Technologies,N6705B,MY1,D.01") is KeysightN6705C
    assert driver_for_idn("Rohde&Schwarz,NGM202,1/2,03.034") is RsNgm202


def test_registering_the_same_idn_patterns_twice_is_rejected() -> None:
    @register_analyzer(r"ACME", r"PM9000")
    class First(KeysightN6705C):
        pass

    try:
        with pytest.raises(ConfigError, match="already taken by First"):
            @register_analyzer(r"ACME", r"PM9000")
            class Second(KeysightN6705C):
                pass
        assert driver_for_idn("ACME,PM9000,1,1") is First
    finally:
        unregister_analyzer(First)


def test_a_driver_module_imported_again_replaces_its_own_entry() -> None:
    """pytester's in-process runs drop the modules a run imported; the next run imports a driver module
    afresh and its decorator runs again. Refused as a duplicate, every energy test of the second run
    errored ("already taken by Keithley2281S"). The same module and class name is the same driver."""
    def define() -> type:
        return register_analyzer(r"ACME", r"PM9001")(type("Reimported", (KeysightN6705C,), {"__module__": "acme.pm"}))

    first = define()
    again: type | None = None
    try:
        again = define()
        assert again is not first and driver_for_idn("ACME,PM9001,1,1") is again
    finally:
        for driver in (first, again):
            if driver is not None:
                unregister_analyzer(driver)


def test_connection_failure_names_the_resource_and_what_to_check() -> None:
    resource = "TCPIP::127.0.0.1::1::SOCKET"  # nothing listens on port 1
    with pytest.raises(InstrumentError) as info:
        open_analyzer(resource, resource_manager=pyvisa.ResourceManager("@py"), timeout_ms=500)
    assert resource in str(info.value) and "pyvisa-info" in str(info.value)


def test_setting_validation_never_clamps() -> None:
    points = Setting("points", "SENS:SWE:POIN", "points", int, 1, 10)
    with pytest.raises(ConfigError, match="1 to 10 points"):
        points.check(11, model="m")
    with pytest.raises(ConfigError, match="whole number"):
        points.check(2.5, model="m")
    source = Setting("trigger_source", "TRIG:ACQ:SOUR", kind=str, choices=("EXT", "BUS"))
    assert source.check("ext", model="m") == "EXT"
    with pytest.raises(ConfigError, match="one of EXT, BUS"):
        source.check("TIMER", model="m")


def test_block_round_trip_and_error_reply_parsing() -> None:
    values = np.array([0.0, 1.5e-3, -2.25, 3.3], dtype=np.float32)
    block = encode_float32_block(values, big_endian=True)
    assert block.startswith(b"#216")
    assert np.array_equal(np.frombuffer(decode_block(block), dtype=">f4"), values)
    assert parse_error('-222,"Data out of range"') == (-222, "Data out of range")
    assert parse_error('+0,"No error"') == (0, "No error")


def test_plausibility_check_catches_byte_swapped_currents() -> None:
    rng = np.random.default_rng(1)
    full_scale_a = 0.1
    lsb = full_scale_a / 2**18
    current_a = np.round(rng.uniform(0.002, 0.08, 64) / lsb) * lsb  # what a digitizer reports
    check_plausible(current_a, full_scale=full_scale_a, what="current", where="test", hint="h")
    swapped = np.frombuffer(float32_payload(current_a, big_endian=True), dtype="<f4").astype(float)
    with pytest.raises(InstrumentError, match="mis-decoded"):
        check_plausible(swapped, full_scale=full_scale_a, what="current", where="test", hint="h")
    volts = np.full(8, 3.3)
    swapped_v = np.frombuffer(float32_payload(volts, big_endian=True), dtype="<f4").astype(float)
    with pytest.raises(InstrumentError, match="mis-decoded"):
        check_plausible(swapped_v, full_scale=20.0, what="voltage", where="test", hint="h", expected=3.3)


def test_supported_interval_is_the_nearest_one_at_or_above_the_request() -> None:
    keysight, ngm, keithley = open_sim("n6705c"), open_sim("ngm202"), open_sim("k2281s")
    try:
        assert keysight.supported_sample_interval_s(5e-6) == pytest.approx(5.12e-6)
        assert keysight.supported_sample_interval_s(10.24e-6) == pytest.approx(10.24e-6)
        # The N6705C guide's grid (tests/contract/test_keysight_n6705c.py quotes it): 10.24 us steps up
        # to 20.48 us, 20.48 us steps above it (RES20), so nothing between 10.24 and 20.48 or 20.48 and 40.96.
        assert keysight.supported_sample_interval_s(11e-6) == pytest.approx(20.48e-6)
        assert keysight.supported_sample_interval_s(21e-6) == pytest.approx(40.96e-6)
        assert keysight.supported_sample_interval_s(25.6e-6) == pytest.approx(40.96e-6)
        assert keysight.supported_sample_interval_s(41e-6) == pytest.approx(61.44e-6)
        assert ngm.supported_sample_interval_s(5e-6) == pytest.approx(20e-6)  # S050K: no rate between 4 and 20 us
        assert ngm.supported_sample_interval_s(2e-6) == pytest.approx(2e-6)
        assert keithley.supported_sample_interval_s(5e-6) == pytest.approx(1e-3)
        # What it returns, configure accepts unchanged.
        ngm.configure(voltage_v=3.3, current_range_a=0.1, points=10,
                      sample_interval_s=ngm.supported_sample_interval_s(5e-6))
        assert keysight.max_points == 524288 and keithley.max_points == 2500
    finally:
        for analyzer in (keysight, ngm, keithley):
            analyzer.close()
