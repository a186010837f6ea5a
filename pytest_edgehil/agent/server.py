"""`edgehil agent`: serves the framed protocol over TCP to one authenticated host at a time.

Binds 127.0.0.1 unless told otherwise (a board on a lab network is opened on purpose, `--host 0.0.0.0`).
Each connection first passes the challenge–response of `link.auth` (the token never crosses the wire);
a peer that fails it gets `DENIED …`, is closed, and is logged with its address. Then frames are decoded
(`link.framing`), answered by the backend (`litert_device.LiteRTDevice`) and encoded back with the
request's seq; a retransmitted request (same seq, type and payload as the previous one) is answered from
the reply cache without running twice, as the protocol's retry rule requires of every firmware. A
second host while one is connected is refused ("busy"): one owner per board.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from typing import TYPE_CHECKING, Protocol

from pytest_edgehil.errors import ProtocolError
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.auth import HOST_HELLO, MAX_LINE, NONCE_BYTES, agent_check, greeting
from pytest_edgehil.link.framing import Frame, FrameDecoder
from pytest_edgehil.link.messages import encode_message

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

log = logging.getLogger("pytest_edgehil.agent")
DEFAULT_PORT = 4000
AUTH_TIMEOUT_S = 10.0  # a peer that does not finish the handshake in this time is dropped
# TCP keepalive on a host's connection: after this long silent, probe every KEEPALIVE_INTERVAL_S, and drop it
# after KEEPALIVE_PROBES unanswered (25 s in all). A host that vanished without closing (powered off, its
# network gone) sends no FIN; without probes the agent waits in recv for ever and refuses every later host
# as "busy". A live host's kernel answers the probes, however long the host itself is idle.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES = 10, 5, 3
# Requests whose replies `_frames` keeps for retransmissions: the last one. A backend offering EVAL must
# not let the host keep more in flight than this (HELLO `pipeline=N`, N <= REPLY_CACHE): after a corrupt
# reply the host resends every request still waiting, and one whose reply is no longer cached would run
# again.
REPLY_CACHE = 1


class Backend(Protocol):
    def handle(self, message: p.Message) -> p.Message: ...


class AgentServer:
    """A listening agent. `start()` serves in a thread (tests, `serve_forever()` for the command line)."""

    def __init__(self, backend: Backend, token: bytes, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.backend, self._token = backend, token
        self._listener = socket.create_server((host, port), reuse_port=False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        self.refused: list[str] = []  # "peer: reason" of every refused connection (also logged)
        self.sessions = 0

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, name=f"edgehil-agent:{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        log.info("edgehil agent listening on %s:%s", self.host, self.port)
        while not self._stop.is_set():
            try:
                conn, peer = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn, f"{peer[0]}:{peer[1]}"), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # never connected: nothing to shut down
        self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one connection ------------------------------------------------------------------------------------
    def _serve(self, conn: socket.socket, peer: str) -> None:
        with conn:
            ok_line = self._authenticate(conn, peer)
            if ok_line is None:
                return
            if not self._busy.acquire(blocking=False):
                self._refuse(conn, peer, "busy: another host is connected to this board")
                return
            try:
                self.sessions += 1
                _keep_alive(conn)
                conn.sendall(ok_line)
                conn.settimeout(None)
                self._frames(conn, peer)
            finally:
                self._busy.release()

    def _authenticate(self, conn: socket.socket, peer: str) -> bytes | None:
        """The OK line to send once the board is free, or None (refused, logged)."""
        conn.settimeout(AUTH_TIMEOUT_S)
        nonce = secrets.token_bytes(NONCE_BYTES)
        try:
            opening = _read_line(conn)  # the host speaks first (link.auth: pyserial drops early bytes)
            if opening.split()[:1] != [HOST_HELLO]:
                self._refuse(conn, peer, f"not an edgehil host (it sent {opening[:40]!r})")
                return None
            conn.sendall(greeting(nonce).encode())
            line = _read_line(conn)
        except (OSError, ValueError) as exc:
            self._note_refused(peer, f"no handshake ({exc})")
            return None
        accepted, reply = agent_check(self._token, nonce, line)
        if not accepted:
            self._refuse(conn, peer, reply.removeprefix("DENIED ").strip(), reply)
            return None
        return reply.encode()

    def _refuse(self, conn: socket.socket, peer: str, reason: str, line: str | None = None) -> None:
        self._note_refused(peer, reason)
        try:
            conn.sendall((line or f"DENIED {reason}\n").encode())
        except OSError:
            pass  # the peer is gone already: refused either way

    def _note_refused(self, peer: str, reason: str) -> None:
        self.refused.append(f"{peer}: {reason}")
        log.warning("edgehil agent: refused %s: %s", peer, reason)

    def _frames(self, conn: socket.socket, peer: str) -> None:
        decoder = FrameDecoder()
        last: tuple[Frame, bytes] | None = None
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                log.info("edgehil agent: %s disconnected", peer)
                return
            for item in decoder.feed(data):
                if not isinstance(item, Frame):
                    log.debug("edgehil agent: dropped a corrupt frame from %s: %s", peer, item)
                    continue  # its seq is unknown: the host retransmits after its slice
                if last is not None and last[0] == item:
                    wire = last[1]  # a retransmission: the same answer, nothing runs twice
                else:
                    wire = _encode(self._answer(item), item.seq)
                    last = (item, wire)
                conn.sendall(wire)

    def _answer(self, request: Frame) -> p.Message:
        if request.msg_type != p.MsgType.HELLO and request.version != p.PROTOCOL_VERSION:
            return p.Error(p.ErrorCode.BAD_PAYLOAD, f"request in protocol version {request.version}, this agent "
                                                    f"speaks {p.PROTOCOL_VERSION}")
        try:
            message = p.Hello() if request.msg_type == p.MsgType.HELLO else request.message()
        except ProtocolError as exc:
            return p.Error(p.ErrorCode.BAD_PAYLOAD, str(exc))
        try:
            return self.backend.handle(message)
        except Exception as exc:  # an agent answers INTERNAL rather than dropping the host
            log.exception("edgehil agent: backend failed on %s", type(message).__name__)
            return p.Error(p.ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")


def _keep_alive(conn: socket.socket) -> None:
    """Probe the host's side of `conn` when it falls silent (KEEPALIVE_*); the timing options where the
    platform has them (Linux, macOS name the idle one TCP_KEEPALIVE), else the system's defaults."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = getattr(socket, "TCP_KEEPIDLE", getattr(socket, "TCP_KEEPALIVE", None))
    for option, value in ((idle, KEEPALIVE_IDLE_S), (getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL_S),
                          (getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_PROBES)):
        if option is not None:
            conn.setsockopt(socket.IPPROTO_TCP, option, value)


def _read_line(conn: socket.socket) -> str:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
        if len(data) > MAX_LINE:
            raise ValueError("handshake line too long")
    return data.decode("ascii", "replace")


def _encode(reply: p.Message, seq: int) -> bytes:
    try:
        return encode_message(reply, seq)
    except ProtocolError as exc:  # e.g. outputs too large for one frame: say so instead of going silent
        return encode_message(p.Error(p.ErrorCode.INTERNAL, f"{type(reply).__name__} reply cannot be sent: {exc}"),
                              seq)
