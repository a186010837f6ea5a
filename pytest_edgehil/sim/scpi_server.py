"""A small threaded SCPI-over-TCP server ("raw socket", port 5025 style) on loopback.

It knows framing only: messages are lines ending in LF; a line may carry several commands separated
by `;` (headers after `;` resolved by the implied-path rule, `parse_line`); the replies to a line go
back as one LF-terminated response message, at once or, for an injected fault, with a `StagedReply`
whose parts are sent after delays (a late or half-sent reply). What the commands mean is the
handler's business (the analyzer twin). PyVISA reaches it as `TCPIP::127.0.0.1::<port>::SOCKET`.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("pytest_edgehil.sim.scpi_server")
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
# Replies shorter than this are joined with what follows them (the terminator, a compound reply's other
# units) and sent in one segment; longer ones are sent as they are, not copied to append a byte.
_JOIN_BYTES = 64 << 10


@dataclass(frozen=True)
class StagedReply:
    """A reply sent in parts: each (delay_s, bytes) after its delay; what follows the last (`;` and the next
    reply of a compound response, or the LF terminator) follows it at once.

    The serving thread sends it before reading the next command, as an instrument answers in order:
    whatever the client sends meanwhile is answered after it."""

    parts: tuple[tuple[float, bytes], ...]


Reply = bytes | StagedReply | None


@dataclass(frozen=True)
class ScpiCommand:
    """One parsed program message unit: `HEADER[?] arg, arg, ...`."""

    text: str  # as received
    header: str  # upper case, no leading colon, no trailing '?'
    is_query: bool
    args: tuple[str, ...]


def _split_outside(text: str, separator: str) -> list[str]:
    """Split on `separator` outside quotes and parentheses (channel lists like `(@1,2)` stay whole)."""
    parts: list[str] = []
    current: list[str] = []
    quote, depth = "", 0
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == separator and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if current or parts:
        parts.append("".join(current).strip())
    return parts


def split_units(line: str) -> list[str]:
    """Split a line into program message units on `;` (empty units dropped)."""
    return [unit for unit in _split_outside(line, ";") if unit]


def split_args(text: str) -> tuple[str, ...]:
    """Split a parameter list on `,` outside quotes and parentheses (channel lists stay whole)."""
    return tuple(_split_outside(text, ","))


def parse_command(unit: str) -> ScpiCommand:
    head, _, rest = unit.strip().partition(" ")
    header = head.upper().lstrip(":")
    is_query = header.endswith("?")
    return ScpiCommand(text=unit, header=header.rstrip("?"), is_query=is_query, args=split_args(rest.strip()))


def parse_line(line: str) -> list[ScpiCommand]:
    """The program message units of one line, headers resolved by SCPI-99's implied-path rule
    (section 6.2.4): after `;` a header not starting with `:` (or `*`) continues from the path of
    the previous header (all its nodes but the last), so `SENS:SWE:POIN 10;TINT 1E-5` sets
    `SENS:SWE:TINT`; `;:` restarts at the root and common commands (`*OPC`) leave the path alone."""
    commands: list[ScpiCommand] = []
    path: tuple[str, ...] = ()
    for unit in split_units(line):
        command = parse_command(unit)
        if command.header.startswith("*"):
            commands.append(command)
            continue
        if path and not unit.lstrip().startswith(":"):
            command = ScpiCommand(text=command.text, header=":".join((*path, command.header)),
                                  is_query=command.is_query, args=command.args)
        path = tuple(command.header.split(":")[:-1])
        commands.append(command)
    return commands


def _response_message(replies: list[Reply]) -> list[bytes | StagedReply]:
    """IEEE 488.2 8.4: the replies to the queries of one program message form one response message,
    joined by `;` (`SENS:SWE:POIN?;TINT?` -> `10;+4.096E-05`): returned as the list of its units, sent
    one after another (a megabyte block is not copied to join it). A staged (faulty) unit keeps its
    delays inside that message: a late block is still followed by `;` and the next unit, not by LF."""
    return [reply for reply in replies if reply is not None]


class ScpiServer:
    """Serve `handler(command) -> reply bytes | StagedReply | None` to TCP clients on 127.0.0.1."""

    def __init__(self, handler: Callable[[ScpiCommand], Reply], *, name: str = "scpi",
                 on_line: Callable[[str], None] | None = None) -> None:
        """`on_line(line)` is called as each line arrives, before the lines ahead of it have run
        (an instrument's input buffer sees an ABORt while a FETCh still waits)."""
        self._handler = handler
        self._on_line = on_line
        self._name = name
        self._listener: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self.port = 0

    def start(self) -> int:
        """Bind a free loopback port, start accepting; return the port."""
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.1)  # so that close() is noticed promptly
        self._listener = listener
        self.port = listener.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name=f"{self._name}-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self.port

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._clients.append(client)
            thread = threading.Thread(target=self._serve, args=(client,), name=f"{self._name}-client",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, client: socket.socket) -> None:
        """Execute the client's lines in order. A reader thread receives them meanwhile, so that
        `on_line` sees a line (an ABORt) while an earlier command still blocks (a FETCh waiting)."""
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=self._read, args=(client, lines), name=f"{self._name}-reader",
                                  daemon=True)
        reader.start()
        with client:
            while not self._closing.is_set():
                line = lines.get()
                if line is None:
                    return
                replies: list[Reply] = []
                for command in parse_line(line):
                    try:
                        replies.append(self._handler(command))
                    except Exception:  # a twin bug must not look like a silent instrument
                        log.exception("%s: handler failed on %r", self._name, command.text)
                if not self._send(client, _response_message(replies)):
                    return

    def _read(self, client: socket.socket, lines: queue.Queue[str | None]) -> None:
        buffer = b""
        try:
            while not self._closing.is_set():
                try:
                    chunk = client.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                if _QUICKACK is not None:
                    # ACK at once: clients that write, write, then read (SYST:ERR? after a setting)
                    # otherwise wait out our delayed ACK under Nagle's algorithm, ~40 ms a setting.
                    try:
                        client.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                    except OSError:  # closed meanwhile (the server is shutting down)
                        return
                buffer += chunk
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    line = raw.decode("ascii", errors="replace").strip()
                    if self._on_line is not None:
                        try:
                            self._on_line(line)
                        except Exception:
                            log.exception("%s: on_line failed on %r", self._name, line)
                    lines.put(line)
        finally:
            lines.put(None)

    def _send(self, client: socket.socket, units: list[bytes | StagedReply]) -> bool:
        """Send one response message (False once the connection or the server is gone): its units go
        `;`-separated, a staged one's parts after their delays; the LF terminator follows the last byte."""
        if not units:
            return True
        parts: list[tuple[float, bytes]] = []
        for k, unit in enumerate(units):
            if k:
                parts.append((0.0, b";"))
            parts.extend(unit.parts if isinstance(unit, StagedReply) else ((0.0, unit),))
        pending = b""  # small pieces go out joined, in one segment; a large block is never copied
        for delay_s, data in parts:
            if delay_s > 0:
                if pending and not self._sendall(client, pending):
                    return False
                pending = b""
                if self._closing.wait(delay_s):
                    return False
            if len(data) < _JOIN_BYTES:
                pending += data
                continue
            if (pending and not self._sendall(client, pending)) or not self._sendall(client, data):
                return False
            pending = b""
        return self._sendall(client, pending + b"\n")

    @staticmethod
    def _sendall(client: socket.socket, data: bytes | memoryview) -> bool:
        try:
            client.sendall(data)
        except OSError:
            return False
        return True

    def close(self) -> None:
        self._closing.set()
        if self._listener is not None:
            try:  # wakes the accept loop at once (else it notices within its 0.1 s timeout)
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        for client in self._clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            client.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)
