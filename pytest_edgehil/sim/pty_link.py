"""Device side of the serial link: serve a message handler on a real pseudo-terminal.

`serve_pty(handler, name=...)` opens a pty and answers frames arriving on it, so a device twin (or a
test) only writes `handler(message) -> replies`; framing, sequence numbers, retransmissions and
fault injection live here once. The host opens `endpoint.port` (e.g. /dev/pts/7) with pyserial
exactly as it opens a USB-CDC board.

Rules this link implements (docs/protocol.md):
- A corrupt incoming frame is dropped and counted; the device cannot answer it (its seq is unknown),
  so the host's timeout and retransmission cover it.
- Idempotent retransmission: a request identical to the previous one (same seq, type and payload) is
  answered from the cached reply, without calling the handler again.
- A request whose payload does not decode gets ERROR BAD_PAYLOAD, an unknown type ERROR UNKNOWN_MESSAGE,
  a handler that raises ERROR INTERNAL: the host hears about it instead of timing out.
- Faults (`sim/device_faults.py`) are applied here, on whole frames as they cross the line: each frame
  received (before it is decoded) and each reply sent (after it is cached, so a retransmission is
  answered intact). A reboot closes the pty and serves on a new one after `down_s`; with `usb_serial`
  the link publishes its current port in `sim/usb_ports.py`, where the host finds it again.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import tty
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pytest_edgehil.errors import FrameCorrupt, ProtocolError
from pytest_edgehil.link.messages import (
    MAX_ENCODED,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Error,
    ErrorCode,
    Frame,
    FrameDecoder,
    Hello,
    Message,
    MsgType,
    decode_frame,
    encode_message,
    type_name,
)
from pytest_edgehil.sim import usb_ports
from pytest_edgehil.sim.device_faults import WIRE_KINDS, DeviceFault, DeviceFaultPlan, damage, restamp
from pytest_edgehil.sim.pty_reader import PtyReader

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

Handler = Callable[[Message], Sequence[Message]]
RebootHook = Callable[[bool], None]  # called with `wipe_flash` when the board reboots
# Replies kept for retransmissions: the pipeline depth a twin offers (capability `pipeline=3`) needs one
# per request in flight. A firmware offering depth N keeps N (docs/protocol.md, "Pipelined evaluation").
REPLY_CACHE = 3
POLL_S = 0.1  # how often a blocked write looks at the stop flag

log = logging.getLogger("pytest_edgehil.sim.pty_link")


class PtyEndpoint:
    """A served pty: `.port` is the path the host opens; `.close()` stops serving (idempotent)."""

    def __init__(self, handler: Handler, *, name: str, protocol_version: int = PROTOCOL_VERSION,
                 faults: DeviceFaultPlan | None = None, usb_serial: str | None = None,
                 on_reboot: RebootHook | None = None) -> None:
        self.name = name
        self._handler = handler
        self._version = protocol_version
        self.faults = faults if faults is not None else DeviceFaultPlan()
        self.usb_serial = usb_serial
        self._on_reboot = on_reboot
        self._master_fd, self._slave_fd, self.port = _open_pty()
        self._wake_r, self._wake_w = os.pipe()
        self._raw = bytearray()  # received bytes after the last delimiter
        self._decoder = FrameDecoder()
        # The last REPLY_CACHE requests and their replies: a retransmission of any request a pipelining
        # host may still wait for is answered from here, without running it again.
        self._cache: deque[tuple[Frame, bytes]] = deque(maxlen=REPLY_CACHE)
        self._hung: Frame | None = None  # the request a hang swallowed (and swallows again when retransmitted)
        self.frames_received = 0  # good request frames, retransmissions included
        self.corrupt_frames = 0  # request frames dropped for bad COBS/length/CRC
        self.replays = 0  # retransmitted requests answered from the reply cache
        self.swallowed = 0  # requests a hang left unanswered
        self.reboots = 0
        self._stop = threading.Event()
        self._closed = False
        if usb_serial:
            usb_ports.publish(usb_serial, self.port)
        # Reads the line on its own thread, so the next request arrives while a handler computes.
        self._reader = PtyReader(self._master_fd, name=name)
        self._thread = threading.Thread(target=self._serve, name=f"pty-link-{name}", daemon=True)
        self._thread.start()

    # -- fault injection shortcuts (the plan in `faults` does the work) -------------------------------------
    def corrupt_next_reply(self, count: int = 1) -> None:
        """Flip one bit in each of the next `count` replies sent (the reply cache keeps them intact)."""
        self.faults.inject(DeviceFault("corrupt", count))

    def drop_next_reply(self, count: int = 1) -> None:
        """Send nothing for the next `count` replies, as if the line lost them."""
        self.faults.inject(DeviceFault("drop-frame", count))

    # -- lifecycle ------------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._reader.stop()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
        self._reader.close()
        if self.usb_serial:
            usb_ports.withdraw(self.usb_serial, self.port)
        for fd in (self._master_fd, self._slave_fd, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PtyEndpoint(name={self.name!r}, port={self.port!r}, closed={self._closed})"

    # -- serving ---------------------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            data = self._reader.take()
            if data is None:  # stopped, or the pty failed (the reader said why)
                return
            reboots = self.reboots
            for part in self._split(data):
                self._receive(part)
                if self.reboots != reboots or self._stop.is_set():
                    break  # the rest was said to the board before it reset: lost with the old pty

    def _split(self, data: bytes) -> list[bytes]:
        """Whole frames (each with its 0x00) received so far; an over-long run goes to the decoder, which
        reports and discards it. A read holding exactly one frame is passed on as it is (no copy)."""
        if 0 not in data:  # a frame still arriving
            self._raw += data
            if len(self._raw) <= MAX_ENCODED:
                return []
            run, self._raw = bytes(self._raw), bytearray()
            return [run]
        if self._raw:
            self._raw += data
            data = bytes(self._raw)
            self._raw.clear()
        cut = data.rindex(b"\x00") + 1
        self._raw += data[cut:]  # the start of the next frame, if any
        parts = []
        start = 0
        while start < cut:
            end = data.index(b"\x00", start) + 1
            parts.append(data[start:end])
            start = end
        return parts

    def _receive(self, part: bytes) -> None:
        """One frame as it came off the line: request faults applied, then decoded and answered."""
        fault = None
        if len(part) > 1 and self.faults.active:
            peeked = _peek(part)
            # A hung firmware is not reading its line: retransmissions of the hung request draw no faults.
            if peeked is not None and peeked != self._hung:
                fault = self.faults.take("request", type_name(peeked.msg_type), peeked.seq)
        pieces = damage(part, fault, self.faults) if fault is not None and fault.kind in WIRE_KINDS else [part]
        for piece in pieces:
            for item in self._decoder.feed(piece):
                if isinstance(item, FrameCorrupt):
                    self.corrupt_frames += 1
                    log.debug("%s: dropped a corrupt request frame: %s", self.name, item)
                else:
                    self.frames_received += 1
                    self._answer(item, fault)

    def _answer(self, request: Frame, fault: DeviceFault | None = None) -> None:
        if self._hung is not None and request == self._hung:
            self.swallowed += 1
            return
        if fault is not None and fault.kind == "reboot":
            self._reboot(fault)
            return
        cached = next((wire for seen, wire in self._cache if seen == request), None)
        if cached is not None:
            self.replays += 1
            wire = cached
        else:
            replies = self._dispatch(request)
            wire = b"".join(self._encode(reply, request.seq) for reply in replies)
            self._cache.append((request, wire))
        if fault is not None and fault.kind == "hang":
            self._hung = request  # the work was done (the inference ran) but the answer never comes
            return
        if wire:
            self._reply(request, wire)

    def _reply(self, request: Frame, wire: bytes) -> None:
        fault = self.faults.take("reply", type_name(request.msg_type), request.seq) if self.faults.active else None
        if fault is None:
            self._send(wire)
            return
        if fault.kind == "delay" and self._stop.wait(fault.delay_s):
            return
        if fault.kind == "stale-seq":
            wire = restamp(wire, seq_delta=-1)
        elif fault.kind == "bad-version":
            wire = restamp(wire, version=fault.version)
        for piece in damage(wire, fault, self.faults):
            self._send(piece)

    def _reboot(self, fault: DeviceFault) -> None:
        """The board resets: its port vanishes now; after `down_s` it serves again on a new pty path.

        The new pty is opened before the old one is closed, so the kernel cannot hand back the same
        /dev/pts number: the host must find the board again (by USB serial number), as after a real reset.
        """
        master, slave, port = _open_pty()
        old = (self._master_fd, self._slave_fd)
        self._reader.swap(master)  # what it read from the old pty and we did not take is lost with it
        if self.usb_serial:
            usb_ports.withdraw(self.usb_serial, self.port)
        self._master_fd, self._slave_fd, old_port, self.port = master, slave, self.port, port
        for fd in old:
            os.close(fd)
        self.reboots += 1
        self._raw.clear()
        self._decoder.reset()
        self._cache.clear()
        self._hung = None
        log.info("%s: rebooting: %s closed, back on %s in %.3g s", self.name, old_port, port, fault.down_s)
        if self._on_reboot is not None:
            self._on_reboot(fault.wipe_flash)
        if self._stop.wait(fault.down_s):
            return
        if self.usb_serial:
            usb_ports.publish(self.usb_serial, self.port)

    def _dispatch(self, request: Frame) -> Sequence[Message]:
        if request.msg_type == MsgType.HELLO:
            message: Message = Hello()  # HELLO is answered in any version: it is how hosts learn ours
        elif request.version != self._version:
            return [Error(ErrorCode.BAD_PAYLOAD,
                          f"{self.name}: request in protocol version {request.version}, this device speaks "
                          f"version {self._version}; send HELLO to read the device's version")]
        elif request.msg_type not in MESSAGE_TYPES:
            return [Error(ErrorCode.UNKNOWN_MESSAGE,
                          f"{self.name}: unknown message type 0x{request.msg_type:02X}")]
        else:
            try:
                message = request.message()
            except ProtocolError as exc:
                return [Error(ErrorCode.BAD_PAYLOAD, f"{self.name}: {exc}")]
        try:
            return list(self._handler(message))
        except Exception as exc:  # a real firmware reports INTERNAL rather than going silent
            log.exception("%s: handler failed on %s", self.name, type(message).__name__)
            return [Error(ErrorCode.INTERNAL, f"{self.name}: {type(exc).__name__}: {exc}")]

    def _encode(self, reply: Message, seq: int) -> bytes:
        try:
            return encode_message(reply, seq, version=self._version)
        except ProtocolError as exc:
            error = Error(ErrorCode.INTERNAL, f"{self.name}: {type(reply).__name__} reply cannot be sent: {exc}")
            return encode_message(error, seq, version=self._version)

    def _send(self, wire: bytes) -> None:
        view = memoryview(wire)
        while view and not self._stop.is_set():
            try:
                view = view[os.write(self._master_fd, view):]
            except BlockingIOError:
                # The host is not reading (yet): wait for room, but stay stoppable.
                select.select([self._wake_r], [self._master_fd], [], POLL_S)
            except OSError as exc:
                log.warning("%s: pty write failed (%s); reply dropped", self.name, exc)
                return


def serve_pty(handler: Handler, *, name: str, protocol_version: int = PROTOCOL_VERSION,
              faults: DeviceFaultPlan | None = None, usb_serial: str | None = None,
              on_reboot: RebootHook | None = None) -> PtyEndpoint:
    """Serve `handler` on a new pty; `protocol_version` stamps reply frames (tests emulate other firmware).

    `faults`: the fault plan applied on the line (default: none, armable later on `endpoint.faults`);
    `usb_serial`: publish the current port under this serial number (`sim/usb_ports.py`); `on_reboot`:
    told (with `wipe_flash`) when a reboot fault resets the board, to drop what a reset loses.
    """
    return PtyEndpoint(handler, name=name, protocol_version=protocol_version, faults=faults,
                       usb_serial=usb_serial, on_reboot=on_reboot)


def _open_pty() -> tuple[int, int, str]:
    """(master fd, slave fd, slave path) of a new pty, raw, master non-blocking."""
    master, slave = os.openpty()
    # Raw mode at once: in the default cooked mode, bytes written before the host opens the port
    # are echoed back to us and line-buffered, i.e. lost or mangled.
    tty.setraw(slave)
    os.set_blocking(master, False)
    # We keep the slave open ourselves so the pty survives the host closing and reopening it.
    return master, slave, os.ttyname(slave)


def _peek(part: bytes) -> Frame | None:
    """The frame in `part` (one frame and its delimiter), or None if it does not decode."""
    try:
        return decode_frame(part[:-1])
    except FrameCorrupt:
        return None
