"""The serial line to MLPerf Tiny reference firmware: one command out, its reply read to `m-ready`.

A reply is never taken for another command's. The reference firmware runs one command at a time to its
end (mlcommons/tiny `benchmark/reference_submissions/*/main.cpp`: getchar -> ee_serial_callback -> the
command, then `m-ready`) and reads the next only after that, so a command that times out (an `infer`
outlasting the wait) still answers, later. The reference runner does not guard against it: its
`SerialDevice.send_command` (runner/serial_device.py) raises "No response to command" and leaves the
reader thread's queue as it is, so the late lines and their `m-ready` are read as the next command's
reply; its `reset_port()` (flush, then read until 0.1 s of quiet) is not called, and quiet would not prove
it either: a board in the middle of a long `infer` prints nothing for seconds.

Here a reply not read to its end leaves the line *unfinished*. Before the next command the line is
resynchronised by a marker: two commands the firmware does not know, `edgehil-sync-<random>%` twice (the
first ends any half command left in the firmware's buffer), whose `e-[Unknown command: <second>]` and the
`m-ready` after it can only come after everything the firmware owed before. What came before the marker
is dropped into the traffic log. A firmware that does not echo the marker within the command's wait is
still busy or hung: DeviceTimeout naming the port, the command that timed out and to reset the board; the
next command tries again, so a board that finishes later is used again, and a late reply never leaks.
"""

from __future__ import annotations

import secrets
import select
import time

import serial

from pytest_edgehil.errors import DeviceError, DeviceTimeout, ProtocolError
from pytest_edgehil.link import eembc
from pytest_edgehil.link.traffic_log import TrafficLog

_POLL_S = 0.05


class EembcLink:
    """The firmware's UART on `port` at `baudrate`: explicit open/closed state, `transact`, and the
    unfinished-reply state (`unfinished`: the command whose reply was not read to its end, or None)."""

    def __init__(self, port: str, *, baudrate: int = 115200, timeout_s: float = 10.0, name: str = "device",
                 traffic_log: TrafficLog | None = None, io_manager: bool = False) -> None:
        self.port, self.baudrate, self.timeout_s, self.name = port, baudrate, timeout_s, name
        self.io_manager = io_manager  # the port is an EEMBC IO manager's, relaying to the board (eembc.unwrap_io)
        self.traffic_log = traffic_log if traffic_log is not None else TrafficLog()
        self._serial: serial.SerialBase | None = None
        # About the board, not the port: a reopened port still gets the late reply.
        self.unfinished: str | None = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        if self._serial is not None:
            return
        try:
            self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"device {self.name!r}: cannot open port {self.port} at {self.baudrate} baud: {exc}. "
                              "Check the cable and that no other program holds the port") from exc

    def close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            ser.close()

    def transact(self, text: str, timeout_s: float | None = None) -> list[str]:
        """Send `text%`, read lines until `m-ready`, for at most the longer of `timeout_s` and the link's
        own. Resynchronises first after an unfinished reply. DeviceTimeout / ProtocolError naming port,
        baud, bytes; DeviceError when closed."""
        ser = self._serial
        if ser is None:
            raise DeviceError(f"EembcClient {self.name!r} ({self.port}): {text}% while closed; call open() first")
        wait_s = max(self.timeout_s, timeout_s or 0.0)
        if self.unfinished is not None:
            self._resync(ser, wait_s)
        ser.reset_input_buffer()  # unsolicited bytes (a boot banner) are no reply either
        self.unfinished = text  # until its m-ready is read
        ser.write(self._wire(text))
        self.traffic_log.note("tx", self._wire(text).decode()[:80], device=self.name)
        raw = bytearray()
        deadline = time.monotonic() + wait_s
        while not eembc.reply_done(bytes(raw), self.io_manager):
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._silent(text, bytes(raw), wait_s)
            chunk = self._read(ser, left)
            raw += chunk
            if any(b > 0x7E for b in chunk):  # the firmware prints ASCII only: garbage now is garbage for good
                break
        else:
            self.unfinished = None
        try:
            lines = eembc.split_lines(bytes(raw))
            self.traffic_log.note("rx", " | ".join(lines)[:120], device=self.name)
            return eembc.unwrap_io(lines, text) if self.io_manager else lines
        except ProtocolError as exc:
            raise ProtocolError(f"device {self.name!r} on {self.port} at {self.baudrate} baud, reply to {text}%: "
                                f"{exc}{self._io_baud_hint()}") from exc

    def _wire(self, text: str) -> bytes:
        """`text%`, or `dut text%` for the IO manager to pass on."""
        return (f"{eembc.IO_COMMAND} {text}" if self.io_manager else text).encode("ascii") + b"%"

    def _io_baud_hint(self) -> str:
        return ("" if not self.io_manager else ". Through an IO manager the lab's `baud` is the host side; the "
                "board side is the IO manager's own setting (`setbaud N%` on the interface board) and must be "
                "the firmware's (9600 in the reference energy build)")

    def _resync(self, ser: serial.SerialBase, wait_s: float) -> None:
        """Drop what the firmware still owed for `unfinished`, up to the echo of a marker command."""
        stale = self.unfinished
        flush, mark = (f"edgehil-sync-{secrets.token_hex(4)}" for _ in range(2))
        ser.write(self._wire(flush) + self._wire(mark))
        self.traffic_log.note("tx", f"resync after {stale}%: {flush}% {mark}%"[:120], device=self.name)
        echo = f"Unknown command: {mark}]".encode()  # EE_ERR_CMD "e-[Unknown command: %s]"
        raw = bytearray()
        deadline = time.monotonic() + wait_s
        while True:
            at = raw.find(echo)
            if at >= 0 and raw.find(eembc.READY.encode(), at) >= 0:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                got = f"{len(raw)} bytes came ({bytes(raw[-60:])!r})" if raw else "nothing came"
                if any(b > 0x7E for b in raw):
                    got += "; they are not the firmware's text: suspect a baud-rate mismatch (the lab's `baud`)"
                raise DeviceTimeout(
                    f"device {self.name!r} on {self.port} at {self.baudrate} baud: {stale}% timed out earlier and "
                    f"its reply never ended; the firmware did not answer the resync command {mark}% within "
                    f"{wait_s:.3g} s either ({got}). It is still busy or hung: wait for it, or reset (power-cycle) "
                    "the board. Until it answers, each command resyncs first, so no late reply is read as another "
                    "command's")
            raw += self._read(ser, left)
        self.traffic_log.note("rx", f"dropped after {stale}% timed out: {bytes(raw[:at])[:100]!r}",
                              device=self.name, raw=bytes(raw[:at]))
        self.unfinished = None

    @staticmethod
    def _read(ser: serial.SerialBase, left_s: float) -> bytes:
        select.select([ser.fileno()], [], [], min(left_s, _POLL_S))
        return bytes(ser.read(65536))

    def _silent(self, text: str, raw: bytes, wait_s: float) -> DeviceTimeout:
        got = f"received {len(raw)} bytes" + (f" ({raw[:40]!r})" if raw else "")
        fix = ("Nothing came back: check the cable, the port and that the firmware runs (it prints m-ready at boot)"
               if not raw else "Bytes came but never m-ready: suspect a baud-rate mismatch (the lab file's `baud` "
               "against the firmware's UART) or firmware of another protocol")
        if self.io_manager and b"Unknown command: dut" in raw:
            fix = ("The firmware itself answered `dut …%` (e-[Unknown command: dut]): this port is the board's own "
                   "UART, not an IO manager. Drop `eembc_io_manager` or give the IO manager's port")
        elif self.io_manager and b"m-dut-passthrough(" in raw and eembc.IO_PREFIX.encode() not in raw:
            fix = ("The IO manager passed the command on, but the board behind it never answered: check the "
                   "board's UART wires to the IO manager, the board's power (the energy monitor supplies it) and "
                   "the IO manager's board-side baud (`setbaud N%` on the interface board; the reference energy "
                   "firmware runs 9600)")
        return DeviceTimeout(f"device {self.name!r} on {self.port} at {self.baudrate} baud did not finish {text}% "
                             f"within {wait_s:.3g} s; {got}. {fix}")
