"""What a status register reading means, from the manuals' bit tables: the N6705C's operation condition
register (bit 3 WTG-meas, bit 4 MEAS-active; no idle bit) and the 2281S's (B4 measuring, B5 waiting in
the trigger layer, B10 idle, cleared by INITiate)."""

from __future__ import annotations

import pytest

from pytest_edgehil.instruments.acquisition_state import STUCK_HINTS, acquisition_state

N6705C = {"waiting_bit": 1 << 3, "measuring_bit": 1 << 4}
K2281S = {"waiting_bit": 1 << 5, "measuring_bit": 1 << 4, "idle_bit": 1 << 10}


@pytest.mark.parametrize(("bits", "bit_table", "state"), [
    (0, N6705C, "complete"),  # no bit set: nothing initiated, or the capture is done
    (1 << 3, N6705C, "waiting for trigger"),
    (1 << 4, N6705C, "measuring"),
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
