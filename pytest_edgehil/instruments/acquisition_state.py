"""The state of an analyzer's acquisition as its status register reports it, and what to check when a wait
ends in one of them.

A driver declares which bits of its status query mean what (`ScpiAnalyzer.waiting_bit`, `measuring_bit`,
`idle_bit`); `acquisition_state` reads a register value with them. Waiting for the trigger and measuring
are bits of their own on every dialect; "complete" is either no bit at all (the N6705C's operation
condition register) or an idle bit (the 2281S), where a register with none of the three bits is an
acquisition still arming. Pure functions: the driver polls, this module says what a reading means.
"""

from __future__ import annotations

WAITING = "waiting for trigger"
MEASURING = "measuring"
ARMING = "arming"
COMPLETE = "complete"

# What `wait_complete` tells the user to check when its wait ends with the acquisition still in a state.
STUCK_HINTS = {
    WAITING: "check the trigger cabling from the device's trigger pin to the analyzer's trigger input, that the "
             "device raises its trigger line (trigger enabled in firmware), and the VISA connection (pyvisa-info)",
    ARMING: "it never reached its trigger layer: check SYST:ERR? and the trigger settings (arm and trigger "
            "sources)",
    MEASURING: "the capture is longer than the timeout allows: reduce points or the sample interval, or wait "
               "longer",
}


def acquisition_state(bits: int, *, waiting_bit: int, measuring_bit: int, idle_bit: int = 0) -> str:
    """'waiting for trigger', 'measuring', 'complete' or (with an `idle_bit`, 0 where the register has none)
    'arming' for the status register value `bits`. Without an idle bit, neither waiting nor measuring reads
    as complete; with one, only the idle state is complete (a capture between INITiate and its trigger
    layer is neither idle nor waiting)."""
    if bits & waiting_bit:
        return WAITING
    if bits & measuring_bit:
        return MEASURING
    if idle_bit and not bits & idle_bit:
        return ARMING
    return COMPLETE
