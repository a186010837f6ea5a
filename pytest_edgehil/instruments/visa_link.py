"""The logged VISA link: every write and read logged, every reply checked, and the session recovered
after a timeout or a malformed reply so that one bad reply costs one test, not the session.

Why recovery is needed: after a read times out part-way, the rest of the reply arrives later and
would be read as the answer to the next query; a malformed block leaves its unread payload on the
line the same way. So after any timeout or reply error the link clears the session (on a TCPIP SOCKET
it discards the read buffer and drains what is on the socket, bounded, itself; on INSTR resources a VISA
device clear, and the instrument clears its output queue), clears the instrument's status (`*CLS`), and
then sends `*IDN?` and discards everything until the instrument's own identity comes back: a late
reply still in flight is thereby consumed, however many lines its binary payload splits into.
If that does not succeed within `sync_timeout_s`, the next use of the link tries again first.

A query the instrument holds until something happens (a FETCh waiting for an acquisition's trigger)
keeps it from answering that `*IDN?`: the caller names a `release` command for such a query (the
driver's stop command, `ABOR:ACQ`), which recovery after its timeout sends before `*CLS`. The held query
then ends with the error SCPI gives a query with no data (-230, nothing sent), and the `*CLS` after it
clears that error, so it is not blamed on the next command.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pyvisa

from pytest_edgehil.errors import InstrumentError, InstrumentReplyError, InstrumentTimeout, ScpiError
from pytest_edgehil.instruments.replies import (
    check_block_end,
    decode_text,
    parse_ascii_floats,
    parse_error_entry,
    parse_number,
    read_block_header,
    reply_error,
    shown,
)
from pytest_edgehil.instruments.visa_blocks import (
    READ_BYTES,
    raise_blockless_reply,
    read_float32_payload,
    termchar_off,
)

T = TypeVar("T")

# More entries than any instrument's queue holds: past this the queue is not draining (a stuck reply).
MAX_QUEUE_ENTRIES = 64
# Blocks are read in chunks of this size, so a stalled transfer can say how far it got (to within a
# chunk); each chunk is one pyvisa read of that size (pyvisa's default 20 KB reads cost a quarter of a
# 1 M-sample fetch in Python loop overhead).
_CHUNK_BYTES = 1 << 20
# A raw socket is drained until it is quiet this long (what pyvisa-py's SOCKET clear waits for).
_DRAIN_QUIET_MS = 100
# The largest block any modelled instrument sends: NGM202 FastLog, 4 Mi (V, I) float32 pairs.
MAX_BLOCK_BYTES = 4_194_304 * 2 * 4


class VisaLink:
    """A PyVISA message resource that logs every write and read, checks every reply, raises our typed
    errors, and recovers the session after a timeout or a malformed reply (see the module docstring).

    `identity` is the instrument's `*IDN?` reply once known (`open_analyzer` sets it); recovery
    re-synchronizes on it.
    """

    def __init__(self, resource: Any, name: str) -> None:
        self.resource = resource
        self.name = name
        self.log = logging.getLogger(f"pytest_edgehil.visa.{name}")
        self.identity: str | None = None
        self.needs_recovery = False
        self.recoveries = 0  # successful recoveries (tests and logs read it)
        self._release: str | None = None  # sent first by the pending recovery (see the module docstring)

    @property
    def timeout_ms(self) -> float:
        return float(self.resource.timeout or 0)

    @property
    def sync_timeout_s(self) -> float:
        """How long recovery waits for a late reply to drain before the identity comes back."""
        return max(2.0, 4 * self.timeout_ms / 1000)

    # --- error mapping and recovery --------------------------------------------------------------------

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise InstrumentTimeout(
                    f"{self.name} did not answer {what!r} (in full) within {self.timeout_ms:g} ms; check "
                    f"that the instrument is on and reachable (pyvisa-info, ping its address) and that "
                    f"no other program holds the session") from exc
            raise InstrumentError(f"{self.name}: VISA error during {what!r}: {exc}; check the "
                                  f"connection (pyvisa-info, cabling, address)") from exc
        except (OSError, EOFError) as exc:
            raise InstrumentError(f"{self.name}: connection failed during {what!r}: {exc}; check the "
                                  f"address (pyvisa-info lists what VISA sees), that the instrument "
                                  f"is on, and the network/USB cabling") from exc

    def _exchange(self, what: str, action: Callable[[], T], release: str | None = None) -> T:
        """Run one write/read exchange; after a timeout or a bad reply, recover before raising. After a
        timeout, `release` (if given) is sent first to end what the instrument still holds the query for."""
        if self.needs_recovery:
            self.recover()
        try:
            return self._call(what, action)
        except (InstrumentTimeout, InstrumentReplyError) as exc:
            if release is not None and isinstance(exc, InstrumentTimeout):
                self._release = release
            try:
                self.recover()
                outcome = "the session was cleared and resynchronized"
            except InstrumentError as failed:  # the first error is the one to report; retry at next use
                self.log.warning("could not resynchronize after a bad reply to %r: %s", what, failed)
                outcome = f"clearing the session failed too ({failed}); it is retried before the next use"
            exc.args = (f"{exc.args[0]} [{outcome}]", *exc.args[1:])
            raise

    def _clear(self) -> None:
        # A raw socket has no device-clear message: clearing it is discarding what was received. pyvisa-py
        # (0.8) does that by reading until the socket is quiet for 0.1 s, which a socket the instrument
        # closed never is (readable, and recv returns b""): it spins forever. So we drain it ourselves.
        if getattr(self.resource, "resource_class", None) == "SOCKET":
            self._drain()
            return
        # Not every backend implements viClear (pyvisa-sim raises NotImplementedError): then at least
        # discard the read buffer; a VISA error here is left to the *IDN? synchronization to judge.
        unsupported = (NotImplementedError, pyvisa.errors.Error)
        try:
            self.resource.clear()
        except unsupported as exc:
            self.log.debug("device clear not supported (%s); discarding the read buffer", exc)
            try:
                self.resource.flush(pyvisa.constants.BufferOperation.discard_read_buffer_no_io)
            except unsupported:
                self.log.debug("flush not supported either", exc_info=True)

    def _drain(self) -> None:
        """Discard the read buffer and what arrives until the line is quiet for _DRAIN_QUIET_MS, for at most
        `sync_timeout_s` (an instrument still sending is left to the *IDN? synchronization). A closed
        connection ends it: its read times out or fails; the recovery's next write then says so."""
        try:
            self.resource.flush(pyvisa.constants.BufferOperation.discard_read_buffer_no_io)
        except (NotImplementedError, pyvisa.errors.Error):
            self.log.debug("flush not supported", exc_info=True)
        deadline = time.monotonic() + self.sync_timeout_s
        timeout = self.resource.timeout
        self.resource.timeout = _DRAIN_QUIET_MS
        discarded = 0
        try:
            with termchar_off(self.resource):
                while time.monotonic() < deadline:
                    discarded += len(self.resource.read_raw())
        except (pyvisa.errors.Error, OSError):
            pass  # quiet (the read timed out), or the connection is gone
        finally:
            self.resource.timeout = timeout
        self.log.debug("drained %d bytes from the socket", discarded)

    def recover(self) -> None:
        """Clear the session and read until `*IDN?` answers with `identity` (see the module docstring); a
        read that times out is not the end of it: a reply later than the VISA timeout may still arrive ahead
        of the identity, and is drained, within `sync_timeout_s`.

        Raises InstrumentError (InstrumentTimeout if the instrument stays silent) when the
        identity does not come back within `sync_timeout_s`; the link then retries at its next use.
        """
        self.needs_recovery = True
        self.log.info("clearing the session (device clear, *CLS) after a timeout or malformed reply")
        self._clear()
        if self.identity is None:  # nothing to synchronize on yet (the *IDN? of open itself failed)
            self.needs_recovery = False
            return
        release = self._release
        if release is not None:  # before *CLS: the error the released query queues is cleared with the rest
            self.log.info("sending %s to end the query the instrument still holds", release)
            self._call(release, lambda: self.resource.write(release))
        self._call("*CLS", lambda: self.resource.write("*CLS"))
        self._call("*IDN?", lambda: self.resource.write("*IDN?"))
        expected = self.identity.encode("ascii")
        deadline = time.monotonic() + self.sync_timeout_s
        discarded = 0
        silent: InstrumentTimeout | None = None
        while time.monotonic() < deadline:
            try:
                raw: bytes = self._call("*IDN? (resynchronizing)", self.resource.read_raw)
            except InstrumentTimeout as exc:  # a late reply ahead of the identity may still come in time
                silent = exc
                continue
            silent = None
            if raw.rstrip(b"\r\n") == expected:
                self.needs_recovery = False
                self._release = None
                self.recoveries += 1
                self.log.info("session resynchronized (%d stale bytes discarded)", discarded)
                return
            discarded += len(raw)
        if silent is not None:  # nothing at all came back before the deadline
            raise silent
        raise InstrumentError(f"{self.name}: after clearing the session, *IDN? did not answer with "
                              f"{self.identity!r} within {self.sync_timeout_s:g} s ({discarded} stale bytes "
                              f"discarded); power-cycle the instrument or reconnect")

    # --- reading ---------------------------------------------------------------------------------------

    def _read_exact(self, count: int, *, command: str, received: list[int]) -> bytes:
        """Exactly `count` bytes, or InstrumentTimeout saying how far the reply got."""
        # Chunks kept as they come and joined once: appending each to a bytearray and copying that out
        # again cost two extra passes over a 4 MB block (a tenth of a 1 M-sample fetch).
        parts: list[bytes] = []
        got = 0
        while got < count:
            try:
                part = self.resource.read_bytes(min(count - got, _CHUNK_BYTES), chunk_size=READ_BYTES)
            except pyvisa.errors.VisaIOError as exc:
                if exc.error_code != pyvisa.constants.StatusCode.error_timeout:
                    raise
                total = received[0] + got
                if total == 0:
                    raise InstrumentTimeout(
                        f"{self.name} did not answer {command!r} within {self.timeout_ms:g} ms; check that "
                        f"the instrument is on and reachable (pyvisa-info) and that the acquisition "
                        f"completed") from exc
                raise InstrumentTimeout(
                    f"{self.name}: reply to {command!r} stopped after {total} bytes (last: "
                    f"{shown(parts[-1][-16:] if parts else b'')}), {count - got} short of what its block header "
                    f"announced: a short block or a stalled transfer; check the connection and fetch "
                    f"again") from exc
            parts.append(part)
            got += len(part)
        received[0] += count
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_text(self, command: str) -> str:
        raw: bytes = self.resource.read_raw()
        reply = decode_text(raw, resource=self.name, command=command)
        self.log.debug("read %s", reply if len(reply) < 200 else f"{reply[:200]}... ({len(reply)} chars)")
        return reply

    # --- the public exchanges --------------------------------------------------------------------------

    def write(self, command: str) -> None:
        self.log.debug("write %s", command)
        self._exchange(command, lambda: self.resource.write(command))

    def query(self, command: str) -> str:
        """The reply as checked ASCII text (InstrumentReplyError for non-ASCII bytes)."""
        return self.query_checked(command, lambda text: text)

    def query_checked(self, command: str, parse: Callable[[str], T], release: str | None = None) -> T:
        """The reply passed through `parse`, which raises InstrumentReplyError for a bad one; `release` as
        for `query_float32_block`."""
        self.log.debug("write %s", command)

        def exchange() -> T:
            self.resource.write(command)
            return parse(self._read_text(command))

        return self._exchange(command, exchange, release)

    def query_number(self, command: str, *, minimum: float | None = None, maximum: float | None = None,
                     integer: bool = False, unit: str = "") -> float:
        """A finite number within [minimum, maximum]; InstrumentReplyError (and recovery) otherwise."""
        return self.query_checked(command, lambda text: parse_number(
            text, resource=self.name, command=command, minimum=minimum, maximum=maximum,
            integer=integer, unit=unit))

    def query_error(self, command: str = "SYST:ERR?") -> tuple[int, str]:
        """One error-queue entry as (code, text)."""
        return self.query_checked(command, lambda text: parse_error_entry(text, resource=self.name,
                                                                         command=command))

    def query_float32_block(self, command: str, *, big_endian: bool, expected_count: int | None = None,
                            max_bytes: int = MAX_BLOCK_BYTES, release: str | None = None) -> np.ndarray:
        """A definite-length block of float32, decoded in the given byte order, as native float32 (the
        values exactly as sent; arithmetic on them widens to float64 where it needs to, as
        `Trace.power_w` does). `release`: the command that ends this query if the instrument holds it
        (see the module docstring).

        We parse the block ourselves rather than through pyvisa's `query_binary_values`: that one
        silently drops bytes after the block and trusts the header's length however large."""
        values, _ = self._float32_exchange(command, None, big_endian=big_endian, expected_count=expected_count,
                                           max_bytes=max_bytes, release=release)
        return values

    def query_float32_block_and_error(self, command: str, error_query: str, *, big_endian: bool,
                                      expected_count: int | None = None, max_bytes: int = MAX_BLOCK_BYTES,
                                      release: str | None = None) -> tuple[np.ndarray, tuple[int, str]]:
        """`query_float32_block` and the first error-queue entry, asked in one program message
        (`<command>;:<error_query>`, IEEE 488.2 §7.3: the replies come back as one response message,
        the block then `;` then the entry): a round trip fewer per fetch than asking separately.

        An instrument that answers the query with no block (it queued an error instead, e.g. -230 for
        no data) sends only the entry: InstrumentReplyError naming it, after recovery."""
        values, entry = self._float32_exchange(command, error_query, big_endian=big_endian,
                                               expected_count=expected_count, max_bytes=max_bytes,
                                               release=release)
        assert entry is not None
        return values, entry

    def _float32_exchange(self, command: str, error_query: str | None, *, big_endian: bool,
                          expected_count: int | None, max_bytes: int,
                          release: str | None) -> tuple[np.ndarray, tuple[int, str] | None]:
        message = command if error_query is None else f"{command};:{error_query.lstrip(':')}"
        self.log.debug("write %s", message)

        def exchange() -> tuple[np.ndarray, tuple[int, str] | None]:
            self.resource.write(message)
            received = [0]

            def read_exact(count: int) -> bytes:
                return self._read_exact(count, command=command, received=received)

            try:
                header, length = read_block_header(
                    read_exact, resource=self.name, command=command,
                    expected_bytes=None if expected_count is None else 4 * expected_count, max_bytes=max_bytes)
            except InstrumentReplyError as exc:
                if error_query is not None:
                    raise_blockless_reply(self.resource, self.name, exc, message)
                raise
            if length % 4:
                raise reply_error(self.name, command, header, f"announces {length} bytes, not whole float32 "
                                  "values", "check FORM REAL (32-bit) and that the query returns float32")
            values = read_float32_payload(self.resource, length, big_endian=big_endian, read_exact=read_exact)
            tail = header + values[-2:].astype(">f4" if big_endian else "<f4").tobytes()
            if error_query is None:
                check_block_end(read_exact, resource=self.name, command=command, length=length, tail=tail)
                return values, None
            check_block_end(read_exact, resource=self.name, command=message, length=length, tail=tail,
                            terminator=b";")
            return values, parse_error_entry(self._read_text(message), resource=self.name, command=error_query)

        values, entry = self._exchange(command, exchange, release)
        self.log.debug("read block of %d float32 (%s-endian)", values.size, "big" if big_endian else "little")
        return values, entry

    def query_ascii_floats(self, command: str, *, expected_count: int | None = None,
                           release: str | None = None) -> np.ndarray:
        """Comma-separated readings, each finite, `expected_count` of them if given; `release` as for
        `query_float32_block`."""
        values = self.query_checked(command, lambda text: parse_ascii_floats(
            text, resource=self.name, command=command, expected_count=expected_count), release)
        self.log.debug("read %d ASCII values", values.size)
        return values

    def close(self) -> None:
        self.log.debug("close")
        self._call("close", self.resource.close)


def drain_errors(link: VisaLink, *, after: str, model: str, query: str = "SYST:ERR?",
                 first: tuple[int, str] | None = None) -> None:
    """Read the error queue until it reports no error; raise ScpiError with every entry found. `first`:
    an entry already read (asked together with the last query), taken as the queue's first."""
    entries: list[str] = []
    for number in range(MAX_QUEUE_ENTRIES):
        code, text = first if number == 0 and first is not None else link.query_error(query)
        if code == 0:
            break
        entries.append(f'{code:+d},"{text}"')
    else:
        raise InstrumentError(f"{model} at {link.name}: {query} still reports errors after "
                              f"{MAX_QUEUE_ENTRIES} reads; send *CLS and check the instrument")
    if entries:
        raise ScpiError(f"{model} at {link.name} reported {'; '.join(entries)} after `{after}`; check "
                        f"the value against the instrument's manual and the module/option installed")
