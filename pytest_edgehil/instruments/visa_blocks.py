"""Reading an IEEE 488.2 binary block's payload over PyVISA, and naming a compound fetch's reply that holds
no block: the parts of `VisaLink`'s block exchange that touch the VISA resource directly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyvisa

from pytest_edgehil.errors import InstrumentReplyError
from pytest_edgehil.instruments.replies import parse_error_entry, reply_error

# What one low-level read asks for. pyvisa-py scans its whole pending buffer for the termination character
# after every recv while that character is enabled, so large requests cost O(n^2); with it off (as here)
# 64 KiB pieces are decoded while still in cache.
READ_BYTES = 64 << 10


def read_float32_payload(resource: Any, length: int, *, big_endian: bool,
                         read_exact: Callable[[int], bytes]) -> np.ndarray:
    """`length` payload bytes decoded piece by piece into one native float32 array.

    Why pieces with the termination character off: pyvisa-py ends a read at every LF byte when the
    termination character is on (about one in 256 bytes of float data) and rescans its buffer each
    time; off, a read returns its full count. Each 64 KiB piece is put in place (byte-swapped if need
    be) while it is still in cache, which spares joining the block into one bytes object first.
    Native float32 rather than float64: no value changes, and half the bytes to write and to check.
    Raises what `read_exact` raises (InstrumentTimeout for a stalled transfer)."""
    values = np.empty(length // 4, dtype=np.float32)
    dtype = np.dtype(">f4" if big_endian else "<f4")
    done = 0
    with termchar_off(resource):
        while done < length:
            piece = read_exact(min(length - done, READ_BYTES))
            values[done // 4:(done + len(piece)) // 4] = np.frombuffer(piece, dtype=dtype)
            done += len(piece)
    return values


@contextmanager
def termchar_off(resource: Any) -> Iterator[None]:
    """VI_ATTR_TERMCHAR_EN off for a binary payload of known length, restored after (a backend that
    lacks the attribute reads as before)."""
    attribute = pyvisa.constants.ResourceAttribute.termchar_enabled
    try:
        was = resource.get_visa_attribute(attribute)
        resource.set_visa_attribute(attribute, pyvisa.constants.VI_FALSE)
    except (NotImplementedError, pyvisa.errors.Error, AttributeError):
        yield
        return
    try:
        yield
    finally:
        resource.set_visa_attribute(attribute, was)


def raise_blockless_reply(resource: Any, name: str, exc: InstrumentReplyError, message: str) -> None:
    """The reply to `<query>;:SYST:ERR?` held no block: if what came is an error entry, raise it named
    (the instrument refused the query) instead of "not a block"; otherwise return (the original stands)."""
    seen = exc.reply or b""
    if seen.startswith(b"#") or b"\n" in seen:
        return  # a block of another shape, or the whole reply already seen: the original error stands
    try:
        rest = resource.read_raw()
    except pyvisa.errors.Error:
        return  # nothing more: the original error stands
    text = seen + rest
    try:
        code, reason = parse_error_entry(text.decode("ascii", "replace"), resource=name)
    except InstrumentReplyError:
        return
    if code == 0:  # nothing queued: the query itself sent nothing, and no error says why
        raise reply_error(name, message, text, "holds no block: only the error query was answered "
                          "(+0, nothing queued)", "the query sent no reply and queued no error: check "
                          "that it exists on this instrument and fetch again") from exc
    raise reply_error(name, message, text, f"holds no block: the instrument queued {code:+d},"
                      f'"{reason}" instead', "arm and wait for a completed acquisition before fetching; "
                      "check that the capture settings were accepted") from exc

