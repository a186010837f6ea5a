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
"""

from __future__ import annotations

import logging
import os
import select
import threading
import tty
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pytest_edgehil.errors import FrameCorrupt, ProtocolError
from pytest_edgehil.link.messages import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Error,
    ErrorCode,
    Frame,
    FrameDecoder,
    Hello,
    Message,
    MsgType,
    encode_message,
)

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

Handler = Callable[[Message], Sequence[Message]]
READ_CHUNK = 65536
POLL_S = 0.1  # how often a blocked write looks at the stop flag

log = logging.getLogger("pytest_edgehil.sim.pty_link")


class PtyEndpoint:
    """A served pty: `.port` is the path the host opens; `.close()` stops serving (idempotent)."""

    def __init__(self, handler: Handler, *, name: str, protocol_version: int = PROTOCOL_VERSION) -> None:
        self.name = name
        self._handler = handler
        self._version = protocol_version
        self._master_fd, self._slave_fd = os.openpty()
        # Raw mode at once: in the default cooked mode, bytes written before the host opens the port
        # are echoed back to us and line-buffered, i.e. lost or mangled.
        tty.setraw(self._slave_fd)
        # We keep the slave open ourselves so the pty survives the host closing and reopening it.
        self.port = os.ttyname(self._slave_fd)
        os.set_blocking(self._master_fd, False)
        self._wake_r, self._wake_w = os.pipe()
        self._decoder = FrameDecoder()
        self._last_request: Frame | None = None
        self._last_reply = b""
        self._faults_lock = threading.Lock()
        self._corrupt_replies = 0
        self._drop_replies = 0
        self.frames_received = 0  # good request frames, retransmissions included
        self.corrupt_frames = 0  # request frames dropped for bad COBS/length/CRC
        self.replays = 0  # retransmitted requests answered from the reply cache
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"pty-link-{name}", daemon=True)
        self._thread.start()

    # -- fault injection (device → host direction) ----------------------------------------------------
    def corrupt_next_reply(self, count: int = 1) -> None:
        """Flip one byte in each of the next `count` replies sent (the reply cache keeps them intact)."""
        with self._faults_lock:
            self._corrupt_replies += count

    def drop_next_reply(self, count: int = 1) -> None:
        """Send nothing for the next `count` replies, as if the line lost them."""
        with self._faults_lock:
            self._drop_replies += count

    # -- lifecycle ------------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        os.write(self._wake_w, b"x")
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
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
            readable, _, _ = select.select([self._master_fd, self._wake_r], [], [])
            if self._wake_r in readable:
                return
            try:
                data = os.read(self._master_fd, READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:  # the pty went away under us
                log.warning("%s: pty read failed (%s); stopping the link on %s", self.name, exc, self.port)
                return
            for item in self._decoder.feed(data):
                if isinstance(item, FrameCorrupt):
                    self.corrupt_frames += 1
                    log.debug("%s: dropped a corrupt request frame: %s", self.name, item)
                else:
                    self.frames_received += 1
                    self._answer(item)

    def _answer(self, request: Frame) -> None:
        if request == self._last_request:
            self.replays += 1
            wire = self._last_reply
        else:
            replies = self._dispatch(request)
            wire = b"".join(self._encode(reply, request.seq) for reply in replies)
            self._last_request, self._last_reply = request, wire
        if wire:
            self._send(self._apply_faults(wire))

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

    def _apply_faults(self, wire: bytes) -> bytes:
        with self._faults_lock:
            if self._drop_replies:
                self._drop_replies -= 1
                return b""
            if not self._corrupt_replies:
                return wire
            self._corrupt_replies -= 1
        damaged = bytearray(wire)
        i = wire.index(0) // 2  # inside the first frame, away from its delimiter
        damaged[i] ^= 0x5A if damaged[i] != 0x5A else 0xA5  # never 0x00: stays one (corrupt) frame
        return bytes(damaged)

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


def serve_pty(handler: Handler, *, name: str, protocol_version: int = PROTOCOL_VERSION) -> PtyEndpoint:
    """Serve `handler` on a new pty; `protocol_version` stamps reply frames (tests emulate other firmware)."""
    return PtyEndpoint(handler, name=name, protocol_version=protocol_version)
