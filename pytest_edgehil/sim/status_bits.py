"""The acquisition status bits each twinned instrument sets, as its own manual defines them.

The analyzer twin answers its status query from this table, not from the driver's `waiting_bit` /
`measuring_bit`: a twin that read its bits off the driver would agree with a driver that declared a wrong
bit, and the contract suite could never catch it. Each entry names where its numbers come from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatusBits:
    """Bit values (not positions) of one instrument's acquisition status register."""

    waiting: int  # armed, waiting for its trigger (every bit the register sets then)
    measuring: int  # triggered, acquiring
    idle: int = 0  # no acquisition initiated (0: the register has no idle bit)
    # Where the same register also reports the output (the N6705C's OPERation register): the bit set while
    # the output is on and regulating (CV), and the one set while it is programmed off (OFF).
    output_on: int = 0
    output_off: int = 0
    source: str = ""

    def condition(self, state: str, *, output_on: bool = False) -> int:
        """The register for the twin's acquisition state ("arming", "waiting for trigger", "measuring",
        "complete", "aborted") and its output: arming has left idle and is not yet waiting, so it sets no
        acquisition bit. The twin's output is an ideal source, always in constant voltage while on."""
        acquisition = {"waiting for trigger": self.waiting, "measuring": self.measuring,
                       "arming": 0}.get(state, self.idle)
        return acquisition | (self.output_on if output_on else self.output_off)


#: Dialect name -> its status bits. A dialect missing here (a test's own driver) answers with the
#: driver's declared bits (`bits_for`).
STATUS_BITS: dict[str, StatusBits] = {
    # N6705C Operating and Service Guide, ch. 7 "Status Tutorial → Operation Status Group" (p. 350): bit 0 CV
    # (1) "output is in constant voltage", bit 2 OFF (4) "output is programmed off", bit 4 WTG-tran (16, the
    # transient system: never set by INIT:ACQ), bit 5 MEAS-active (32) "measurement system is initiated".
    # Bit 3 WTG-meas (8) "measurement system is waiting for a trigger" is the N6700C-series guide's (N6701C
    # Operating and Service Guide p. 309; the N6705C table lists bit 3 as not used): set while waiting, beside
    # MEAS-active. No idle bit. (This table once said MEAS-active = 16, as the driver did: both wrong.)
    # Our reading: MEAS-active rises when the trigger system is ready (after the arm latency), not at INIT.
    "keysight-n6705c": StatusBits(waiting=8 | 32, measuring=32, output_on=1, output_off=4,
                                  source="N6705C Operating and Service Guide p. 350; N6701C guide p. 309"),
    # Operation Instrument Summary (Condition) register, STAT:OPER:INST:ISUM:COND?. Idle = B10 from the
    # Series 2280 Reference Manual (077085503) p. D-20, the same status model as the 2281S's Appendix D;
    # waiting for trigger = B5 and measuring = B4 as pymeasure's 2281S driver lists the register (the
    # 2281S manual's own bit table, p. D-13, was not in the copies we could search).
    "keithley-2281s": StatusBits(waiting=32, measuring=16, idle=1024,
                                 source="2281S Reference Manual App. D; Series 2280 Reference Manual p. D-20; "
                                        "pymeasure keithley2281S"),
    # FastLog has no trigger: the NGM202's chunk flag lives in its status tree (scpi_status.StatusTree).
    "rs-ngm202": StatusBits(waiting=0, measuring=0, source="R&S NGL200/NGM200 user manual, status reporting"),
}


def bits_for(dialect: str | None, declared: tuple[int, int]) -> StatusBits:
    """The status bits of `dialect`, or (for a dialect the table does not hold) the driver's
    `declared` (waiting, measuring) bits."""
    if dialect in STATUS_BITS:
        return STATUS_BITS[dialect]
    return StatusBits(waiting=declared[0], measuring=declared[1], source="the driver's declaration")
