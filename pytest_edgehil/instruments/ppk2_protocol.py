"""Nordic PPK2 wire protocol: opcodes, the 32-bit sample word and the calibration metadata. No I/O.

Read from Nordic's nRF Connect Power Profiler (pc-nrfconnect-ppk) as ppk2-api 0.9.2 restates it: the host
writes single-byte opcodes with their argument bytes; after AVERAGE_START the PPK2 streams little-endian
32-bit words at 100 kS/s:

    bits 0-13  ADC code (the current is code · 4 · 1.8 V / 163840 / R[range] in amperes, uncalibrated)
    bits 14-16 current range 0-4 (shunts R0..R4 = 1031.64, 101.65, 10.15, 0.94, 0.043 Ω; auto-ranging)
    bits 18-23 a 6-bit counter, +1 per sample: the Power Profiler finds samples lost on the USB link from
               its jumps (`counter_gap`)
    bits 24-31 the 8 logic inputs D0-D7, sampled with the current

GET_META_DATA answers `key: value` lines (calibration R0-R4, GS, GI, O, S, I, UG per range) ending in
`END`. REGULATOR_SET takes the source voltage as two bytes: mV − 800 + 32 = 256·(b1 − 3) + b2.

The twin (`sim/ppk2_twin.py`) encodes with this module; the driver decodes with ppk2-api itself, so the
two meet only on the wire.
"""

from __future__ import annotations

import numpy as np

AVERAGE_START = 0x06
AVERAGE_STOP = 0x07
DEVICE_RUNNING_SET = 0x0C
REGULATOR_SET = 0x0D
SET_POWER_MODE = 0x11
GET_META_DATA = 0x19
RESET = 0x20
#: Argument bytes after each opcode (others: none).
ARGUMENT_BYTES = {REGULATOR_SET: 2, SET_POWER_MODE: 1, DEVICE_RUNNING_SET: 1, 0x01: 1, 0x02: 1, 0x03: 1,
                  0x04: 1, 0x05: 1, 0x08: 1, 0x09: 1, 0x0A: 0, 0x0E: 1, 0x0F: 1, 0x12: 1, 0x25: 4}
POWER_MODE_SOURCE = 2  # SET_POWER_MODE argument: source meter (the PPK2 powers the device)

SAMPLE_INTERVAL_S = 1e-5  # 100 kS/s, fixed
COUNTER_SHIFT, COUNTER_MODULO = 18, 64
ADC_MULT = 1.8 / 163840
ADC_MAX = (1 << 14) - 1
SHUNTS_OHM = (1031.64, 101.65, 10.15, 0.94, 0.043)
VOLTAGE_MV = (800, 5000)


def full_scale_a(current_range: int) -> float:
    """The largest current range `current_range` codes, in amperes."""
    return ADC_MAX * 4 * ADC_MULT / SHUNTS_OHM[current_range]


def regulator_bytes(mv: int) -> tuple[int, int]:
    """REGULATOR_SET's two argument bytes for a source voltage in mV (800-5000)."""
    code = mv - VOLTAGE_MV[0] + 32
    return 3 + code // 256, code % 256


def regulator_mv(b1: int, b2: int) -> int:
    return 256 * (b1 - 3) + b2 + VOLTAGE_MV[0] - 32


def metadata_text(hw: int = 9173) -> str:
    """What GET_META_DATA answers: an identity calibration (GS 0, GI 1, no offsets) with the nominal shunts."""
    lines = ["Calibrated: 0"]
    for key, values in (("R", SHUNTS_OHM), ("GS", (0,) * 5), ("GI", (1,) * 5), ("O", (0,) * 5), ("S", (0,) * 5),
                        ("I", (0,) * 5), ("UG", (1,) * 5)):
        lines += [f"{key}{i}: {v}" for i, v in enumerate(values)]
    lines += [f"HW: {hw}", "mode: 2", "IA: 56", "END"]
    return "\n".join(lines) + "\n"


def encode_samples(current_a: np.ndarray, logic: np.ndarray, counter_start: int = 0) -> bytes:
    """Sample words for currents (A) and logic bytes: each sample on the most sensitive range that holds it
    (the PPK2 auto-ranges), the ADC code rounded and clipped to 14 bits."""
    i = np.clip(np.asarray(current_a, dtype=np.float64), 0.0, None)
    scales = np.array([full_scale_a(r) for r in range(len(SHUNTS_OHM))])
    rng = np.minimum(np.searchsorted(0.9 * scales, i), len(SHUNTS_OHM) - 1)
    code = np.clip(np.round(i * np.take(SHUNTS_OHM, rng) / (4 * ADC_MULT)), 0, ADC_MAX).astype(np.uint32)
    counter = (np.arange(i.size, dtype=np.uint32) + counter_start) % 64
    words = code | (rng.astype(np.uint32) << 14) | (counter << 18) | (np.asarray(logic, dtype=np.uint32) << 24)
    return words.astype("<u4").tobytes()


def counter_gap(raw: bytes) -> tuple[int, int] | None:
    """Where the stream's sample counter first fails to step by one: (index of the first sample after the
    gap, samples lost modulo 64); None when it steps through every whole word. A torn word (bytes lost
    mid-word) shifts all later words and shows as a jump too; a loss of exactly 64·k samples cannot."""
    words = np.frombuffer(raw[:len(raw) // 4 * 4], dtype="<u4")
    counter = ((words >> COUNTER_SHIFT) % COUNTER_MODULO).astype(np.int64)
    lost = (np.diff(counter) - 1) % COUNTER_MODULO
    jumps = np.flatnonzero(lost)
    if jumps.size == 0:
        return None
    return int(jumps[0]) + 1, int(lost[jumps[0]])
