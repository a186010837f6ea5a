"""The Keithley 2281S and R&S NGM202 twins driven by the manual client (`tests/scpi_manual_client.py`), never through
our drivers. Expected values are the manuals' (section in each comment)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import pyvisa

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.instruments.rs_ngm202 import RsNgm202
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan
from tests import scpi_manual_client as manual
from tests.scpi_manual_client import ManualSession

IDLE_W, SUPPLY_V = 0.033, 3.3


@pytest.fixture
def timeline() -> ActivityTimeline:
    bench = ActivityTimeline(idle_power_w=IDLE_W, supply_v=SUPPLY_V)
    bench.append(StageSpan("idle", 0.0, 0.05, IDLE_W))
    return bench


def open_twin(timeline: ActivityTimeline, dialect: str) -> tuple[AnalyzerTwin, ManualSession]:
    twin = AnalyzerTwin(timeline, dialect=dialect, seed=5)
    return twin, ManualSession.open(pyvisa.ResourceManager("@py"), twin.start())


@pytest.fixture
def k2281s(timeline: ActivityTimeline) -> Iterator[ManualSession]:
    twin, session = open_twin(timeline, "keithley-2281s")
    try:
        yield session
    finally:
        session.close()
        twin.close()


@pytest.fixture
def ngm202(timeline: ActivityTimeline) -> Iterator[ManualSession]:
    twin, session = open_twin(timeline, "rs-ngm202")
    try:
        yield session
    finally:
        session.close()
        twin.close()


def program(session: ManualSession, *commands: str) -> None:
    for command in commands:
        session.write(command)
        assert session.errors() == [], command


# --- Keithley 2281S: Model 2281S-20-6 Reference Manual (077114601, March 2019) ----------------------------------

@pytest.mark.parametrize(("nplc", "error"), [("0.002", None), ("12", None), ("0.001", manual.DATA_OUT_OF_RANGE),
                                             ("16", manual.DATA_OUT_OF_RANGE)])
def test_concurrent_nplc_takes_the_manuals_range(k2281s: ManualSession, nplc: str,
                                                 error: tuple[int, str] | None) -> None:
    # p. 7-120, :SENSe[n]:<function>:NPLCycles: 0.002 to 12 PLC at 50 Hz (15 at 60 Hz).
    k2281s.write(f"SENS:CONC:NPLC {nplc}")
    assert k2281s.errors() == ([] if error is None else [error])


def test_buffer_triples_after_a_bus_capture(k2281s: ManualSession) -> None:
    # p. 7-178/7-179, :DATA[n]:DATA? "READ,SOUR,REL": ASCII, RELative = seconds since the first stored reading.
    program(k2281s, "*RST", "*CLS", "ENTR:FUNC POW", "VOLT 3.3", "CURR 1", "OUTP ON", "SENS:CONC:NPLC 0.05",
            "TRAC:POIN 10", "TRIG:SOUR BUS", "TRAC:CLE", "INIT", "*TRG")
    values = np.array([float(v) for v in k2281s.query('DATA:DATA? "READ,SOUR,REL"').split(",")])
    assert k2281s.errors() == []
    assert values.size == 30
    assert values[2] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(values[2::3]) > 0)


def test_opc_query_waits_for_the_initiated_buffer_to_fill(k2281s: ManualSession) -> None:
    # INITiate is overlapped: *OPC? answers once the instrument is idle again (Keithley's *OPC? text, e.g. the
    # Model 2000 manual: "the initiate operations are not considered finished until the instrument goes into
    # the idle state"). With a BUS source and no *TRG, it does not answer.
    program(k2281s, "*RST", "*CLS", "ENTR:FUNC POW", "VOLT 3.3", "OUTP ON", "SENS:CONC:NPLC 0.05",
            "TRAC:POIN 10", "TRIG:SOUR BUS", "TRAC:CLE", "INIT")
    k2281s.handle.timeout = 400
    with pytest.raises(pyvisa.errors.VisaIOError):
        k2281s.query("*OPC?")
    k2281s.handle.timeout = 5000
    k2281s.write("ABOR")
    assert k2281s.handle.read().strip() == "1"


# --- R&S NGM202: NGU/NGx user manual "Data logging commands" (FLOG[:STATe], FLOG:DATA?: a block
# "#<LengthofLength><Length><block_data>", V, I, V, I, ...); R&S's NGM200 FastLog example (little-endian float32,
# a chunk every 250 ms whatever the rate) ---------------------------------------------------------------------

def test_fastlog_data_is_a_definite_block_of_little_endian_voltage_current_pairs(ngm202: ManualSession) -> None:
    program(ngm202, "*RST", "*CLS", "VOLT 3.3", "OUTP ON", "FLOG:SRAT S010K", "FLOG:TARG SCPI", "FLOG 1")
    try:
        ngm202.write("FLOG:DATA?")  # waits for the next chunk
        payload = ngm202.read_block()
        assert ngm202.errors() == []
    finally:
        program(ngm202, "FLOG 0", "OUTP OFF")
    assert len(payload) % 8 == 0  # float32 (V, I) pairs
    pairs = np.frombuffer(payload, dtype="<f4").astype(np.float64)
    assert pairs.size // 2 == round(0.25 / 100e-6)  # 250 ms of pairs at 10 kS/s
    assert np.median(pairs[0::2]) == pytest.approx(3.3, rel=0.01)
    assert np.median(pairs[1::2]) == pytest.approx(IDLE_W / SUPPLY_V, rel=0.05)
    # The same bytes read big-endian are no voltage near the setpoint (the byte-order slip shows).
    assert np.median(np.frombuffer(payload, dtype=">f4")[0::2]) != pytest.approx(3.3, rel=0.5)



def test_fastlog_runs_no_faster_than_500_ks_per_s(ngm202: ManualSession) -> None:
    # Bench facts / R&S's FastLog example: S500K is the fastest rate code; no faster one exists to select.
    ngm202.write("FLOG:SRAT S1M")
    assert ngm202.errors() == [manual.ILLEGAL_PARAMETER_VALUE]
    program(ngm202, "FLOG:SRAT S500K")
    assert ngm202.query("FLOG:SRAT?") == "S500K"


def test_the_ngm202_driver_refuses_an_interval_shorter_than_2_us() -> None:
    assert RsNgm202.min_sample_interval_s == pytest.approx(1 / 500e3)
    with pytest.raises(ConfigError, match=r"cannot sample every 1 us.*2 us"):
        RsNgm202.interval_rule.setting_value(1e-6, where="R&S NGM202")
