"""The serial side of a device client: its port, the port's open/closed/lost state, and raw I/O.

`DevicePort` is what `link.client.DeviceClient` is built on: the port opened from a `serial_for_url` URL
(`/dev/ttyACM0`, `/dev/pts/7`, `socket://host:port`, `rfc2217://...`) or a ready pyserial object, writes
that fail typed, and reads that never block past a deadline (the request/reply rules of
`link.exchange` wait with them). A port that fails under the client (a board resetting re-enumerates its
USB-CDC port under another name) is closed at once and remembered as lost, so the next command says what
to do instead of failing the same way; `reopen()` (or `link.recovery.reconnect()`) finds the board again.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import serial

from pytest_edgehil.errors import DeviceError, DeviceTimeout, FrameCorrupt
from pytest_edgehil.link.messages import Frame, FrameDecoder

try:
    from serial.serialposix import Serial as PosixSerial
except ImportError:  # Windows: every port goes through pyserial's read
    PosixSerial = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

POLL_S = 0.05  # longest a wait sleeps before looking at its deadline again


@dataclass
class LinkStats:
    """What the line did to one client, for soak books and traffic reports (counts since construction)."""

    requests: int = 0  # commands sent (each once, retransmissions not included)
    retransmissions: int = 0  # the same request sent again (after a corrupt reply or a silent slice)
    corrupt_frames: int = 0  # received frames that failed COBS/length/CRC
    stale_replies: int = 0  # well-formed replies carrying another seq (duplicates, late answers), skipped
    ports_lost: int = 0  # the port failed under the client (vanished, EIO)
    reopened: int = 0  # reopen() calls that succeeded


class DevicePort:
    """One device's port with an explicit state: closed, open, or lost (failed under us until reopened)."""

    def __init__(self, port: str | serial.SerialBase, *, baudrate: int, timeout_s: float, name: str,
                 handshake: Callable[[serial.SerialBase], None] | None = None) -> None:
        self._url = port if isinstance(port, str) else None
        self._given = None if isinstance(port, str) else port  # handed over: the client closes it
        self.port = port if isinstance(port, str) else str(getattr(port, "port", None) or port)
        # A handed port runs at the rate it was opened with (open() does not set it): writes and waits are
        # timed at that rate, and messages name it.
        given_rate = getattr(self._given, "baudrate", None)
        self.baudrate = given_rate if isinstance(given_rate, int) and given_rate > 0 else baudrate
        self.timeout_s = timeout_s
        self.name = name
        self._serial: serial.SerialBase | None = None
        self._decoder = FrameDecoder()
        self._backlog: list[Frame | FrameCorrupt] = []  # decoded but not yet consumed (link.exchange)
        self._lock = threading.RLock()
        self._lost: str | None = None  # why the port failed under us, until reopened
        self.stats = LinkStats()
        # Run on the port each time it is opened, before any frame: an on-board agent's auth (link.agent_port).
        self.handshake = handshake

    # -- state ------------------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._serial is not None

    @property
    def lost(self) -> str | None:
        """Why the port failed under the client ("OSError: [Errno 5] …"), until it is reopened; else None.
        A client whose port was lost refuses commands until `reopen()`."""
        return self._lost

    def open(self) -> None:
        with self._lock:
            if self._serial is not None:
                return
            try:
                if self._given is not None:
                    if not self._given.is_open:
                        self._given.open()
                    self._given.reset_input_buffer()
                    ser = self._given
                else:
                    assert self._url is not None
                    # pyserial's rfc2217:// (ser2net's telnet port, a labgrid NetworkSerialPort) refuses a
                    # write timeout; its writes go to a TCP socket and return once the kernel takes them.
                    write_timeout = None if self._url.startswith("rfc2217://") else self.timeout_s
                    ser = serial.serial_for_url(self._url, baudrate=self.baudrate, timeout=0,
                                                write_timeout=write_timeout, exclusive=True)
                # Reads never block: the client waits with select() and its own deadlines.
                ser.timeout = 0
                if self.handshake is not None:
                    try:
                        self.handshake(ser)
                    except BaseException:
                        ser.close()
                        raise
                # A lone delimiter ends whatever partial garbage the device's decoder holds.
                ser.write(b"\x00")
            except (serial.SerialException, OSError, ValueError, OverflowError) as exc:
                raise DeviceError(f"device {self.name!r}: cannot open port {self.port} at {self.baudrate} baud: "
                                  f"{exc}. {_open_advice(self.port)}") from exc
            self._serial = ser
            self._lost = None
            self._decoder.reset()
            self._backlog.clear()

    def reopen(self, port: str | None = None) -> None:
        """Close the port and open `port` (default: the same one), e.g. a board found again under a new
        name after it reset. Only for clients built from a URL; DeviceError if the port cannot be opened."""
        with self._lock:
            if self._url is None:
                raise DeviceError(f"device {self.name!r}: cannot reopen a port object handed to the client "
                                  f"({self.port}); build the DeviceClient from a port URL to let it reconnect")
            self.close()
            if port is not None:
                self._url = self.port = port
            self.open()
            self.stats.reopened += 1

    def close(self) -> None:
        with self._lock:
            ser, self._serial = self._serial, None
            if ser is not None:
                ser.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_usable(self, command: str) -> None:
        """DeviceError unless the port is open (naming what to do if it was lost or never opened)."""
        if self._serial is None and self._lost is not None:
            # Under pytest the plugin finds the board again before the device's next test; a script
            # does it itself.
            raise DeviceError(f"device {self.name!r}: {command} called after port {self.port} was lost "
                              f"({self._lost}). In a pytest run the plugin finds the board again ("
                              f"{_found_by(self.port)}) before its next test; a script calls DeviceUnderTest.recover() "
                              "or Bench.reconnect(name) (DeviceClient.reopen(new_port) for a bare client)")
        if self._serial is None:
            raise DeviceError(f"DeviceClient {self.name!r} ({self.port}): {command} called while the client "
                              "is closed; call open() first or use the client as a context manager")

    # -- port I/O (called by link.exchange.Exchange) --------------------------------------------------------------------
    def _write(self, command: str, wire: bytes, *, read_replies: bool = False) -> None:
        """`wire` on the port. `read_replies` (several requests in flight, `link.pipeline`): while a POSIX
        port does not take it, the replies the device sends meanwhile are read into the backlog, for the
        waits. Why: a device busy writing a reply does not read, and a host blocked writing the next request
        does not read either, so each would wait for the other. (On other transports the device offers no
        more requests in flight than it can buffer.) DeviceTimeout and DeviceError as `_write_fd`."""
        assert self._serial is not None
        total = len(wire)
        fd = _posix_fd(self._serial)
        if fd is not None:
            # A POSIX port takes a request frame in one write as a rule: pyserial's own write first waits
            # in select for the port to be writable (a third of a RUN 1 round trip's host time).
            try:
                taken = os.write(fd, wire)
            except BlockingIOError:
                taken = 0
            except OSError as exc:
                raise self._port_failed(command, exc) from exc
            if taken < len(wire):
                self._write_fd(command, fd, wire, taken, read_replies=read_replies)
            return
        try:
            self._serial.write(wire)
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeout(f"device {self.name!r} on {self.port} at {self.baudrate} baud: writing {command} "
                                f"({total} bytes) timed out after {self.timeout_s} s: the device is not reading. "
                                "Check that the firmware/agent is running and flow control.") from exc
        except (serial.SerialException, OSError) as exc:
            raise self._port_failed(command, exc) from exc

    def _write_fd(self, command: str, fd: int, wire: bytes, taken: int = 0, *, read_replies: bool = False) -> None:
        """The rest of `wire` (after `taken` bytes) written to a POSIX port. DeviceTimeout when the port takes
        no byte for `timeout_s` (a slow line that keeps taking bytes is no timeout: 64 KiB at 115200 baud take
        5.7 s, longer than the default 5 s, and pyserial's write timeout bounds the whole write) or when it
        still takes after `write_limit_s`; DeviceError when the port fails."""
        view = memoryview(wire)[taken:]  # `taken` bytes went out already
        now = time.monotonic()
        deadline, limit = now + self.timeout_s, now + self.write_limit_s(len(wire))
        while view:
            # The write before took what the port had room for (or none): wait for room before the next one.
            # Writing again at once is refused nearly always (a pty takes about 4 KB per turn of its reader),
            # and each refused write is a system call and a hand-over of the interpreter lock to no purpose.
            readable, _, _ = select.select([fd] if read_replies else [], [fd], [], POLL_S)
            if readable:
                data = self._read_fd(fd, time.monotonic())
                self._backlog += self._decoder.feed(data) if data else []
            try:
                taken = os.write(fd, view)
            except BlockingIOError:
                taken = 0
            except OSError as exc:
                raise self._port_failed(command, exc) from exc
            now = time.monotonic()
            if taken:
                view = view[taken:]
                deadline = now + self.timeout_s
            if view and (now >= deadline or now >= limit):
                raise self.write_stalled(command, len(wire), len(wire) - len(view), trickled=now < deadline)

    def write_limit_s(self, size: int) -> float:
        """The longest a `size`-byte write may take even while the port keeps taking bytes: `timeout_s` plus
        twice its line time at the port's baud rate (10 bits a byte), so a device trickling a byte now and
        then cannot hold the host for ever."""
        return self.timeout_s + 2 * self.line_time_s(size)

    def line_time_s(self, size: float) -> float:
        """Seconds `size` bytes take on the line at the port's baud rate (8N1: 10 bits a byte)."""
        return size * 10 / self.baudrate

    def write_stalled(self, command: str, total: int, written: int, *, trickled: bool = False) -> DeviceTimeout:
        """The error of a write the port stopped taking (`written` of `total` bytes went out), or (`trickled`)
        still took after `write_limit_s`."""
        where = f"device {self.name!r} on {self.port} at {self.baudrate} baud: writing {command} ({total} bytes)"
        if trickled:
            return DeviceTimeout(f"{where} took more than {self.write_limit_s(total):.3g} s (timeout_s plus twice its "
                                 f"line time) and sent {written}: the device reads far slower than the line. Check "
                                 "the baud rate and flow control, and that the firmware reads its UART promptly.")
        return DeviceTimeout(f"{where} stalled: the port took no byte for {self.timeout_s} s after {written}: the "
                             "device is not reading. Check that the firmware/agent is running and flow control.")

    def _read_some(self, until: float) -> bytes:
        """Bytes available now, or after waiting at most until `until` (monotonic); b"" if none came."""
        ser = self._serial
        assert ser is not None
        fd = _posix_fd(ser)
        if fd is not None:
            return self._read_fd(fd, until)
        try:
            if ser.in_waiting == 0:
                wait_s = max(0.0, min(POLL_S, until - time.monotonic()))
                try:
                    select.select([ser.fileno()], [], [], wait_s)
                except (AttributeError, NotImplementedError, OSError, ValueError):
                    time.sleep(min(wait_s, 0.001))  # transports without a selectable fd (rfc2217://, loop://)
            return bytes(ser.read(65536))
        except (serial.SerialException, OSError) as exc:
            raise self._port_failed("read", exc) from exc

    def _read_fd(self, fd: int, until: float) -> bytes:
        """`_read_some` on a POSIX port: one select and one read (pyserial's read adds an ioctl and a second
        select per call, a fifth of a RUN 1 round trip). The same failure rules as pyserial's read."""
        try:
            if not select.select([fd], [], [], max(0.0, min(POLL_S, until - time.monotonic())))[0]:
                return b""
            data = os.read(fd, 65536)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise self._port_failed("read", exc) from exc
        if not data:  # readable but empty: the port is gone (pyserial raises the same)
            raise self._port_failed("read", serial.SerialException(
                "device reports readiness to read but returned no data (device disconnected?)"))
        return data

    def _port_failed(self, command: str, exc: Exception) -> DeviceError:
        # The port is dead (a vanished pty or USB-CDC node gives EIO for good): release its descriptors now,
        # and remember why, so the next command says what to do instead of failing the same way.
        ser, self._serial = self._serial, None
        self._lost = f"{type(exc).__name__}: {exc}"
        self.stats.ports_lost += 1
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError):
                pass  # already gone: nothing left to release
        return DeviceError(f"device {self.name!r}: port {self.port} failed during {command}: "
                           f"{str(exc).rstrip('.')}. {_lost_advice(self.port)}")


def _posix_fd(ser: serial.SerialBase) -> int | None:
    """The descriptor of a POSIX serial port (ttys, ptys), read directly; None for other transports
    (socket://, rfc2217://, loop://), which go through pyserial's read."""
    if PosixSerial is not None and isinstance(ser, PosixSerial) and ser.fd is not None:
        return int(ser.fd)
    return None


def _lost_advice(port: str) -> str:
    """What to check when an open port fails: a network agent's connection drops, a USB board re-enumerates."""
    if port.startswith(("socket://", "rfc2217://")):
        return ("The connection to the board's agent (or ser2net) dropped: check that it is still running at that "
                "host and port (a board that rebooted restarts it) and the network to it.")
    return ("The board may have reset or re-enumerated (USB-CDC ports vanish on reset); check the cable and "
            "identify the board by `usb_serial` in the lab file.")


def _open_advice(port: str) -> str:
    """What to check when a port does not open: a network agent is not a cable."""
    if port.startswith(("socket://", "rfc2217://")):
        return ("Check that the board's agent (or ser2net) is running and listening at that host and port, "
                "that the host is reachable from here, and the lab file's `port`.")
    return ("Check the cable, that the port exists and no other program holds it, and the lab file's "
            "`port`/`usb_serial`.")


def _found_by(port: str) -> str:
    """How the plugin reaches a lost board again: a network agent at its URL, a USB board by `usb_serial`."""
    if "://" in port:
        return f"by reconnecting to {port}: check that the board's agent is running"
    return "by `usb_serial`"

