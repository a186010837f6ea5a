"""Which board a port names: one board under two spellings of its address is one board.

A network board (an on-board agent, ser2net on a rack's exporter, a labgrid place's NetworkSerialPort) is
one TCP endpoint, whatever the URL calls its host: `localhost` and `127.0.0.1` (and `[::1]`) are the same
machine's loopback, so `socket://localhost:PORT` and `socket://127.0.0.1:PORT` reach the same board, and
must share its lock and be refused as two devices of one run. The expectation comes from the names
themselves (RFC 6761: "localhost" resolves to a loopback address; 127.0.0.0/8 and ::1 are loopback), not
from the code under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.bench import device_lock
from pytest_edgehil.config.lab import DeviceConfig, LabConfig, select_devices
from pytest_edgehil.errors import ConfigError, DeviceBusy

PORT = 4000  # never contacted: identity is computed from the address, nothing connects


def _lab(*ports: str) -> LabConfig:
    return LabConfig("rack", None, {f"board-{i}": DeviceConfig(name=f"board-{i}", kind="coral", simulated=False,
                                                               port=port) for i, port in enumerate(ports)})


@pytest.mark.parametrize(("first", "second"), [
    (f"socket://localhost:{PORT}", f"socket://127.0.0.1:{PORT}"),
    (f"socket://127.0.0.1:{PORT}", f"socket://[::1]:{PORT}"),
    (f"socket://LocalHost:{PORT}", f"socket://localhost:{PORT}"),
    # A labgrid place's URL (farm.serial_url) against the same ser2net port named in a lab file.
    (f"rfc2217://127.0.0.1:{PORT}?ign_set_control", f"rfc2217://localhost:{PORT}"),
])
def test_two_devices_naming_one_loopback_board_by_two_host_spellings_are_refused_at_start_up(first, second):
    with pytest.raises(ConfigError, match=r"devices 'board-0' and 'board-1' of lab 'rack' both name port"):
        select_devices(_lab(first, second), "all")


@pytest.mark.parametrize("ports", [
    (f"socket://127.0.0.1:{PORT}", f"socket://127.0.0.1:{PORT + 1}"),  # two ports: two boards
    (f"socket://10.0.0.5:{PORT}", f"socket://10.0.0.6:{PORT}"),  # two hosts: two boards
    (f"socket://10.0.0.5:{PORT}", f"socket://127.0.0.1:{PORT}"),
])
def test_boards_at_other_endpoints_are_still_two_boards(ports):
    assert select_devices(_lab(*ports), "all") == ["board-0", "board-1"]


def test_a_board_locked_as_127_0_0_1_is_busy_for_a_run_naming_it_localhost(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EDGEHIL_LOCK_DIR", str(tmp_path))
    config = DeviceConfig(name="coral", kind="coral", simulated=False)
    held = device_lock(config, f"rfc2217://127.0.0.1:{PORT}?ign_set_control", owner="a farm run")
    held.acquire()
    try:
        other = device_lock(config, f"rfc2217://localhost:{PORT}", owner="a run naming the port directly")
        with pytest.raises(DeviceBusy, match=r"is busy: held by PID .*\(a farm run\)"):
            other.acquire()
    finally:
        held.release()
    elsewhere = device_lock(config, f"socket://127.0.0.1:{PORT + 1}")
    elsewhere.acquire()  # another port is another board: free
    elsewhere.release()
