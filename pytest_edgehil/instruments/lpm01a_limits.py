"""What an X-NUCLEO-LPM01A (PowerShield firmware) can acquire, as its manuals state it. Pure checks, no I/O:
the driver refuses a plan or a capture with them, and the twin refuses the same commands the board does.

Sources:
- The firmware's own `help` (STM32-LPM01-XN, documented in UM2269; kept verbatim by MLPerf Tiny's energy
  runner): `acqtime` takes 100 µs to 100 s, or 0 / `inf` for an infinite acquisition; `format ascii_dec` is
  "limited to 10kHz", and its table of the longest acquisition by format and frequency (3 686 400 baud)
  reads: ascii_dec up to 5 kHz unlimited, 10 kHz 1 s (10 000 samples), 20 kHz 500 ms; bin_hexa up to
  100 kHz unlimited. The 20 kHz row contradicts the 10 kHz limit written above it: ASCII is not used there.
- UM2243 (the board's user manual), section 10 "Dynamic current measurement principle": 100 nA to 50 mA,
  overcurrent protection from 59 mA, spikes of up to 75 mA for less than a few milliseconds let through
  (unflagged). Section 9: static mode 1 nA to 200 mA for a current that varies by less than 10 %.
  The firmware help writes the dynamic range as "[100nA; 10mA]" (and `funcmode` optim/high with 10 mA too),
  while the same help takes current thresholds up to 50 mA (`currthres`), and that firmware also runs on
  the STM32L562E-DK (its `range` command reports the board's own range). We follow the board's manual
  (50 mA), the document that describes this board's measurement chain; a lab that needs certainty above
  10 mA should compare against a second instrument once (docs/instruments.md).
"""

from __future__ import annotations

import numpy as np

#: `acqtime` for a limited acquisition, seconds (0 or `inf`: infinite, which the driver never asks for).
ACQTIME_RANGE_S = (100e-6, 100.0)
#: ascii_dec carries any duration up to this rate (Hz) ...
ASCII_UNLIMITED_HZ = 5_000
#: ... and at most this long (s) at these rates; faster rates are bin_hexa only.
ASCII_MAX_S = {10_000: 1.0}
#: The dynamic mode's measurement range, amperes (UM2243 section 10).
DYNAMIC_RANGE_A = (100e-9, 50e-3)
#: Samples below the range floor are accepted while the charge they may misstate (floor each) stays
#: below this fraction of the capture's charge.
FLOOR_CHARGE_TOLERANCE = 1e-3


def ascii_allowed(freq_hz: float, acqtime_s: float) -> bool:
    """Whether an ascii_dec stream carries a whole acquisition of `acqtime_s` seconds (0: infinite) at
    `freq_hz` (the help's table); bin_hexa carries every rate for any duration."""
    if freq_hz <= ASCII_UNLIMITED_HZ:
        return True
    limit_s = ASCII_MAX_S.get(round(freq_hz))
    return limit_s is not None and 0 < acqtime_s <= limit_s * (1 + 1e-9)


def acqtime_problem(acqtime_s: float) -> str | None:
    """Why the board refuses an acquisition of `acqtime_s` seconds (limited), None if it takes it."""
    low, high = ACQTIME_RANGE_S
    if low * (1 - 1e-9) <= acqtime_s <= high * (1 + 1e-9):
        return None
    return (f"an acquisition of {_duration(acqtime_s)} is outside what the board takes "
            f"({_duration(low)} to {_duration(high)}, its `acqtime`)")


def range_problem(current_a: np.ndarray) -> str | None:
    """Why a dynamic-mode capture (amperes) cannot be integrated, None if it can: any sample above the
    range (the board flags only what passes its 59 mA protection), or so many below its floor that
    the charge they may misstate exceeds FLOOR_CHARGE_TOLERANCE of the capture's."""
    floor_a, top_a = DYNAMIC_RANGE_A
    above = int(np.count_nonzero(current_a > top_a))
    if above:
        return (f"{above} samples above its dynamic range (peak {float(current_a.max()) * 1e3:.4g} mA, range "
                f"{floor_a * 1e9:g} nA to {top_a * 1e3:g} mA; UM2243 section 10): measure this board with a "
                "monitor of a larger range and raise its `current_range_a`")
    below = int(np.count_nonzero(current_a < floor_a))
    if below and below * floor_a > FLOOR_CHARGE_TOLERANCE * float(np.sum(np.abs(current_a))):
        return (f"{below} of {current_a.size} samples below its dynamic range's floor of {floor_a * 1e9:g} nA, "
                f"enough to misstate the capture's charge by more than {FLOOR_CHARGE_TOLERANCE:.1%}: check that "
                "the board is powered through the monitor, or measure it with a monitor of a lower floor")
    return None


def _duration(seconds: float) -> str:
    return f"{seconds:g} s" if seconds >= 1 else f"{seconds * 1e6:g} µs"
