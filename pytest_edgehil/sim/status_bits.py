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

    waiting: int  # armed, waiting for its trigger
    measuring: int  # triggered, acquiring
    idle: int = 0  # no acquisition initiated (0: the register has no idle bit)
    source: str = ""

    def condition(self, state: str) -> int:
        """The register for the twin's acquisition state ("arming", "waiting for trigger", "measuring",
        "complete", "aborted"): arming has left idle and is not yet waiting, so it sets no bit."""
        return {"waiting for trigger": self.waiting, "measuring": self.measuring,
                "arming": 0}.get(state, self.idle)


#: Dialect name -> its status bits. A dialect missing here (a test's own driver) answers with the
#: driver's declared bits (`bits_for`).
STATUS_BITS: dict[str, StatusBits] = {
    # N6700/N6705 programming guide, STATus:OPERation: WTG-meas is bit 3, MEAS-active bit 4 (the contract
    # suite's test_keysight_n6705c.py asserts WTG-meas = 8 as the guide states it). No idle bit.
    "keysight-n6705c": StatusBits(waiting=8, measuring=16,
                                  source="N6700 programming guide, STATus:OPERation register"),
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
