"""`edgehil agent` on loopback with real LiteRT: the handshake (a wrong token refused and logged, the token
never on the wire), real inference and stage times, and the suites run against it through `socket://`."""

from __future__ import annotations

import ast
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.agent.backends import check_backend
from pytest_edgehil.agent.litert_device import LiteRTDevice
from pytest_edgehil.agent.power import find_monitors, power_capabilities
from pytest_edgehil.agent.server import AgentServer
from pytest_edgehil.bench import Bench
from pytest_edgehil.bring_up import simulated_firmware
from pytest_edgehil.config.lab import DeviceConfig, LabConfig, apply_backend, load_lab
from pytest_edgehil.errors import AuthRefused, ConfigError, DeviceTimeout
from pytest_edgehil.link.agent_port import agent_handshake
from pytest_edgehil.link.auth import read_token, write_new_token
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.model.runtime import ModelRunner

from .conftest import MODELS, REPO

AGENT_DIR = REPO / "pytest_edgehil" / "agent"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return write_new_token(tmp_path / "agent.token")


@pytest.fixture
def agent(token_file: Path) -> Iterator[AgentServer]:
    with AgentServer(LiteRTDevice(name="bench-agent"), read_token(token_file, what="test"), port=0) as server:
        yield server


def _lab(agent: AgentServer, token_file: Path) -> LabConfig:
    device = DeviceConfig(name="agent", kind="linux-cpu", simulated=False, port=agent.url, token_file=token_file)
    return apply_backend(LabConfig("agent", None, {"agent": device}), "hw")


def test_the_agent_binds_loopback_unless_told(token_file):
    with AgentServer(LiteRTDevice(), b"t", port=0) as server:
        assert server.host == "127.0.0.1"


def test_the_agent_runs_the_model_with_litert_and_times_it_on_its_clock(agent, token_file):
    model = (MODELS / "qsegment.tflite").read_bytes()
    bench = Bench(_lab(agent, token_file), timeout_s=10)  # --backend hw: a twin would be refused here
    try:
        dut = bench.device("agent")
        assert simulated_firmware(dut.hello) is None and dut.hello.firmware.startswith("edgehil-agent")
        assert "backend:litert-cpu" in dut.hello.capabilities and "inputs:pushed" in dut.hello.capabilities
        assert any(c.startswith("power:") for c in dut.hello.capabilities)
        dut.ensure_model(model, "qsegment")
        runner = ModelRunner(model)
        spec = runner.inputs[0]
        x = np.random.default_rng(3).integers(-128, 128, size=spec.shape, dtype=spec.dtype)
        dut.client.set_input(0, x)
        result = dut.client.run(5)
    finally:
        bench.close()
    for got, want in zip(result.outputs, runner.run_raw([x]), strict=True):
        np.testing.assert_array_equal(got, want)  # the agent computed it: the same LiteRT answer
    starts = [t.start_us for t in result.timings]
    assert starts == sorted(starts) and len(set(starts)) == 5
    for t in result.timings:  # measured on the board's clock: every stage took some time, each within the run
        assert t.inference_us > 0 and t.readout_us > 0 and t.retrieval_us > 0
    # start_us is each inference's invoke start from the first one's (docs/protocol.md): the first
    # inference's copy-in came before that origin, the last one's copy-in before its own start.
    first, last = result.timings[0], result.timings[-1]
    assert last.start_us + first.readout_us >= sum(t.end_to_end_us for t in result.timings[:-1]) + last.readout_us


class Recorder:
    """A TCP relay between host and agent that keeps every byte each way (what a sniffer on the wire sees)."""

    def __init__(self, target_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.seen = bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed by the other pump
                return
            self.seen += data
            dst.sendall(data)

    def close(self) -> None:
        self.listener.close()


def test_the_token_never_crosses_the_wire(agent, token_file):
    token = read_token(token_file, what="test")
    relay = Recorder(agent.port)
    try:
        with DeviceClient(f"socket://127.0.0.1:{relay.port}", name="agent", timeout_s=10,
                          handshake=agent_handshake(token, timeout_s=10, name="agent")) as client:
            assert client.hello().device_kind == "linux-cpu"
    finally:
        relay.close()
    assert b"EDGEHIL-AGENT" in relay.seen and b"AUTH " in relay.seen  # the handshake went through the relay
    assert token not in relay.seen and bytes.fromhex(token.decode()) not in relay.seen


def test_a_wrong_token_is_refused_and_logged(agent, caplog):
    caplog.set_level(logging.WARNING, logger="pytest_edgehil.agent")
    with pytest.raises(AuthRefused, match=r"refused this host: wrong token.*`token_file`"):
        DeviceClient(agent.url, name="agent", handshake=agent_handshake(b"not-the-token", timeout_s=10,
                                                                        name="agent")).open()
    assert len(agent.refused) == 1 and agent.refused[0].endswith("wrong token")
    assert agent.sessions == 0
    assert any("refused 127.0.0.1:" in r.getMessage() and "wrong token" in r.getMessage() for r in caplog.records)


def test_a_peer_that_is_not_an_edgehil_host_is_refused(agent):
    with socket.create_connection(("127.0.0.1", agent.port)) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert raw.recv(200).startswith(b"DENIED not an edgehil host")
    assert agent.sessions == 0


def test_a_second_host_is_refused_while_one_is_connected(agent, token_file):
    token = read_token(token_file, what="test")
    with DeviceClient(agent.url, name="a", handshake=agent_handshake(token, timeout_s=10, name="a")) as first:
        first.hello()
        with pytest.raises(AuthRefused, match="busy"):
            DeviceClient(agent.url, name="b", handshake=agent_handshake(token, timeout_s=10, name="b")).open()


def _agent_side_timers(port: int) -> list[tuple[int, int]]:
    """(timer_active, remaining 1/100 s) of each established TCP socket whose local port is `port`, read from
    /proc/net/tcp (the kernel's proc_net_tcp.txt: timer 2 is a keepalive or delayed-ACK timer)."""
    timers = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, timer = fields[1], fields[3], fields[5]
        if int(local.split(":")[1], 16) == port and state == "01":
            active, when = timer.split(":")
            timers.append((int(active, 16), int(when, 16)))
    return timers


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's TCP timers from /proc/net/tcp")
def test_the_agent_probes_a_silent_host_so_a_dead_one_does_not_hold_the_board(agent, token_file):
    """A host that vanishes without closing (powered off, its network gone) sends no FIN: an agent blocked
    in recv would hold the board 'busy' for every later host until restarted. TCP keepalive on the host's
    connection finds such a peer: its timer must run on the agent's side of an idle connection, due within
    a minute (a delayed ACK, the other timer 2, is due within 0.2 s)."""
    token = read_token(token_file, what="test")
    with DeviceClient(agent.url, name="a", handshake=agent_handshake(token, timeout_s=10, name="a")) as host:
        host.hello()
        port = int(agent.url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            timers = _agent_side_timers(port)
            if timers and all(active == 2 and 100 <= when <= 6000 for active, when in timers):
                break
            time.sleep(0.05)
        assert timers and all(active == 2 and 100 <= when <= 6000 for active, when in timers), timers


def test_a_port_where_no_agent_answers_times_out_naming_it():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks
        url = f"socket://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(DeviceTimeout, match="no handshake line from the agent within 0.3 s"):
            DeviceClient(url, name="x", handshake=agent_handshake(b"t", timeout_s=0.3, name="x")).open()


def test_the_token_file_must_be_private(tmp_path):
    path = write_new_token(tmp_path / "t")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others.*chmod 600"):
        read_token(path, what="device 'agent'")
    with pytest.raises(ConfigError, match="cannot read the agent token.*--new-token"):
        read_token(tmp_path / "missing", what="device 'agent'")


def test_the_shipped_agent_lab_reads_and_runs_catalog_models():
    lab = load_lab(REPO / "fixtures" / "lab.agent-local.toml")
    device = lab.devices["agent"]
    assert device.port == "socket://127.0.0.1:4000" and device.token_file == Path("~/.config/edgehil/agent.token").expanduser()
    assert device.kind == "linux-cpu" and device.models


def test_a_token_file_needs_an_agent_port(tmp_path):
    lab = tmp_path / "lab.toml"
    lab.write_text('[devices.b]\nkind = "linux-cpu"\nport = "/dev/ttyACM0"\ntoken_file = "t"\n')
    with pytest.raises(ConfigError, match="`token_file` is for an on-board agent"):
        load_lab(lab)


def test_power_readers_are_found_through_sysfs(tmp_path):
    hwmon = tmp_path / "class" / "hwmon" / "hwmon3"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text("ina3221\n")
    for rail in ("power1_input", "power2_input"):
        (hwmon / rail).write_text("1234000\n")
    other = tmp_path / "class" / "hwmon" / "hwmon0"
    other.mkdir()
    (other / "name").write_text("coretemp\n")
    rapl = tmp_path / "class" / "powercap" / "intel-rapl:0"
    rapl.mkdir(parents=True)
    (rapl / "energy_uj").write_text("42\n")
    readers = [r for r in find_monitors(tmp_path) if r.kind != "nvml"]
    assert [(r.kind, r.name) for r in readers] == [
        ("hwmon-ina", "ina3221-hwmon3-power1"), ("hwmon-ina", "ina3221-hwmon3-power2"), ("rapl", "intel-rapl:0")]
    assert power_capabilities([]) == ("power:none",)


def test_the_camera_backend_is_declared_and_refused_without_picamera2():
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="picamera2"):
            check_backend("imx500")
    else:
        pytest.skip("picamera2 is installed here: the refusal without it cannot be shown")
    with pytest.raises(ConfigError, match="unknown"):
        check_backend("tensorrt")
    check_backend("litert-cpu")


def test_the_agent_imports_nothing_of_the_simulation():
    for path in AGENT_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("pytest_edgehil.sim") or n == "sim" for n in names), path
    code = ("import sys, pytest_edgehil.agent.cli, pytest_edgehil.agent.server, pytest_edgehil.agent.litert_device\n"
            "print([m for m in sys.modules if m.startswith('pytest_edgehil.sim')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


LATENCY_SUITE = (REPO / "suites" / "test_latency.py").read_text()


def test_the_latency_suite_runs_against_the_agent_on_the_hardware_path(agent, token_file, edgehil_project):
    edgehil_project.makefile(".toml", lab=f'[devices.agent]\nkind = "linux-cpu"\nport = "{agent.url}"\n'
                                          f'token_file = "{token_file}"\nmodels = ["qsegment", "tinytracker"]\n')
    edgehil_project.makeconftest("import pytest\n\n@pytest.fixture\ndef latency_runs():\n    return 20\n")
    edgehil_project.makepyfile(test_latency=LATENCY_SUITE)
    result = edgehil_project.runpytest("--lab=lab.toml", "--backend=hw", "--device=agent", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*edgehil summary (HW)*", "*qsegment-agent*inference_ms*(none)*HW*"])
