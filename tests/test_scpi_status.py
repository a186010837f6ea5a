"""The twin's SCPI-99 status registers (section 20): transition filters latch condition changes into
EVENt, reading EVENt clears it, ENABle masks gate each summary into the parent's condition, and the
OPERation summary is bit 7 of the status byte."""

from __future__ import annotations

from pytest_edgehil.sim.scpi_status import (
    INSTRUMENT_SUMMARY_BIT,
    OPERATION_BIT,
    Register,
    StatusRegisters,
    StatusTree,
)

CHUNK = 1 << 12


def test_transition_filters_choose_which_edges_latch() -> None:
    register = Register(ptransition=0, ntransition=CHUNK)
    register.set_condition(CHUNK)
    assert register.event == 0  # rising edge, PTR off
    register.set_condition(0)
    assert register.read_event() == CHUNK  # falling edge, NTR on
    assert register.read_event() == 0  # the read cleared it


def test_a_channel_condition_summarises_up_to_the_status_byte_only_when_enabled() -> None:
    tree = StatusTree(channels=2)
    status = StatusRegisters(tree=tree)
    isum2, _ = tree.lookup("STATUS:OPERATION:INSTRUMENT:ISUMMARY2:ENABLE") or (None, "")
    assert isum2 is tree.isummary[2]
    tree.set_channel_bit(2, CHUNK, True)
    assert tree.instrument.condition == 1 << 2  # device-dependent enables are all ones at power-on
    assert status.stb() & OPERATION_BIT == 0  # OPERation's ENABle is 0
    tree.write(tree.operation, "enable", INSTRUMENT_SUMMARY_BIT)
    assert status.stb() & OPERATION_BIT
    assert tree.read(tree.operation, "event") == INSTRUMENT_SUMMARY_BIT
    assert status.stb() & OPERATION_BIT == 0  # the read cleared the latched summary
    assert tree.read(tree.instrument, "event") == 1 << 2
    tree.set_channel_bit(2, CHUNK, False)
    tree.set_channel_bit(2, CHUNK, True)  # ISUM2's event is still latched: its summary never fell
    assert tree.read(tree.instrument, "event") == 0
    status.clear()  # *CLS clears every event register; the condition stays
    assert tree.isummary[2].event == 0 and tree.condition(2) == CHUNK


def test_headers_in_every_form_and_unknown_channels() -> None:
    tree = StatusTree(channels=2)
    assert tree.lookup("STAT:OPER") == (tree.operation, "event")
    assert tree.lookup("STAT:OPER:EVEN") == (tree.operation, "event")
    assert tree.lookup("STAT:OPER:INST:PTR") == (tree.instrument, "ptransition")
    assert tree.lookup("STAT:OPER:INST:ISUM:COND") == (tree.isummary[1], "condition")
    assert tree.lookup("STAT:OPER:INST:ISUM3:COND") is None
    assert tree.lookup("STAT:QUES") is None
