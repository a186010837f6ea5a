"""ST X-NUCLEO-LPM01A (PowerShield firmware) ASCII protocol: commands, values and the two data formats. No I/O.

From UM2269 as its users' drivers restate it: the host writes one command per line (`htc`, `volt 3300m`,
`freq 100k`, `acqtime 184000u`, `acqmode dyn`, `output current`, `format ascii_dec|bin_hexa`,
`trigsrc d7`, `start`, `stop`); the board answers `ack <command>` or `error <command>: <reason>`, each
reply line behind its shell prompt (`PowerShield > ack htc`, as MLPerf Tiny's and Zephyr's drivers read it). After
`start` (and, with `trigsrc d7`, the first rising edge on Arduino pin D7) it streams current samples:

- `ascii_dec`: one line per sample, 4-digit mantissa and 2-digit negative power of ten (`5212-08` =
  52.12 µA); only where the UART carries it (`lpm01a_limits.ascii_allowed`: up to 5 kHz, 10 kHz for 1 s),
- `bin_hexa`: 16-bit big-endian words, high nibble e, low 12 bits m: m · 16^−e amperes (e = 15 is
  reserved: F0 Fx starts a metadata record `F0 <tag> <payload> FF FF` wherever the board sends one:
  F1 error text, F2 info text, F3 `<32-bit ms timestamp> <buffer load %>`, F5 overcurrent, F6 target power
  down, F7 voltage), the stream closed by `F0 F4 FF FF` (the twin puts a timestamp every 1000 samples),

then the line `Acquisition completed`. In `ascii_dec` the board reports errors (overcurrent) as text lines
among the samples. What the board can acquire (durations, ranges) is `lpm01a_limits`'s; the supply
is programmable from 1.8 to 3.3 V. The LPM01A samples no digital input: D7 only starts the acquisition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

FREQS_HZ = (100_000, 50_000, 20_000, 10_000, 5_000, 2_000, 1_000, 500, 200, 100, 50, 20, 10, 5, 2, 1)
VOLTAGE_RANGE_V = (1.8, 3.3)
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


@dataclass
class BinaryStream:
    """A decoded `bin_hexa` stream: the currents (A) and what the board flagged between them."""

    current_a: np.ndarray
    #: What makes the samples unusable, as the board said it: "overcurrent", "target powered down",
    #: "error message '<text>'" (empty: none).
    problems: list[str] = field(default_factory=list)
    #: (board time in ms, transmit-buffer load in %) of each timestamp record.
    timestamps: list[tuple[int, int]] = field(default_factory=list)


# Metadata records: F0, a tag byte F1-F7, a payload, FF FF. A sample's first byte is below F0 (exponent 15
# is reserved for them), so a record can start only where a sample would. Fixed total lengths by tag:
_RECORD_LENGTH = {0xF3: 9, 0xF4: 4, 0xF5: 4, 0xF6: 4, 0xF7: 6}
_FLAGS = {0xF5: "overcurrent", 0xF6: "target powered down"}


def decode_binary(raw: bytes) -> BinaryStream:
    """A whole `bin_hexa` stream, up to and including its end mark F0 F4 FF FF: samples, and the metadata
    records (UM2269: F1 error text, F2 info text, F3 timestamp, F4 end, F5 overcurrent, F6 target power
    down, F7 voltage) wherever the board put them. ValueError naming the byte offset where framing breaks."""
    if not raw.endswith(STREAM_END):
        raise ValueError(f"the stream of {len(raw)} bytes does not end with the end mark F0 F4 FF FF")
    data = np.frombuffer(raw, dtype=np.uint8)
    starts = np.flatnonzero(data >= 0xF0)
    by_parity = (starts[starts % 2 == 0], starts[starts % 2 == 1])
    out = BinaryStream(np.zeros(0))
    chunks: list[np.ndarray] = []
    at = 0
    while True:
        same = by_parity[at % 2]
        k = int(np.searchsorted(same, at))
        if k == same.size:
            raise ValueError(f"the end mark at byte {len(raw) - 4} is out of step with the samples before it")
        mark = int(same[k])
        chunks.append(decode_words(np.frombuffer(raw[at:mark], dtype=">u2")))
        tag = raw[mark + 1] if mark + 1 < len(raw) else -1
        if raw[mark] != 0xF0 or not 0xF1 <= tag <= 0xF7:
            raise ValueError(f"byte {mark} of {len(raw)} ({raw[mark:mark + 2].hex()}) is neither a sample nor "
                             "a metadata record")
        if tag in (0xF1, 0xF2):
            end = raw.find(b"\xff\xff", mark + 2)
            if end < 0:
                raise ValueError(f"the text record at byte {mark} has no FF FF end")
            if tag == 0xF1:
                out.problems.append(f"error message {raw[mark + 2:end].decode('ascii', 'replace').strip()!r}")
            at = end + 2
            continue
        at = mark + _RECORD_LENGTH[tag]
        if raw[at - 2:at] != b"\xff\xff":
            raise ValueError(f"the metadata record F0 {tag:02X} at byte {mark} does not end with FF FF")
        if tag == 0xF3:
            out.timestamps.append((int.from_bytes(raw[mark + 2:mark + 6], "big"), raw[mark + 6]))
        elif tag in _FLAGS:
            out.problems.append(_FLAGS[tag])
        elif tag == 0xF4:
            out.current_a = np.concatenate(chunks)
            return out


def ascii_problem(line: str) -> str | None:
    """The board's complaint in an `ascii_dec` stream line (an error or overcurrent report), else None."""
    text = strip_prompt(line)
    return text if text.lower().startswith(("error", "err ")) or "overcurrent" in text.lower() else None
