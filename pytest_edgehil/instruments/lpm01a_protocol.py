"""ST X-NUCLEO-LPM01A (PowerShield firmware) ASCII protocol: commands, values and the two data formats. No I/O.

From UM2269 as its users' drivers restate it: the host writes one command per line (`htc`, `volt 3300m`,
`freq 100k`, `acqtime 184000u`, `acqmode dyn`, `output current`, `format ascii_dec|bin_hexa`,
`trigsrc d7`, `start`, `stop`); the board answers `ack <command>` or `error <command>: <reason>`, each
reply line behind its shell prompt (`PowerShield > ack htc`, as MLPerf Tiny's and Zephyr's drivers read it). After
`start` (and, with `trigsrc d7`, the first rising edge on Arduino pin D7) it streams current samples:

- `ascii_dec`: one line per sample, 4-digit mantissa and 2-digit negative power of ten (`5212-08` =
  52.12 µA); used up to 10 kHz (a faster ASCII stream would outrun the UART),
- `bin_hexa`: 16-bit big-endian words, high nibble e, low 12 bits m: m · 16^−e amperes; blocks of 1000
  samples each behind a 9-byte header `F0 F3 <32-bit ms timestamp> <state> FF FF`, the stream closed by
  `F0 F4 FF FF`,

then the line `Acquisition completed`. Dynamic mode measures 100 nA to 50 mA at up to 100 kS/s; the supply
is programmable from 1.8 to 3.3 V. The LPM01A samples no digital input: D7 only starts the acquisition.
"""

from __future__ import annotations

import re

import numpy as np

FREQS_HZ = (100_000, 50_000, 20_000, 10_000, 5_000, 2_000, 1_000, 500, 200, 100, 50, 20, 10, 5, 2, 1)
ASCII_MAX_HZ = 10_000
VOLTAGE_RANGE_V = (1.8, 3.3)
DYNAMIC_MAX_A = 0.05
BLOCK = 1000
BLOCK_HEADER = b"\xf0\xf3"
STREAM_END = b"\xf0\xf4\xff\xff"
COMPLETED = "Acquisition completed"
PROMPT = "PowerShield > "
_SAMPLE = re.compile(r"^(\d{4})-(\d{2})$")
_SUFFIX = {"k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def freq_token(hz: int) -> str:
    return f"{hz // 1000}k" if hz >= 1000 else str(hz)


def parse_value(token: str) -> float:
    """`3300m` → 3.3, `100k` → 1e5, `184000u` → 0.184; ValueError otherwise."""
    scale = _SUFFIX.get(token[-1:], 1.0)
    return float(token[:-1] if token[-1:] in _SUFFIX else token) * scale


def format_ascii(current_a: float) -> str:
    """`mmmm-ee`: the current as a 4-digit mantissa times 10^-ee amperes."""
    if current_a <= 0:
        return "0000-00"
    exp = max(0, min(99, 3 - int(np.floor(np.log10(current_a)))))
    mantissa = round(current_a * 10 ** exp)
    if mantissa > 9999:
        exp, mantissa = exp - 1, round(current_a * 10 ** (exp - 1))
    return f"{mantissa:04d}-{exp:02d}"


def strip_prompt(line: str) -> str:
    """A reply line without the board's shell prompt (`PowerShield > ack htc` → `ack htc`), stripped."""
    line = line.strip()
    return line[len(PROMPT):].strip() if line.startswith(PROMPT.strip()) else line


def parse_ascii(line: str) -> float | None:
    """The current of a sample line in amperes, or None for any other line (status, acks)."""
    match = _SAMPLE.match(line.strip())
    return int(match.group(1)) * 10.0 ** -int(match.group(2)) if match else None


def encode_words(current_a: np.ndarray) -> np.ndarray:
    """16-bit words m | e << 12 with the largest exponent whose mantissa fits 12 bits."""
    i = np.clip(np.asarray(current_a, dtype=np.float64), 0.0, None)
    exp = np.zeros(i.size, dtype=np.int64)
    for e in range(15, -1, -1):
        fits = (exp == 0) & (np.round(i * 16.0 ** e) <= 4095)
        exp[fits & (i > 0)] = e
        if e == 0:
            break
    exp = np.where(i > 0, exp, 0)
    mantissa = np.clip(np.round(i * 16.0 ** exp), 0, 4095).astype(np.int64)
    return (mantissa | (exp << 12)).astype(np.uint16)


def decode_words(words: np.ndarray) -> np.ndarray:
    w = np.asarray(words, dtype=np.int64)
    return (w & 0x0FFF) * 16.0 ** -(w >> 12)


def encode_binary(current_a: np.ndarray, *, start_ms: int = 0, ms_per_block: float = 10.0) -> bytes:
    """The whole `bin_hexa` stream for these samples: blocks of 1000 behind their headers, then the end mark."""
    words = encode_words(current_a).astype(">u2")
    out = bytearray()
    for k, at in enumerate(range(0, words.size, BLOCK)):
        stamp = int(start_ms + k * ms_per_block) & 0xFFFFFFFF
        out += BLOCK_HEADER + stamp.to_bytes(4, "big") + b"\x00\xff\xff" + words[at:at + BLOCK].tobytes()
    return bytes(out + STREAM_END)


def binary_length(points: int) -> int:
    """Bytes of a `bin_hexa` stream of `points` samples, headers and end mark included."""
    return 2 * points + 9 * -(-points // BLOCK) + len(STREAM_END)


def decode_binary(raw: bytes) -> np.ndarray:
    """Currents in amperes from a whole `bin_hexa` stream (headers every 1000 samples, the end mark last).
    ValueError naming the byte offset where the framing breaks."""
    if not raw.endswith(STREAM_END):
        raise ValueError(f"the stream of {len(raw)} bytes does not end with the end mark F0 F4 FF FF")
    body, out, at = raw[:-len(STREAM_END)], [], 0
    while at < len(body):
        if body[at:at + 2] != BLOCK_HEADER or len(body) < at + 9:
            raise ValueError(f"no block header at byte {at} of {len(raw)}")
        chunk = body[at + 9:at + 9 + 2 * BLOCK]
        if len(chunk) % 2:
            raise ValueError(f"a block at byte {at} holds an odd number of bytes ({len(chunk)})")
        out.append(decode_words(np.frombuffer(chunk, dtype=">u2")))
        at += 9 + len(chunk)
    return np.concatenate(out) if out else np.zeros(0)
