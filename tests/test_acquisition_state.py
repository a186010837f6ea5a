"""What a status register reading means, from the manuals' bit tables: the N6705C's operation condition
register (N6705C Operating and Service Guide p. 350: bit 0 CV, bit 2 OFF, bit 4 WTG-tran, bit 5 MEAS-active;
bit 3 WTG-meas from the N6700C-series guide p. 309; no idle bit) and the 2281S's (B4 measuring, B5 waiting in
the trigger layer, B10 idle, cleared by INITiate)."""

from __future__ import annotations

import pytest

from pytest_edgehil.instruments.acquisition_state import STUCK_HINTS, acquisition_state
from pytest_edgehil.instruments.keysight_n6705c import KeysightN6705C
from tests import scpi_manual_client as manual

N6705C = {"waiting_bit": manual.N6705C_WTG_MEAS, "measuring_bit": manual.N6705C_MEAS_ACTIVE}
K2281S = {"waiting_bit": 1 << 5, "measuring_bit": 1 << 4, "idle_bit": 1 << 10}


@pytest.mark.parametrize(("bits", "bit_table", "state"), [
    (0, N6705C, "complete"),  # no bit set: nothing initiated, or the capture is done
    (1 << 3 | 1 << 5, N6705C, "waiting for trigger"),  # WTG-meas beside MEAS-active
    (1 << 5, N6705C, "measuring"),
    (1 << 10, K2281S, "complete"),  # idle
    (0, K2281S, "arming"),  # out of idle (INITiate), not yet in the trigger layer
    (1 << 5, K2281S, "waiting for trigger"),
    (1 << 4, K2281S, "measuring"),
])
def test_a_status_reading_is_the_state_its_manual_gives(bits, bit_table, state):
    assert acquisition_state(bits, **bit_table) == state


def test_every_state_a_wait_can_end_in_has_a_hint():
    # wait_complete times out in any state but complete; each names what to check.
    assert set(STUCK_HINTS) == {"waiting for trigger", "measuring", "arming"}


@pytest.mark.parametrize(("bits", "state"), [
    # Triggered and digitizing, output on in CV: MEAS-active (32) | CV (1). The driver once read bit 4 (16,
    # WTG-tran) as MEAS-active and took this for "complete", so a long capture was fetched mid-way.
    (manual.N6705C_MEAS_ACTIVE | manual.N6705C_CV, "measuring"),
    (manual.N6705C_WTG_MEAS | manual.N6705C_MEAS_ACTIVE | manual.N6705C_CV, "waiting for trigger"),
    # The transient system waiting (16) says nothing of the acquisition; nor do CV (1) or OFF (4).
    (manual.N6705C_WTG_TRAN | manual.N6705C_CV, "complete"),
    (manual.N6705C_OFF, "complete"),
])
def test_the_n6705c_driver_reads_its_register_as_the_guide_defines_it(bits: int, state: str) -> None:
    assert acquisition_state(bits, waiting_bit=KeysightN6705C.waiting_bit,
                             measuring_bit=KeysightN6705C.measuring_bit) == state
