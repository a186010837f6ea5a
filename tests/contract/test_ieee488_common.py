"""IEEE 488.2 common commands and status reporting, on every instrument (IEEE 488.2 sections 10
and 11; SCPI-99 section 21.8 for the error queue). Each finding of issue 12 is one test here."""

from __future__ import annotations

import pytest

from tests.contract.conftest import Target

COMMAND_ERROR_BIT, OPC_BIT = 32, 1
ERROR_QUEUE_BIT, ESB_BIT, MSS_BIT = 4, 32, 64


def test_idn_has_four_fields(target: Target) -> None:
    fields = target.handle.query("*IDN?").split(",")
    assert len(fields) == 4 and all(field.strip() for field in fields[:2])


def test_opc_command_sends_no_reply(target: Target) -> None:
    # Issue 12: *OPC answered "1", shifting every later reply by one.
    target.handle.write("*CLS")
    target.handle.write("*OPC")
    assert target.handle.query("*IDN?").count(",") == 3
    assert int(target.handle.query("*ESR?")) & OPC_BIT


def test_a_query_of_an_unknown_header_sends_nothing_and_queues_113(target: Target) -> None:
    target.handle.write("*CLS")
    target.handle.write("BOGUS:HEADER?")
    assert target.handle.query("*OPC?") == "1"  # the next reply is the next query's, not a stray one
    code = int(target.handle.query("SYST:ERR?").split(",")[0])
    assert code == -113


def test_esr_answers_sets_the_command_error_bit_and_clears_on_read(target: Target) -> None:
    # Issue 12: *ESR? never answered.
    target.handle.write("*CLS")
    assert int(target.handle.query("*ESR?")) == 0
    target.handle.write("BOGUS:HEADER 1")
    assert int(target.handle.query("*ESR?")) & COMMAND_ERROR_BIT
    assert int(target.handle.query("*ESR?")) & COMMAND_ERROR_BIT == 0


def test_stb_summarises_the_error_queue_and_enabled_events(target: Target) -> None:
    # Issue 12: *STB? never answered.
    handle = target.handle
    handle.write("*CLS")
    handle.write("*ESE 32")
    handle.write("*SRE 32")
    assert int(handle.query("*ESE?")) == 32 and int(handle.query("*SRE?")) == 32
    assert int(handle.query("*STB?")) & (ERROR_QUEUE_BIT | ESB_BIT) == 0
    handle.write("BOGUS:HEADER 1")
    status = int(handle.query("*STB?"))
    assert status & ERROR_QUEUE_BIT and status & ESB_BIT and status & MSS_BIT
    assert int(handle.query("*STB?")) == status  # reading the status byte does not clear it
    handle.write("*CLS")
    assert int(handle.query("*STB?")) & (ERROR_QUEUE_BIT | ESB_BIT | MSS_BIT) == 0
    handle.write("*ESE 0")
    handle.write("*SRE 0")


def test_self_test_wait_reset_and_clear(target: Target) -> None:
    assert int(target.handle.query("*TST?")) == 0
    for command in ("*WAI", "*RST", "*CLS"):
        target.check(command)


def test_common_commands_join_with_semicolons(target: Target) -> None:
    assert target.handle.query("*CLS;*OPC?") == "1"
    assert target.handle.query("*OPC?;*TST?") == "1;0"  # one response message, `;` between replies


def test_trg_without_an_armed_bus_acquisition_is_ignored_with_211(target: Target) -> None:
    target.handle.write("*CLS")
    target.handle.write("*TRG")
    code = int(target.handle.query("SYST:ERR?").split(",")[0])
    assert code == -211


@pytest.mark.parametrize("query", ["SYST:ERR?", "SYSTem:ERRor?", "system:error:next?"])
def test_the_error_queue_in_every_form(target: Target, query: str) -> None:
    target.handle.write("*CLS")
    assert target.handle.query(query) in ('+0,"No error"', '0,"No error"')

