"""Instrument replies are data to check: decoding of SCPI text, numbers, error entries and blocks.

Pure functions, no I/O: each takes the bytes (or text) an instrument sent plus the resource and the
command that asked for them, and either returns a checked value or raises `InstrumentReplyError`
naming the resource, the command, a truncated repr of the bytes seen and what to check. Nothing here
lets a bare `UnicodeDecodeError`, `OverflowError` or `ValueError` escape, and nothing loops on the
reply's own say-so: a block's announced length is checked against what the caller expects before a
single payload byte is read, so a malformed header cannot make us wait for a gigabyte.

SCPI-99 sentinels: an instrument reports "not a number" as 9.91E37 and overrange/infinity as
±9.9E37; both are refused here like `INF`/`NAN` text, since no reading of ours comes near them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from pytest_edgehil.errors import InstrumentReplyError

# SCPI-99 §7.2.1.5: NaN is 9.91E37, +/-INF is +/-9.9E37. No reading of ours is this large: a number as
# large is refused; it is named a sentinel only when it is one of these values (a byte-swapped float32
# takes any magnitude up to 3.4E38).
SCPI_SENTINEL = 9.9e37
SCPI_SENTINELS = (9.9e37, 9.91e37)
# A SCPI error number is a 16-bit signed integer (SCPI-99 §21.8; device-specific ones are positive).
ERROR_CODE_RANGE = (-32768, 32767)
# The widest status register a SCPI instrument has (SCPI-99 §9: 16-bit condition registers).
STATUS_REGISTER_MAX = 65535
_SHOWN_BYTES = 48


def shown(raw: bytes | str, limit: int = _SHOWN_BYTES) -> str:
    """A truncated repr of what the instrument sent, with its total length when cut."""
    if len(raw) <= limit:
        return repr(raw)
    return f"{raw[:limit]!r}... ({len(raw)} {'bytes' if isinstance(raw, bytes) else 'chars'})"


def reply_error(resource: str, command: str, raw: bytes | str, problem: str, check: str) -> InstrumentReplyError:
    """`InstrumentReplyError` with the one message shape every reply check uses."""
    return InstrumentReplyError(
        f"{resource}: reply to {command!r} {problem}: got {shown(raw)}; {check}",
        resource=resource, command=command,
        reply=raw if isinstance(raw, bytes) else raw.encode("ascii", "backslashreplace"))


def decode_text(raw: bytes, *, resource: str, command: str) -> str:
    """A text reply as str, terminator and surrounding blanks removed.

    Raises InstrumentReplyError for a byte outside printable ASCII (a binary block answered to a
    text query, line noise, a reply in another encoding)."""
    body = raw.rstrip(b"\r\n")
    codes = np.frombuffer(body, dtype=np.uint8)  # vectorized: an ASCII array reply runs to megabytes
    outside = np.flatnonzero(((codes < 0x20) & (codes != 0x09)) | (codes > 0x7E))
    if outside.size:
        bad = int(outside[0])
        raise reply_error(resource, command, raw, f"holds the non-ASCII byte {body[bad]:#04x} at offset {bad}",
                          "check that the query expects a text reply (FORM ASC vs REAL) and that no other "
                          "program shares the session")
    return body.decode("ascii").strip()


def parse_number(text: str, *, resource: str, command: str, minimum: float | None = None,
                 maximum: float | None = None, integer: bool = False, unit: str = "") -> float:
    """A finite number within [minimum, maximum] (inclusive); InstrumentReplyError otherwise.

    `integer`: the value must be whole (a register, a count); it is still returned as float, so the
    caller converts with int() knowing it cannot overflow."""
    check = "check that the instrument is the model the driver expects and that the setting exists on it"
    try:
        value = float(text.strip().strip('"'))
    except ValueError:
        raise reply_error(resource, command, text, "is not a number", check) from None
    if not math.isfinite(value) or abs(value) >= SCPI_SENTINEL:
        raise reply_error(resource, command, text,
                          "is SCPI's INF/NaN sentinel, not a reading (overrange or no measurement)",
                          "check the measurement range and that a measurement was taken")
    if integer and value != int(value):
        raise reply_error(resource, command, text, "is not a whole number", check)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "-inf" if minimum is None else f"{minimum:g}"
        high = "inf" if maximum is None else f"{maximum:g}"
        raise reply_error(resource, command, text, f"is outside {low} to {high} {unit}".rstrip(), check)
    return value


def parse_status(text: str, *, resource: str, command: str) -> int:
    """A status-register reply: a whole number 0 to 65535."""
    return int(parse_number(text, resource=resource, command=command, minimum=0,
                            maximum=STATUS_REGISTER_MAX, integer=True))


def parse_error_entry(text: str, *, resource: str, command: str = "SYST:ERR?") -> tuple[int, str]:
    """A SYST:ERR? reply `<code>,"<text>"` as (code, text); InstrumentReplyError if it is not one."""
    head, comma, rest = text.strip().partition(",")
    check = ("another reply was probably still pending: if this repeats, send *CLS and "
             "reconnect")
    head = head.strip()
    digits = head[1:] if head[:1] in "+-" else head
    if not comma or not digits.isdigit() or not digits.isascii():
        raise reply_error(resource, command, text, "is not an error entry '<code>,\"<text>\"'", check)
    code = int(head)
    if not ERROR_CODE_RANGE[0] <= code <= ERROR_CODE_RANGE[1]:
        raise reply_error(resource, command, text, "carries an error number outside -32768 to 32767", check)
    return code, rest.strip().strip('"')


def parse_ascii_floats(text: str, *, resource: str, command: str, expected_count: int | None = None) -> np.ndarray:
    """Comma-separated readings as float64; every one finite, and `expected_count` of them if given."""
    fields = text.split(",") if text.strip() else []
    if expected_count is not None and len(fields) != expected_count:
        raise reply_error(resource, command, text, f"holds {len(fields)} values, expected {expected_count}",
                          "another program may have changed the capture settings: configure again")
    try:
        values = np.array(fields, dtype=np.float64)  # vectorized; the slow path below names the culprit
    except ValueError:
        values = np.array([parse_number(field, resource=resource, command=command) for field in fields])
    bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) >= SCPI_SENTINEL))
    if bad.size:
        field = fields[int(bad[0])]
        parse_number(field, resource=resource, command=command)  # raises, naming the value and why
        raise reply_error(resource, command, field, "is not a finite number", "check the measurement range")
    return values


# --- IEEE 488.2 definite-length blocks -----------------------------------------------------------------

ReadExact = Callable[[int], bytes]


def read_block_header(read_exact: ReadExact, *, resource: str, command: str, expected_bytes: int | None,
                      max_bytes: int) -> tuple[bytes, int]:
    """Read a block's `#<n><length>` header through `read_exact`; return it and the payload's length.

    Raises InstrumentReplyError for a reply that is not a definite-length block (`#0` indefinite blocks
    included), a length field that is not digits, and a length other than `expected_bytes` (checked
    before any payload byte is read) or above `max_bytes`."""
    head = read_exact(2)
    if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
        raise reply_error(resource, command, head, "is not a definite-length block '#<n><length>...'",
                          "check FORM REAL (binary) vs ASC and the byte count the query returns")
    digits = read_exact(int(head[1:2]))
    if not digits.isdigit():
        raise reply_error(resource, command, head + digits, "has a block header whose length is not digits",
                          "the reply is garbled (a noisy link or another program on the session)")
    length = int(digits)
    if (expected_bytes is not None and length != expected_bytes) or length > max_bytes:
        wanted = f"{expected_bytes} were expected" if expected_bytes is not None else f"the limit is {max_bytes}"
        raise reply_error(resource, command, head + digits, f"announces a {length}-byte block but {wanted}",
                          "another program may have changed the capture settings (points, functions): "
                          "configure again")
    return head + digits, length


def check_block_end(read_exact: ReadExact, *, resource: str, command: str, length: int, tail: bytes,
                    terminator: bytes = b"\n") -> None:
    """Read what follows a `length`-byte block (`tail`: its last bytes, shown in errors) and raise
    InstrumentReplyError unless it is `terminator` (surplus is never dropped silently)."""
    end = read_exact(len(terminator))
    if end == b"\n" != terminator:  # the response message ended: the next unit never came
        raise reply_error(resource, command, tail + end, f"ends after its {length}-byte block, without the "
                          f"reply to the query after it ({terminator!r} and that reply were expected)",
                          "the instrument answered only the first query of the program message: fetch again")
    if end != terminator:
        raise reply_error(resource, command, tail + end,
                          f"carries bytes after its {length}-byte block instead of {terminator!r}",
                          "the reply is longer than its header says (garbled or mixed with another reply)")


def read_block(read_exact: ReadExact, *, resource: str, command: str, expected_bytes: int | None,
               max_bytes: int, terminator: bytes = b"\n") -> bytes:
    """Read one `#<n><length><payload>` block and its terminator through `read_exact`; return the payload.

    `read_exact(k)` returns exactly k bytes or raises (InstrumentTimeout when the instrument stops
    sending). Raises InstrumentReplyError as `read_block_header` and `check_block_end` do.
    """
    header, length = read_block_header(read_exact, resource=resource, command=command,
                                       expected_bytes=expected_bytes, max_bytes=max_bytes)
    payload = read_exact(length)
    if terminator:
        check_block_end(read_exact, resource=resource, command=command, length=length,
                        tail=header + payload[-8:], terminator=terminator)
    return payload


def decode_block(data: bytes, *, resource: str = "<bytes>", command: str = "<block>",
                 expected_bytes: int | None = None, max_bytes: int = 1 << 30) -> bytes:
    """The payload of a complete block reply held in memory (optional LF terminator); see `read_block`.

    Missing bytes raise InstrumentReplyError, as do bytes left over after the block."""
    position = 0

    def read_exact(count: int) -> bytes:
        nonlocal position
        chunk = data[position:position + count]
        position += len(chunk)
        if len(chunk) < count:
            raise reply_error(resource, command, data, f"ends after {len(data)} bytes, inside its block",
                              "the block is shorter than its header says; fetch again")
        return chunk

    payload = read_block(read_exact, resource=resource, command=command, expected_bytes=expected_bytes,
                         max_bytes=max_bytes, terminator=b"")
    rest = data[position:]
    if rest not in (b"", b"\n", b"\r\n"):
        raise reply_error(resource, command, data, f"carries {len(rest)} bytes after its block",
                          "the reply is longer than its header says; the surplus is not dropped silently")
    return payload


def decode_float32(payload: bytes, *, big_endian: bool, resource: str, command: str,
                   expected_count: int | None = None) -> np.ndarray:
    """A float32 block payload as float64 values; the byte count must be a multiple of 4 (and match)."""
    if len(payload) % 4:
        raise reply_error(resource, command, payload, f"carries {len(payload)} bytes, not whole float32 values",
                          "check FORM REAL (32-bit) and that the query returns float32")
    with np.errstate(invalid="ignore"):  # a signalling NaN warns on the cast; NaNs are refused by range checks
        values = np.frombuffer(payload, dtype=">f4" if big_endian else "<f4").astype(np.float64)
    if expected_count is not None and values.size != expected_count:
        raise reply_error(resource, command, payload, f"holds {values.size} values, expected {expected_count}",
                          "another program may have changed the capture settings: configure again")
    return values


# --- physical plausibility of decoded readings ------------------------------------------------------------


def check_plausible(values: np.ndarray, *, full_scale: float, what: str, where: str,
                    hint: str, expected: float | None = None, command: str = "") -> float:
    """Raise InstrumentReplyError if decoded samples cannot be real readings (wrong byte order, format).

    A byte-swapped float32 decodes without any error to values that are absurdly large, NaN, or
    absurdly small (subnormal-like); a real reading is finite, within its range, and not below a
    part in 10^12 of it. Where the level is known (`expected`, e.g. the programmed supply voltage)
    the median must also lie within 25 % of it: a swapped 3.3 V decodes to a tidy-looking 4e-8.
    SCPI's INF/NaN sentinels (9.9E37, 9.91E37) are named as such. Returns the largest magnitude (what
    `check_not_clipped` needs, so it does not pass over the samples again).
    """
    what_cmd = command or what
    if values.size == 0:
        raise reply_error(where, what_cmd, b"", f"returned no {what} samples",
                          "the acquisition did not complete: arm and wait again")
    # Fast path: the smallest and largest sample (two reductions, no temporary array; a NaN propagates
    # into both). Largest magnitude finite, below the sentinels and within range, and the smallest sample
    # above the floor (all positive, none tiny) is exactly "nothing bad" below. Only when a sample is
    # zero or negative is the magnitude built for the floor test, and only when something is wrong are
    # the masks built to count and name the bad samples.
    lowest, highest = float(values.min()), float(values.max())
    largest = max(highest, -lowest)
    floor = full_scale * 1e-12
    if not (largest < SCPI_SENTINEL and largest <= 1.1 * full_scale):  # NaN fails both comparisons
        _name_impossible(values, np.abs(values), full_scale=full_scale, what=what, where=where, hint=hint,
                         what_cmd=what_cmd)
    if lowest < floor:
        magnitude = np.abs(values)
        if float(np.min(magnitude, where=magnitude > 0, initial=np.inf)) < floor:
            _name_impossible(values, magnitude, full_scale=full_scale, what=what, where=where, hint=hint,
                             what_cmd=what_cmd)
    low, high = (0.75 * expected, 1.25 * expected) if expected is not None else (0.0, 0.0)
    if (expected is not None and expected > 0 and not low <= lowest <= highest <= high
            and not _median_surely_within(values, low, high)):
        median = float(np.median(values))  # the exact median, only when the counts cannot clear it
        if abs(median - expected) > 0.25 * expected:
            raise reply_error(where, what_cmd, repr(median),
                              f"has median {what} {median!r} but {expected:g} was programmed; the data "
                              f"look mis-decoded", hint)
    return largest


def _name_impossible(values: np.ndarray, magnitude: np.ndarray, *, full_scale: float, what: str, where: str,
                     hint: str, what_cmd: str) -> None:
    """The full checks of `check_plausible`, run when its fast path saw something: raise naming it."""
    # The exact sentinel values (to float32's rounding), not all values this large: a byte-order mistake
    # decodes 0.66 % of 1-90 mA currents past 9.9E37, and "check the range" was then the wrong advice.
    sentinel = np.zeros(values.shape, dtype=bool)
    for value in SCPI_SENTINELS:
        sentinel |= np.isclose(magnitude, value, rtol=1e-6, atol=0.0)
    if sentinel.any():
        raise reply_error(where, what_cmd, repr(float(values[sentinel][0])),
                          f"holds SCPI's INF/NaN sentinel in {int(sentinel.sum())} of {values.size} {what} samples",
                          "the instrument had no valid reading (overrange or no measurement): check the range")
    bad = ~np.isfinite(values) | (magnitude > 1.1 * full_scale) | ((magnitude > 0) & (magnitude < full_scale * 1e-12))
    if bad.any():
        first = float(values[bad][0])
        raise reply_error(where, what_cmd, repr(first),
                          f"holds {int(bad.sum())} of {values.size} {what} samples impossible for a "
                          f"{full_scale:g} full scale; the data look mis-decoded", hint)


def _median_surely_within(values: np.ndarray, low: float, high: float) -> bool:
    """True if the median of `values` lies in [low, high], decided by two counts instead of a selection.

    Fewer than half the samples below `low` (and fewer than half above `high`) puts both middle samples,
    hence the median, inside: two vectorised comparisons, where np.median of 1 M samples partitions a
    copy. False means "not sure" (near a tie, or outside): the caller then computes the median itself.
    """
    half = values.size / 2
    return int(np.count_nonzero(values < low)) < half and int(np.count_nonzero(values > high)) < half


def check_not_clipped(current_a: np.ndarray, *, range_a: float, where: str, command: str,
                      largest: float | None = None) -> None:
    """Refuse a trace whose current reached the end of its measurement range.

    A sample at or beyond the range limit is the ADC saturating, not the device's current: integrating
    it under-reports energy by an unknown amount, so the trace is refused rather than measured.
    `largest`: the samples' largest magnitude if already known (`check_plausible` returns it); below the
    limit it clears the trace without another pass."""
    if largest is not None and largest < range_a * (1 - 1e-6):
        return
    clipped = np.abs(current_a) >= range_a * (1 - 1e-6)
    if clipped.any():
        raise reply_error(where, command, repr(float(current_a[clipped][0])),
                          f"has {int(clipped.sum())} of {current_a.size} current samples at the "
                          f"{range_a:g} A range limit (clipped)",
                          "raise current_range_a (the lab file's current_range_a for this board) above "
                          "the board's peak current; a clipped trace is never integrated")
