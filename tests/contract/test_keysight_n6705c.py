"""The Keysight N6705C (N678xA SMU in slot 1), as its programming guide writes the commands: long
forms, optional nodes, character data in both forms, the digitizer sequence, scalar measurements,
and the digital-port trigger input. Every command is followed by `SYST:ERR?` and an `*OPC?` marker
(`Target.check`), so an undefined header or a shifted reply fails at the command that caused it."""

from __future__ import annotations

import time

import numpy as np
import pytest
import pyvisa

from tests.contract.conftest import Target

pytestmark = pytest.mark.instrument("keysight-n6705c")

POINTS = 4096
INTERVAL_S = 2.048e-5  # on the digitizer's interval grid, slow enough for voltage and current at once


@pytest.mark.parametrize("command", [
    # Issue 12's list: long forms and optional nodes the twin called undefined (-113).
    "SENSE:SWEEP:POINTS 4096,(@1)", "SENSe:SWEep:TINTerval 2.048E-5,(@1)", "FORMat:DATA REAL", "FORMAT REAL",
    "FORM:DATA REAL", "SOUR:VOLT 3.3,(@1)", "OUTPut:STATe OFF,(@1)", "SENS:CURR:RANG:AUTO ON,(@1)",
    # Character data in its long form (issue 12: -224).
    "FORM:BORD NORMal", "FORMat:BORDer SWAPped", "TRIGger:ACQuire:SOURce EXTernal,(@1)",
    # Numbers as the guide allows them: one digit, exponent, MIN/MAX/DEF.
    "VOLT 5,(@1)", "VOLT 3.3,(@1)", "VOLT 3.3E0,(@1)", "SENS:SWE:POIN MAX,(@1)", "SENS:SWE:POIN DEF,(@1)",
    "SENS:CURR:RANG 1,(@1)",
    # Lower case, a leading colon, and the digital port's numeric suffix.
    "sens:swe:poin 100,(@1)", ":SENS:SWE:OFFS:POIN -10,(@1)", "DIG:PIN1:FUNC DIO", "SOURce:DIGital:PIN2:POLarity POS",
])
def test_the_guides_forms_are_accepted(target: Target, command: str) -> None:
    target.check("OUTP OFF,(@1)")
    target.check(command)


# The digitizer's interval grid, N6705C User's Guide ch. 6 "Advanced Source, Measurement, and Control"
# (SENS:SWE:TINT, p. 213 of the edition read): "Time interval values from 10.24 up to 20.48 microseconds
# are rounded to the nearest 10.24-microsecond increment. Values above 20.48 microseconds are rounded to
# the nearest 20.48-microsecond increment when the resolution is set to RES20. Values above 40.96
# microseconds are rounded to the nearest 40.96-microsecond increment when the resolution is set to RES40."
# Each expected value below is that rule worked by hand (request / step, rounded).
@pytest.mark.parametrize(("resolution", "sent", "runs_s"), [
    ("RES20", "1.5E-5", 10.24e-6),  # 15 / 10.24 = 1.46 -> 1 x 10.24
    ("RES20", "1.6E-5", 20.48e-6),  # 16 / 10.24 = 1.56 -> 2 x 10.24
    ("RES20", "2.048E-5", 20.48e-6),  # on the grid: kept
    ("RES20", "2.56E-5", 20.48e-6),  # MLPerf Tiny's 10 s plan on a 5.12 us grid: 25.6 / 20.48 = 1.25 -> 1
    ("RES20", "3.5E-5", 40.96e-6),  # 35 / 20.48 = 1.71 -> 2 x 20.48
    ("RES20", "5E-5", 40.96e-6),  # 50 / 20.48 = 2.44 -> 2 x 20.48
    ("RES20", "1E-4", 102.4e-6),  # 100 / 20.48 = 4.88 -> 5 x 20.48
    ("RES40", "1E-4", 81.92e-6),  # 100 / 40.96 = 2.44 -> 2 x 40.96
])
def test_the_sample_interval_is_rounded_as_the_guide_says(target: Target, resolution: str, sent: str,
                                                         runs_s: float) -> None:
    target.check(f"SENSe:SWEep:TINTerval:RESolution {resolution}")
    try:
        target.check(f"SENSe:SWEep:TINTerval {sent},(@1)")
        assert float(target.handle.query("SENS:SWE:TINT? (@1)")) == pytest.approx(runs_s, rel=1e-6)
    finally:
        target.check("SENS:SWE:TINT:RES RES20")


def test_character_data_reads_back_in_short_form(target: Target) -> None:
    target.check("FORMat:BORDer NORMal")
    assert target.handle.query("FORM:BORD?") == "NORM"
    target.check("OUTPut:STATe OFF,(@1)")
    assert target.handle.query("OUTP? (@1)") == "0"  # SCPI booleans answer 0/1


def test_implied_path_after_a_semicolon(target: Target) -> None:
    target.check("SENS:SWE:POIN 100,(@1);TINT 4.096E-5,(@1)")
    points, interval = target.handle.query("SENS:SWE:POIN? (@1);TINT? (@1)").split(";")
    assert int(float(points)) == 100
    assert float(interval) == pytest.approx(4.096e-5)
    target.check("SENS:SWE:POIN 200,(@1);:FORM ASC")  # `;:` restarts at the root
    assert target.handle.query("FORM?") == "ASC"


def test_scalar_measurements_answer(target: Target) -> None:
    # Issue 12: MEAS:CURR? (@1) never answered.
    target.check("VOLT 3.3,(@1)")
    target.check("OUTP ON,(@1)")
    try:
        current_a = float(target.handle.query("MEAS:CURR? (@1)"))
        voltage_v = float(target.handle.query("MEASure:SCALar:VOLTage:DC? (@1)"))
        power_w = float(target.handle.query("MEAS:POW? (@1)"))
        assert target.handle.query("SYST:ERR?") == '+0,"No error"'
    finally:
        target.check("OUTP OFF,(@1)")
    assert voltage_v == pytest.approx(3.3, rel=0.05)
    assert np.isfinite(current_a) and current_a >= 0
    if target.twin is not None:  # the twin's supply draws between idle and the load's power
        # (each query reads its own moment of the live timeline: bounds, not one value)
        assert 0.05 * 0.999 <= power_w <= 0.5 * 1.001
        assert 0.05 / 3.3 * 0.999 <= current_a <= 0.5 / 3.3 * 1.001


def capture(target: Target, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The guide's digitizer sequence with SYST:ERR? after each command; FETCh without polling."""
    for command in ("*RST", "*CLS", "FORMat:DATA REAL", "FORMat:BORDer NORMal", "SOURce:VOLTage 3.3,(@1)",
                    "SENSe:FUNCtion:CURRent ON,(@1)", "SENSe:FUNCtion:VOLTage ON,(@1)",
                    f"SENSe:SWEep:POINts {POINTS},(@1)", f"SENSe:SWEep:TINTerval {INTERVAL_S:.4E},(@1)",
                    "OUTPut:STATe ON,(@1)", f"TRIG:ACQ:SOUR {source},(@1)", "INIT:ACQ (@1)"):
        target.check(command)
    if source == "BUS":
        target.check("*TRG")
    handle = target.handle
    # FETCh waits for the acquisition (issue 12: an empty line and -230 instead).
    current_a = np.array(handle.query_binary_values("FETC:ARR:CURR? (@1)", datatype="f", is_big_endian=True))
    assert handle.query("SYST:ERR?") == '+0,"No error"'
    voltage_v = np.array(handle.query_binary_values("FETC:ARR:VOLT? (@1)", datatype="f", is_big_endian=True))
    assert handle.query("SYST:ERR?") == '+0,"No error"'
    assert handle.query("*OPC?") == "1"
    target.check("OUTP OFF,(@1)")
    return current_a, voltage_v


def test_bus_triggered_capture_yields_every_sample(target: Target) -> None:
    current_a, voltage_v = capture(target, "BUS")
    assert current_a.size == POINTS and voltage_v.size == POINTS
    assert np.all(np.isfinite(current_a)) and np.all(current_a >= -0.01) and np.all(current_a <= 3.2)
    assert np.median(voltage_v) == pytest.approx(3.3, rel=0.02)


@pytest.mark.twin_only
def test_bus_capture_energy_matches_the_twins_truth(target: Target) -> None:
    current_a, voltage_v = capture(target, "BUS")
    twin = target.twin
    window = twin.last_capture  # type: ignore[union-attr]
    dt = window.sample_interval_s
    measured_j = float(np.sum(current_a.astype(float) * voltage_v.astype(float)) * dt)
    # Each sample is the mean over its own interval [t - dt/2, t + dt/2].
    truth_j = twin.true_energy_j(window.t0_s - dt / 2, window.t1_s - dt / 2)  # type: ignore[union-attr]
    assert measured_j == pytest.approx(truth_j, rel=0.02)
    # The window holds idle and load stretches: the energy is not an idle-only (or load-only) figure.
    assert 0.05 * POINTS * dt * 1.2 < truth_j < 0.5 * POINTS * dt * 0.8


@pytest.mark.twin_only
def test_ext_fires_only_from_a_pin_configured_as_trigger_input(target: Target) -> None:
    handle = target.handle
    for command in ("*RST", "*CLS", "FORM REAL", "DIG:PIN1:FUNC DIO", "VOLT 3.3,(@1)", "OUTP ON,(@1)",
                    "SENS:SWE:POIN 256,(@1)", "TRIG:ACQ:SOUR EXT,(@1)", "INIT:ACQ (@1)"):
        target.check(command)
    # The synthetic load raises the trigger line every 20 ms: with no pin as trigger input the
    # acquisition still waits (WTG-meas = 8) after several of those edges have passed.
    for _ in range(10):
        assert int(handle.query("STAT:OPER:COND? (@1)")) & 8
        handle.query("MEAS:VOLT? (@1)")  # ~ a few ms per exchange: time passes on the live timeline
    target.check("DIGital:PIN1:FUNCtion TINPut")
    target.check("DIGital:PIN1:POLarity POSitive")
    current_a = np.array(handle.query_binary_values("FETC:ARR:CURR? (@1)", datatype="f", is_big_endian=True))
    assert current_a.size == 256
    assert handle.query("SYST:ERR?") == '+0,"No error"'
    target.check("OUTP OFF,(@1)")


# Level triggers (Operating and Service Guide, "Select the Measurement Trigger Source": CURRent<1-4>
# triggers the measurement when that output's current passes through the level set by
# TRIGger:ACQuire:CURRent[:LEVel] in the direction of TRIGger:ACQuire:CURRent:SLOPe).
LEVEL_POINTS, LEVEL_PRETRIGGER = 1000, 100


def arm_level_trigger(target: Target, level_a: float) -> None:
    for command in ("*RST", "*CLS", "FORMat:DATA REAL", "SOURce:VOLTage 3.3,(@1)", "OUTPut:STATe ON,(@1)",
                    f"SENSe:SWEep:POINts {LEVEL_POINTS},(@1)", f"SENSe:SWEep:TINTerval {INTERVAL_S:.4E},(@1)",
                    f"SENSe:SWEep:OFFSet:POINts -{LEVEL_PRETRIGGER},(@1)",
                    f"TRIGger:ACQuire:CURRent:LEVel {level_a},(@1)", "TRIGger:ACQuire:CURRent:SLOPe POSitive,(@1)",
                    "TRIGger:ACQuire:SOURce CURRent1,(@1)", "INITiate:ACQuire (@1)"):
        target.check(command)
    wait_for_the_pretrigger_points()


def wait_for_the_pretrigger_points() -> None:
    """User's Guide p. 213: a trigger before the pre-trigger count is complete is ignored (a one-shot output
    step would then be lost): the points are given their time before anything may trigger."""
    time.sleep(LEVEL_PRETRIGGER * INTERVAL_S * 1.5)


def test_level_trigger_settings_read_back(target: Target) -> None:
    target.check("TRIG:ACQ:CURR 0.25,(@1)")
    target.check("TRIG:ACQ:CURR:SLOP NEGative,(@1)")
    target.check("TRIG:ACQ:SOUR CURR1,(@1)")
    assert float(target.handle.query("TRIG:ACQ:CURR? (@1)")) == pytest.approx(0.25)
    assert target.handle.query("TRIG:ACQ:CURR:SLOP? (@1)") == "NEG"
    assert target.handle.query("TRIG:ACQ:SOUR? (@1)") == "CURR1"
    target.check("TRIGger:ACQuire:VOLTage:LEVel 3,(@1)")
    target.check("TRIGger:ACQuire:SOURce VOLTage1,(@1)")
    assert target.handle.query("TRIG:ACQ:SOUR? (@1)") == "VOLT1"


@pytest.mark.twin_only
def test_level_trigger_fires_on_the_idle_to_active_edge(target: Target) -> None:
    # The twin's load: idle 0.05 W (15 mA at 3.3 V), every 20 ms 5 ms at 0.5 W (152 mA).
    level_a = 0.08
    arm_level_trigger(target, level_a)
    handle = target.handle
    current_a = np.array(handle.query_binary_values("FETC:ARR:CURR? (@1)", datatype="f", is_big_endian=True))
    assert handle.query("SYST:ERR?") == '+0,"No error"'
    target.check("OUTP OFF,(@1)")
    assert current_a.size == LEVEL_POINTS
    # Before the trigger the supply is idle, after it the load draws (a sample either side of the
    # crossing may straddle it); the load lasts 5 ms = 244 samples at 20.48 us.
    assert np.all(current_a[:LEVEL_PRETRIGGER - 1] < level_a)
    assert np.all(current_a[LEVEL_PRETRIGGER + 1:LEVEL_PRETRIGGER + 240] > level_a)
    assert np.median(current_a[:LEVEL_PRETRIGGER - 1]) == pytest.approx(0.05 / 3.3, rel=0.05)
    assert np.median(current_a[LEVEL_PRETRIGGER + 1:LEVEL_PRETRIGGER + 240]) == pytest.approx(0.5 / 3.3, rel=0.05)


def test_a_level_never_crossed_leaves_fetch_waiting_until_abort(target: Target) -> None:
    # 2.5 A: far above what the output draws (the twin's load, or an unloaded output on a bench).
    arm_level_trigger(target, 2.5)
    handle = target.handle
    assert int(handle.query("STAT:OPER:COND? (@1)")) & 8  # WTG-meas: still waiting for its trigger
    handle.timeout = 1000
    with pytest.raises(pyvisa.errors.VisaIOError) as timed_out:
        handle.query_binary_values("FETC:ARR:CURR? (@1)", datatype="f", is_big_endian=True)
    assert timed_out.value.error_code == pyvisa.constants.StatusCode.error_timeout
    handle.timeout = 5000
    handle.write("ABORt:ACQuire (@1)")
    # The FETCh found no data once aborted: it answers nothing (an error may be queued for it);
    # the session stays in step and the acquisition is no longer pending.
    for _ in range(5):
        if handle.query("SYST:ERR?").startswith("+0"):
            break
    else:
        pytest.fail("the error queue did not empty after ABORt")
    assert handle.query("*OPC?") == "1"
    assert int(handle.query("STAT:OPER:COND? (@1)")) & 8 == 0
    target.check("OUTP OFF,(@1)")


# Voltage level triggers: VOLTage<n> triggers when that output's voltage passes through
# TRIGger:ACQuire:VOLTage[:LEVel] in the direction of TRIGger:ACQuire:VOLTage:SLOPe. With an
# unloaded output (or the twin's ideal source) the voltage moves when the output is switched or
# reprogrammed, which is what these tests do; nothing here needs a load or the twin's truth.
VOLTAGE_LEVEL_V = 1.5


def arm_voltage_trigger(target: Target, *, output: str, slope: str) -> None:
    for command in ("*RST", "*CLS", "FORMat:DATA REAL", "SOURce:VOLTage 3.3,(@1)", f"OUTPut:STATe {output},(@1)",
                    "SENSe:FUNCtion:VOLTage ON,(@1)", f"SENSe:SWEep:POINts {LEVEL_POINTS},(@1)",
                    f"SENSe:SWEep:TINTerval {INTERVAL_S:.4E},(@1)",
                    f"SENSe:SWEep:OFFSet:POINts -{LEVEL_PRETRIGGER},(@1)",
                    f"TRIGger:ACQuire:VOLTage:LEVel {VOLTAGE_LEVEL_V},(@1)",
                    f"TRIGger:ACQuire:VOLTage:SLOPe {slope},(@1)",
                    "TRIGger:ACQuire:SOURce VOLTage1,(@1)", "INITiate:ACQuire (@1)"):
        target.check(command)
    wait_for_the_pretrigger_points()


def fetch_voltage(target: Target) -> np.ndarray:
    handle = target.handle
    volts = np.array(handle.query_binary_values("FETC:ARR:VOLT? (@1)", datatype="f", is_big_endian=True))
    assert handle.query("SYST:ERR?") == '+0,"No error"'
    assert volts.size == LEVEL_POINTS
    return volts


def settled(volts: np.ndarray) -> np.ndarray:
    # On a real output the step is a ramp: allow it 50 samples (1 ms) to settle.
    return volts[LEVEL_PRETRIGGER + 50:]


def test_voltage_level_fires_on_the_rising_output(target: Target) -> None:
    arm_voltage_trigger(target, output="OFF", slope="POSitive")
    assert int(target.handle.query("STAT:OPER:COND? (@1)")) & 8  # waiting: the output is at 0 V
    target.check("OUTPut:STATe ON,(@1)")  # 0 V -> 3.3 V passes 1.5 V rising
    volts = fetch_voltage(target)
    target.check("OUTP OFF,(@1)")
    assert np.all(volts[:LEVEL_PRETRIGGER - 1] < VOLTAGE_LEVEL_V)
    assert np.median(settled(volts)) == pytest.approx(3.3, rel=0.02)


def test_voltage_level_fires_on_the_falling_output(target: Target) -> None:
    arm_voltage_trigger(target, output="ON", slope="NEGative")
    target.check("SOURce:VOLTage 1,(@1)")  # 3.3 V -> 1 V passes 1.5 V falling
    volts = fetch_voltage(target)
    target.check("OUTP OFF,(@1)")
    assert np.all(volts[:LEVEL_PRETRIGGER - 1] > VOLTAGE_LEVEL_V)
    assert np.median(settled(volts)) == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("change", ["OUTPut:STATe OFF,(@1)", "SOURce:VOLTage 5,(@1)"])
def test_voltage_level_ignores_the_other_slope_and_steps_that_stay_on_one_side(target: Target,
                                                                              change: str) -> None:
    # Armed for a rising pass through 1.5 V with the output at 3.3 V: switching it off falls through
    # the level (wrong slope), 3.3 V -> 5 V never passes it. Either way the acquisition keeps waiting.
    arm_voltage_trigger(target, output="ON", slope="POSitive")
    # Not `check`: *OPC? would hold while the acquisition is pending (it is, waiting for its trigger).
    target.handle.write(change)
    assert target.handle.query("SYST:ERR?") == '+0,"No error"', change
    for _ in range(5):
        assert int(target.handle.query("STAT:OPER:COND? (@1)")) & 8
    target.check("ABORt:ACQuire (@1)")
    assert int(target.handle.query("STAT:OPER:COND? (@1)")) & 8 == 0
    target.check("OUTP OFF,(@1)")
