"""A twin of the EEMBC IO manager (MLPerf Tiny's interface board) on a pty, in front of a firmware's UART.

In MLPerf Tiny's energy setup the host does not talk to the board: the board is powered by the energy
monitor, and its UART goes to an interface board that relays commands (host at 115200 baud, the board at
9600 in the reference energy build). It speaks as mlcommons/tiny `benchmark/interface` does
(`Application/CLI/Menu.cpp`, `InterfaceMenu.cpp`, `Test/DeviceUnderTest.cpp`):
- host commands end with `%` (Menu::Run reads until "%");
- `dut CMD%` -> `m-dut-passthrough(CMD)` and `m-ready` at once (InterfaceMenu::Passthrough), then `CMD%`
  goes to the board, and each line the board prints (read up to "\\r\\n", DeviceUnderTest::
  IndirectSendCommand) comes back as `[dut]: LINE`, up to and with the board's own `m-ready`;
  meanwhile the interface reads no other command (its CLI thread waits in SendResponse);
- `name%` -> `tinyML Enhanced Interface Board` and `m-ready` (InterfaceMenu::Name);
- any other command -> `m-ready` alone (Menu::Default).
The runner's side of it is `IOManager.send_command` (benchmark/runner/io_manager.py).
"""

from __future__ import annotations

import os
import select
import threading
import tty
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Self

INTERFACE_NAME = "tinyML Enhanced Interface Board"  # InterfaceMenu::Name


class IoManagerTwin:
    """The interface board: its host side is `port` (a pty), its board side the serial device `dut_port`."""

    def __init__(self, dut_port: str) -> None:
        self.commands: list[str] = []  # what the host sent, without the "%"
        self._dut = os.open(dut_port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._dut)
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)  # raw at once: bytes written before the host opens the port are kept
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=f"eembc-io-twin:{self.port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._dut, self._stop_r, self._stop_w):
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        pending = bytearray()
        while True:
            chunk = self._read(self._master)
            if chunk is None:
                return
            pending += chunk
            while b"%" in pending:
                cmd, _, rest = bytes(pending).partition(b"%")
                pending[:] = rest
                text = cmd.decode("ascii", "replace")
                self.commands.append(text)
                if not self._handle(text):
                    return

    def _handle(self, text: str) -> bool:
        """One host command; False once the twin is closing."""
        if text == "dut" or text.startswith("dut "):
            args = text[4:]
            self._host(f"m-dut-passthrough({args})", "m-ready")
            os.write(self._dut, (args + "%").encode("ascii", "replace"))
            return self._relay()
        if text == "name":
            self._host(INTERFACE_NAME, "m-ready")
        else:
            self._host("m-ready")
        return True

    def _relay(self) -> bool:
        """The board's lines, each as `[dut]: LINE`, up to its m-ready; False if closed while waiting."""
        pending = bytearray()
        while True:
            while b"\r\n" in pending:
                line, _, rest = bytes(pending).partition(b"\r\n")
                pending[:] = rest
                os.write(self._master, b"[dut]: " + line + b"\r\n")  # the bytes as they came (std::string)
                if line == b"m-ready":
                    return True
            chunk = self._read(self._dut)
            if chunk is None:
                return False
            pending += chunk

    def _read(self, fd: int) -> bytes | None:
        """What `fd` has, waiting for it; None once closing (or the fd is gone)."""
        ready, _, _ = select.select([fd, self._stop_r], [], [])
        if self._stop_r in ready:
            return None
        try:
            return os.read(fd, 65536)
        except OSError:
            return None

    def _host(self, *lines: str) -> None:
        os.write(self._master, "".join(line + "\r\n" for line in lines).encode("ascii", "replace"))
