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
import tty

from pytest_edgehil.sim.eembc_pty import EembcPty

INTERFACE_NAME = "tinyML Enhanced Interface Board"  # InterfaceMenu::Name


class IoManagerTwin(EembcPty):
    """The interface board: its host side is `port` (a pty), its board side the serial device `dut_port`."""

    def __init__(self, dut_port: str) -> None:
        self.commands: list[str] = []  # what the host sent, without the "%"
        self._dut = os.open(dut_port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._dut)
        super().__init__("eembc-io-twin", owned_fds=(self._dut,))
        self.start()

    def on_command(self, text: str) -> bool:
        """One host command; False once the twin is closing."""
        self.commands.append(text)
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
                self.write(b"[dut]: " + line + b"\r\n")  # the bytes as they came (std::string)
                if line == b"m-ready":
                    return True
            chunk = self.read(self._dut)
            if chunk is None:
                return False
            pending += chunk

    def _host(self, *lines: str) -> None:
        self.write("".join(line + "\r\n" for line in lines).encode("ascii", "replace"))
