"""The bench closes everything even when one part fails, and a failed bring-up leaves nothing open.

Real parts throughout: device twins on ptys, analyzer twins over pyvisa-py TCP, pyserial clients. The
faults are real too: an analyzer whose error queue holds an error (its close drains `SYST:ERR?` and
raises), a board that answers HELLO as another kind, a port where nobody answers.
"""

from __future__ import annotations

import os
import pty
import select

import pytest

from pytest_edgehil.bench import Bench
from pytest_edgehil.config.lab import DeviceConfig, LabConfig, simulated_lab
from pytest_edgehil.errors import CloseError, DeviceError, ScpiError
from pytest_edgehil.sim import start_device_twin

DEVICES = ("imx500", "coral")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def bring_up_everything(bench: Bench) -> None:
    for name in DEVICES:
        bench.device(name)
        bench.analyzer(name)


@pytest.fixture(scope="module", autouse=True)
def warm() -> None:
    # The first bench of a process loads libraries and pyvisa's resource manager once; leaks are per cycle.
    bench = Bench(simulated_lab())
    bring_up_everything(bench)
    bench.close()


def test_close_closes_every_part_when_an_analyzer_close_fails():
    before = open_fds()
    bench = Bench(simulated_lab())
    bring_up_everything(bench)
    analyzers = {name: bench.analyzer(name)[0] for name in DEVICES}
    clients = {name: bench.device(name).client for name in DEVICES}
    assert open_fds() > before
    # A real fault: a command the analyzer does not know leaves an error in its queue, which close() drains.
    analyzers["imx500"].link.write("SYST:BOGUS 1")
    with pytest.raises(CloseError) as caught:
        bench.close()
    (part, exc), = caught.value.failures
    assert "analyzer of 'imx500'" in part and isinstance(exc, ScpiError)
    assert "analyzer of 'imx500'" in str(caught.value)
    assert analyzers["coral"].state == "closed"
    assert not any(c.is_open for c in clients.values())
    assert bench.active == []
    assert open_fds() == before  # twins' ptys, analyzer sockets, serial ports: all closed


class _ClientCloseFails:
    """Stands in for a serial port whose close raises: a real pty cannot be made to fail on close."""

    def __init__(self, real: object) -> None:
        self.real = real

    def close(self) -> None:
        self.real.close()  # type: ignore[attr-defined]
        raise OSError(5, "Input/output error")


def test_every_failure_is_named_and_later_parts_still_close():
    before = open_fds()
    bench = Bench(simulated_lab())
    bring_up_everything(bench)
    bench.analyzer("coral")[0].link.write("SYST:BOGUS 1")
    imx = bench.device("imx500")
    imx.client = _ClientCloseFails(imx.client)  # type: ignore[assignment]
    with pytest.raises(CloseError) as caught:
        bench.close()
    parts = [part for part, _ in caught.value.failures]
    assert len(parts) == 2
    assert "analyzer of 'coral'" in parts[0] and "device 'imx500' port" in parts[1]
    assert open_fds() == before  # the imx500 twin after the failing port, and coral's, were still closed


def _hardware_lab(kind: str, port: str) -> LabConfig:
    return LabConfig("one board", None, {"board": DeviceConfig(name="board", kind=kind, simulated=False, port=port)})


def test_board_of_another_kind_is_refused_and_its_port_closed():
    twin, port = start_device_twin("coral", "board")  # a coral answers where the lab says imx500
    try:
        before = open_fds()
        for _ in range(5):
            bench = Bench(_hardware_lab("imx500", port), timeout_s=5)
            with pytest.raises(DeviceError, match="identifies as kind 'coral'.*says 'imx500'"):
                bench.device("board")
            bench.close()
        assert open_fds() == before
    finally:
        twin.close()


def test_hello_timeout_closes_the_port():
    controller, peripheral = pty.openpty()  # a port that exists but where no firmware answers
    try:
        before = open_fds()
        for _ in range(2):
            bench = Bench(_hardware_lab("imx500", os.ttyname(peripheral)), timeout_s=0.2)
            with pytest.raises(DeviceError, match="board"):
                bench.device("board")
            bench.close()
        assert open_fds() == before
    finally:
        os.close(controller)
        os.close(peripheral)


def test_close_error_is_an_edgehil_error_naming_the_fix():
    err = CloseError([("analyzer of 'x' (TCPIP::h::1::SOCKET)", ScpiError("-113 Undefined header"))])
    assert "analyzer of 'x'" in str(err) and "-113" in str(err) and "every other part was closed" in str(err)


def test_a_failed_bring_up_is_not_retried_by_every_test_of_the_run():
    # A silent board costs its HELLO timeout once per run, not once per test (9 tests: 91 s before).
    controller, peripheral = pty.openpty()
    try:
        bench = Bench(_hardware_lab("imx500", os.ttyname(peripheral)), timeout_s=0.2)
        with pytest.raises(DeviceError, match="board"):
            bench.device("board")
        while select.select([controller], [], [], 0.05)[0]:  # what the first bring-up sent (HELLO, retries)
            os.read(controller, 4096)
        with pytest.raises(DeviceError, match=r"'board': not retried, its bring-up failed earlier") as again:
            bench.device("board")
        assert isinstance(again.value.__cause__, DeviceError)
        assert not select.select([controller], [], [], 0.3)[0]  # the port was not opened again: nothing sent
        bench.close()
    finally:
        os.close(controller)
        os.close(peripheral)
