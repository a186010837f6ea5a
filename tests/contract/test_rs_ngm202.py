"""The R&S NGM202 as its user manual writes FastLog ("Remote control commands → Data logging commands",
shared by the NGx family): `FLOG[:STATe] 1` starts FastLog at once — no trigger to arm — and
`FLOG:DATA?` returns a definite-length block of little-endian float32 (voltage, current) pairs. A client
written from the manual sends nothing else (issue 12: the twin waited for a trigger and such a client
hung)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.contract.conftest import Target

pytestmark = pytest.mark.instrument("rs-ngm202")


def test_fastlog_streams_as_soon_as_it_is_started(target: Target) -> None:
    # FLOG:TARGet SCPI: FastLog data to the remote interface, as R&S's own FastLog example sends it.
    for command in ("*RST", "*CLS", "VOLT 3.3", "OUTP ON", "FLOG:TARGet SCPI", "FLOG 1"):
        target.check(command)
    handle = target.handle
    try:
        values = np.array(handle.query_binary_values("FLOG:DATA?", datatype="f", is_big_endian=False))
        assert handle.query("SYST:ERR?") == '+0,"No error"'
    finally:
        target.check("FLOG 0")
        target.check("OUTP OFF")
    assert values.size > 0 and values.size % 2 == 0  # (V, I) pairs
    voltage_v, current_a = values[0::2], values[1::2]
    assert np.median(voltage_v) == pytest.approx(3.3, rel=0.02)  # little-endian decodes to the setpoint
    assert np.all(np.isfinite(current_a)) and np.all(current_a >= -0.01) and np.all(current_a <= 10.5)


def test_fastlog_chunks_read_on_the_isum_event_bit_as_rs_example_does(target: Target) -> None:
    """R&S's NGM20x FastLog example (Rohde-Schwarz/Examples, Powersupplies/Python/RsInstrument/
    RSInstrument_NGM200_FastLog.py): clear the event register by reading it, `FLOG 1`, then every 50 ms
    read `STAT:OPER:INST:ISUM1:EVEN?` and, when bit 12 ("FastLog data available") is set, `FLOG:DATA?`.
    Chunks come every 250 ms whatever the rate, so at S010K (10 kS/s) each holds 250 ms of pairs.
    (The example first walks *STB? bit 7 → STAT:OPER:EVEN? bit 13 → STAT:OPER:INST:EVEN? bit 1 with their
    ENABle/PTRansition masks: the next test walks that whole chain; this one starts at ISUM1.)"""
    for command in ("*RST", "*CLS", "VOLT 3.3", "OUTP ON", "FLOG:SRATe S010K", "FLOG:TARGet SCPI"):
        target.check(command)
    handle = target.handle
    handle.query("STATus:OPERation:INSTrument:ISUMmary1:EVENt?")  # cleared by the read, as in the example
    target.check("FLOG:STATe 1")
    chunks: list[np.ndarray] = []
    try:
        for _poll in range(400):  # up to ~20 s at 50 ms per poll: a bound on the wait, not an assert
            if len(chunks) == 2:
                break
            if int(handle.query("STAT:OPER:INST:ISUM1:EVEN?")) & (1 << 12):
                chunks.append(np.array(handle.query_binary_values("FLOG:DATA?", datatype="f",
                                                                  is_big_endian=False)))
            else:
                time.sleep(0.05)
        assert handle.query("SYST:ERR?") == '+0,"No error"'
    finally:
        target.check("FLOG:STATe 0")
        target.check("OUTP OFF")
    assert len(chunks) == 2, "no FastLog chunk flagged on ISUM1 bit 12 within the wait"
    for values in chunks:
        assert values.size % 2 == 0  # (V, I) pairs
        assert values.size // 2 == pytest.approx(0.25 * 10_000, rel=0.05)  # 250 ms at 10 kS/s
        assert np.median(values[0::2]) == pytest.approx(3.3, rel=0.02)


def test_fastlog_chunk_found_through_the_whole_status_chain_as_rs_example_does(target: Target) -> None:
    """R&S's NGM20x FastLog example finds each chunk from the top of the status model: `*STB?` bit 7
    (OPERation summary) → `STAT:OPER:EVEN?` bit 13 (INSTrument summary) → `STAT:OPER:INST:EVEN?` bit 1
    (ISUMmary1) → `STAT:OPER:INST:ISUM1:EVEN?` bit 12 (FastLog data available), with the chunk bit's
    positive transition latched (`PTR 4096`, `NTR 0`) and each level enabled into the next (SCPI-99
    section 20: the status reporting structure). Reading an EVENt register clears it."""
    chain = (("STAT:OPER:INST:ISUM1", 1 << 12), ("STAT:OPER:INST", 1 << 1), ("STAT:OPER", 1 << 13))
    setup = ["*RST", "*CLS", "VOLT 3.3", "OUTP ON", "FLOG:SRATe S010K", "FLOG:TARGet SCPI"]
    for register, bit in chain:
        setup += [f"{register}:PTR {bit}", f"{register}:NTR 0", f"{register}:ENAB {bit}"]
    for command in setup:
        target.check(command)
    handle = target.handle
    for register, bit in chain:
        assert int(handle.query(f"{register}:ENAB?")) == bit
        assert int(handle.query(f"{register}:PTR?")) == bit
        handle.query(f"{register}:EVEN?")  # cleared by the read, before the stream starts
    assert int(handle.query("*STB?")) & (1 << 7) == 0  # nothing latched: no OPERation summary
    target.check("FLOG 1")
    chunks: list[np.ndarray] = []
    try:
        for _poll in range(400):  # up to ~20 s at 50 ms per poll: a bound on the wait, not an assert
            if len(chunks) == 2:
                break
            if not int(handle.query("*STB?")) & (1 << 7):
                time.sleep(0.05)
                continue
            assert int(handle.query("STAT:OPER:EVEN?")) & (1 << 13)
            assert int(handle.query("STAT:OPER:INST:EVEN?")) & (1 << 1)
            assert int(handle.query("STAT:OPER:INST:ISUM1:EVEN?")) & (1 << 12)
            chunks.append(np.array(handle.query_binary_values("FLOG:DATA?", datatype="f", is_big_endian=False)))
            # The chunk is read: its condition bit falls (NTR 0 latches nothing), every summary is clear.
            assert int(handle.query("STAT:OPER:INST:ISUM1:COND?")) & (1 << 12) == 0
            assert int(handle.query("*STB?")) & (1 << 7) == 0
        assert handle.query("SYST:ERR?") == '+0,"No error"'
    finally:
        target.check("FLOG 0")
        target.check("OUTP OFF")
    assert len(chunks) == 2, "no FastLog chunk reached *STB? bit 7 through the status chain within the wait"
    for values in chunks:
        assert values.size // 2 == pytest.approx(0.25 * 10_000, rel=0.05)  # 250 ms at 10 kS/s
        assert np.median(values[0::2]) == pytest.approx(3.3, rel=0.02)


def test_masks_gate_the_summary_chain(target: Target) -> None:
    """With ISUM1's ENABle 0 a chunk still latches ISUM1's EVENt but reaches neither the INSTrument
    register nor `*STB?` bit 7 (SCPI-99 section 20: only enabled events summarise)."""
    setup = ["*RST", "*CLS", "VOLT 3.3", "OUTP ON", "FLOG:SRATe S010K", "FLOG:TARGet SCPI",
             "STAT:OPER:INST:ISUM1:PTR 4096", "STAT:OPER:INST:ISUM1:ENAB 0", "STAT:OPER:INST:ENAB 2",
             "STAT:OPER:ENAB 8192"]
    for command in setup:
        target.check(command)
    handle = target.handle
    for register in ("STAT:OPER:INST:ISUM1", "STAT:OPER:INST", "STAT:OPER"):
        handle.query(f"{register}:EVEN?")
    target.check("FLOG 1")
    try:
        for _poll in range(400):  # a bound on the wait for the first chunk, not an assert
            if int(handle.query("STAT:OPER:INST:ISUM1:COND?")) & (1 << 12):
                break
            time.sleep(0.05)
        else:
            pytest.fail("no FastLog chunk flagged on ISUM1:COND? bit 12 within the wait")
        assert int(handle.query("*STB?")) & (1 << 7) == 0
        assert int(handle.query("STAT:OPER:INST:EVEN?")) & (1 << 1) == 0
        assert int(handle.query("STAT:OPER:INST:ISUM1:EVEN?")) & (1 << 12)  # latched all the same
    finally:
        target.check("FLOG 0")
        target.check("OUTP OFF")
