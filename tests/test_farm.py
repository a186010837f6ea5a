"""Boards in a labgrid farm: lab-file checks, and the suites end to end through a real coordinator.

The end-to-end tests use the real parts on loopback: `labgrid-coordinator`, a `labgrid-exporter` that
publishes a device twin's pty as a `NetworkSerialPort` (labgrid's RawSerialPort export starts ser2net
on it when the place is acquired), the place made through labgrid's client API (what `labgrid-client
create/add-match/set-tags` send, in one session: each CLI call costs ≈ 1.5 s), and real `pytest`
subprocesses. One rack serves every end-to-end test of the module. The device twin (answering HELLO as a
board, so `--backend hw` takes it) and its analyzer twin run in this test process: to the pytest runs
they are a board in a rack and a SCPI analyzer at the VISA address the place's tags name.
They skip when labgrid or ser2net is missing, except in CI (`CI` set), where they must run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from pytest_edgehil.config.lab import DeviceConfig, LabConfig, lab_from_data, select_devices
from pytest_edgehil.errors import ConfigError, DeviceError
from pytest_edgehil.farm import INSTALL, Farm, PlaceLease, apply_place, coordinator_address, serial_url

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WAIT_S = 60.0  # bound of every wait below; each step takes a second or two


def farm_lab(**device: object) -> dict[str, object]:
    return {"lab": {"coordinator": "127.0.0.1:20408"}, "devices": {"coral": {"kind": "coral", **device}}}


# ------------------------------------------------------------------------------ lab file, no labgrid needed


def test_a_lab_naming_places_without_labgrid_fails_at_start_up_with_the_install_command(monkeypatch):
    # labgrid's absence is simulated (None in sys.modules makes its import fail): a real part cannot be
    # made to be missing in an environment that has it.
    for name in ("labgrid", "labgrid.remote", "labgrid.remote.client"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match=r"\[devices.coral\] names labgrid places, but labgrid is not installed") \
            as caught:
        lab_from_data(farm_lab(tags={"board": "coral"}), Path("farm.toml"))
    assert INSTALL in str(caught.value) and "farm.toml" in str(caught.value)


@pytest.mark.parametrize(("device", "message"), [
    ({"place": "coral-1", "port": "/dev/ttyACM0"}, r"`place` reaches the board through the labgrid coordinator"),
    ({"tags": {"board": "coral"}, "usb_serial": "X"}, r"`tags` reaches the board.*drop `usb_serial`"),
    ({"place": "coral-1", "tags": {"board": "coral"}}, r"give `place`.*or `tags`.*not both"),
    ({"tags": {}}, r"`tags = \{\}` matches every place"),
    ({"tags": {"Board": "coral"}}, r"Board"),
    ({"place": "coral 1"}, r"place"),
])
def test_a_farm_device_table_that_cannot_be_meant_is_refused(device, message):
    with pytest.raises(ConfigError, match=message):
        lab_from_data(farm_lab(**device), Path("farm.toml"))


def test_without_a_coordinator_in_the_lab_or_environment_start_up_says_where_to_give_it(monkeypatch):
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    with pytest.raises(ConfigError, match=r"no coordinator: set `coordinator = .*LG_COORDINATOR"):
        coordinator_address(LabConfig("farm", None, {}))
    monkeypatch.setenv("LG_COORDINATOR", "rack-host")
    assert coordinator_address(LabConfig("farm", None, {})) == "rack-host:20408"  # labgrid's default port
    assert coordinator_address(LabConfig("farm", None, {}, coordinator="10.0.0.5:4000")) == "10.0.0.5:4000"


def test_two_devices_of_one_run_naming_one_place_are_refused_at_start_up():
    # One process holds a place for the whole session: the second device would wait for the first one,
    # which lets go only when the session ends (a wait that cannot end, for edgehil_lock_timeout seconds).
    lab = LabConfig("rack", None, {
        "coral-a": DeviceConfig(name="coral-a", kind="coral", simulated=False, place="coral-1"),
        "coral-b": DeviceConfig(name="coral-b", kind="coral", simulated=False, place="coral-1"),
        "coral-c": DeviceConfig(name="coral-c", kind="coral", simulated=False, place="coral-2")})
    with pytest.raises(ConfigError, match=r"devices 'coral-a' and 'coral-b' of lab 'rack' both name place 'coral-1'"):
        select_devices(lab, "all")
    assert select_devices(lab, "coral-a,coral-c") == ["coral-a", "coral-c"]  # two places: two boards


def test_a_network_serial_port_becomes_the_pyserial_url_labgrid_itself_opens():
    assert serial_url({"host": "rack1", "port": 4001}, "p") == "rfc2217://rack1:4001?ign_set_control"
    assert serial_url({"host": "rack1", "port": 4001, "protocol": "raw"}, "p") == "socket://rack1:4001"
    with pytest.raises(DeviceError, match=r"place 'p'.*no TCP port yet.*ser2net"):
        serial_url({"host": "rack1", "port": None}, "p")
    with pytest.raises(ConfigError, match=r"protocol 'ssh'"):
        serial_url({"host": "rack1", "port": 1, "protocol": "ssh"}, "p")


def test_the_power_wiring_comes_from_the_place_tags_unless_the_lab_file_gives_it():
    lease = PlaceLease("coral-1", "rack1", "rfc2217://rack1:1", "T", "h/u",
                       (("analyzer", "TCPIP::10.0.0.9::5025::SOCKET"), ("analyzer_channel", "3"),
                        ("board", "coral"), ("current_range_a", "0.5"), ("supply_v", "5")))
    config = DeviceConfig(name="coral", kind="coral", simulated=False, place_tags=(("board", "coral"),))
    wired = apply_place(config, lease)
    assert (wired.port, wired.analyzer, wired.analyzer_channel, wired.supply_v, wired.current_range_a) == \
        ("rfc2217://rack1:1", "TCPIP::10.0.0.9::5025::SOCKET", 3, 5.0, 0.5)
    own = DeviceConfig(name="coral", kind="coral", simulated=False, place="coral-1",
                       analyzer="TCPIP::10.0.0.1::5025::SOCKET", supply_v=3.3)
    kept = apply_place(own, lease)
    assert (kept.analyzer, kept.analyzer_channel, kept.supply_v) == ("TCPIP::10.0.0.1::5025::SOCKET", 1, 3.3)
    bad = PlaceLease("coral-1", "rack1", "u", "T", "h/u", (("analyzer", "X"), ("analyzer_channel", "two")))
    with pytest.raises(ConfigError, match=r"place 'coral-1': tag analyzer_channel='two' is not a number"):
        apply_place(config, bad)


# --------------------------------------------------------------------------- end to end, real labgrid parts


def _missing() -> str | None:
    try:
        import labgrid  # noqa: F401
    except ImportError:
        return f"labgrid is not installed ({INSTALL})"
    if shutil.which("ser2net") is None and not os.path.exists("/usr/sbin/ser2net"):
        return "ser2net is not installed (apt-get install ser2net)"
    if not (BIN / "labgrid-coordinator").exists():
        return f"labgrid-coordinator is not beside {sys.executable}"
    return None


needs_farm = pytest.mark.skipif(_missing() is not None and not os.environ.get("CI"),
                                reason=f"{_missing()}; in CI (CI set) this test runs and fails instead")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


HOLD_TEST = """
import os
import time
from pathlib import Path

import pytest


@pytest.mark.edgehil_metrics("end_to_end_ms")  # a budgeted metric: the pairs with a budget for it
def test_hold_the_board(edgehil_dut):
    # Holds the place (and its board) until the farm test lets go: the second run's wait then has a
    # holder whose end the test decides, not a race against how long a suite takes.
    release = Path(os.environ["EDGEHIL_FARM_RELEASE"])
    deadline = time.monotonic() + 120
    while not release.exists():
        assert time.monotonic() < deadline, "the farm test never let this run go"
        time.sleep(0.05)
"""


REFIND_TEST = """
import os
import time
from pathlib import Path

import pytest


@pytest.mark.edgehil_metrics("end_to_end_ms")
def test_refind_a_before(edgehil_dut):
    # Holds the board until the farm test has restarted the exporter (which republishes the place's serial
    # port on a new TCP port, as it does when a USB-CDC board re-enumerates).
    Path(os.environ["EDGEHIL_FARM_STEP"], "held").touch()
    deadline = time.monotonic() + 120
    while not Path(os.environ["EDGEHIL_FARM_STEP"], "go").exists():
        assert time.monotonic() < deadline, "the farm test never let this run go"
        time.sleep(0.05)


@pytest.mark.edgehil_metrics("end_to_end_ms")
def test_refind_b_after(edgehil_dut):
    assert edgehil_dut.client.hello().device_kind == "coral"  # the board answers on the port found again
"""


@dataclass
class Rack:
    """A coordinator, one exporter and one place `coral-1` (board=coral) on loopback, with the test's own
    labgrid client session (`farm`): one connection for every look at the coordinator, not a
    `labgrid-client` process (≈ 1.5 s) per look."""

    root: Path
    address: str
    analyzer: str
    farm: Farm
    exporter: subprocess.Popen[bytes]

    def place_holder(self) -> str:
        """coral-1's holder as `Farm.holders` says it: "free", "acquired by HOST/USER" or "reserved for …"."""
        return dict(self.farm.holders(CORAL_1))["coral-1"]

    def serial_port(self) -> object:
        """The TCP port coral-1's exporter serves the board on now (None while no ser2net runs)."""
        self.farm._call(self.farm.session.sync_with_coordinator(), "sync")
        entry = self.farm.session.resources.get("rack1", {}).get("coral-1", {}).get("RawSerialPort")
        return None if entry is None else entry.data.get("params", {}).get("port")  # absent while it restarts

    def restart_exporter(self) -> None:
        """Stop the exporter (it stops its ser2net) and start it again, as after an exporter host's reboot."""
        self.exporter.terminate()
        self.exporter.wait(10)
        self.exporter = start_exporter(self.root, self.address)

    def free_the_place(self) -> None:
        """Release coral-1 and cancel every reservation (the test's labgrid identity is the runs' own)."""
        for token, _ in self.farm.reservations():
            self.farm._try(self.farm._cancel(token), "cancel")
        if self.place_holder().startswith("acquired"):
            self.farm._try(self.farm._release("coral-1"), "release")

    def pytest(self, *args: str, output: Path | None = None, tests: str = "suites/", new_session: bool = False,
               release: str = "release") -> subprocess.Popen[str]:
        """A pytest run of `tests` on the farm's lab; its hold test waits for the file `release` (each test that
        holds the board names its own: a file an earlier test created would let go at once)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env["EDGEHIL_LOCK_DIR"] = str(self.root / "locks")
        env["EDGEHIL_FARM_RELEASE"] = str(self.root / release)
        env["EDGEHIL_FARM_STEP"] = str(self.root)
        out = open(output, "w") if output else subprocess.PIPE  # noqa: SIM115 - closed with the process
        return subprocess.Popen([sys.executable, "-m", "pytest", tests, "--lab=farm.toml", "--backend=hw",
                                 "--device=coral", "-p", "no:cacheprovider", "-q", "-rs", *args], cwd=self.root, env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=new_session)


def start_exporter(root: Path, address: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(BIN / "labgrid-exporter"), "-c", address, "-n", "rack1", "--hostname", "127.0.0.1",
                             "exporter.yaml"], cwd=root,
                            stdout=open(root / "exporter.log", "ab"),
                            stderr=subprocess.STDOUT)


CORAL_1 = DeviceConfig(name="look", kind="coral", simulated=False, place="coral-1")


def build_place(farm: Farm, name: str, match: str, tags: dict[str, str]) -> None:
    """`labgrid-client -p NAME create`, `add-match MATCH` and `set-tags …`, through the client API."""
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

    async def build() -> None:
        stub = farm.session.stub
        await stub.AddPlace(pb2.AddPlaceRequest(name=name))
        await stub.AddPlaceMatch(pb2.AddPlaceMatchRequest(placename=name, pattern=match))
        await stub.SetPlaceTags(pb2.SetPlaceTagsRequest(placename=name, tags=tags))
        await farm.session.sync_with_coordinator()

    farm._call(build(), f"build place {name!r}")


def published(farm: Farm, exporter: str, group: str) -> bool:
    farm._call(farm.session.sync_with_coordinator(), "sync")
    return "NetworkSerialPort" in {r.cls for r in farm.session.resources.get(exporter, {}).get(group, {}).values()}


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    """One rack for every end-to-end test of this module: the coordinator, exporter and twins start once."""
    missing = _missing()
    if missing:
        pytest.fail(f"CI is set, so the farm test must run: {missing}")
    from pytest_edgehil.sim import start_analyzer_twin, start_device_twin

    root = tmp_path_factory.mktemp("farm")
    done = subprocess.run([sys.executable, "-m", "pytest_edgehil.cli", "init"], cwd=root, capture_output=True,
                          text=True, timeout=WAIT_S, check=False)
    assert done.returncode == 0, done.stderr
    (root / "suites" / "test_zz_hold.py").write_text(HOLD_TEST)
    (root / "test_refind.py").write_text(REFIND_TEST)  # outside suites/: run only by the test that needs it
    address = f"127.0.0.1:{free_port()}"
    coordinator: subprocess.Popen[bytes] | None = None
    exporter: subprocess.Popen[bytes] | None = None
    farm: Farm | None = None
    rack: Rack | None = None
    # A board in a rack: HELLO without the twin's marks (`--backend hw` takes it for a board), ideal bench
    # physics (no decoupling smear, exact timer): this test is about reaching the board and its analyzer
    # through the farm; the bench physics have their own tests.
    twin, pty = start_device_twin("coral", "coral-1", physics={"ideal": True}, as_board=True)
    analyzer, resource, supply_v, range_a = start_analyzer_twin(twin)
    try:
        coordinator = subprocess.Popen([str(BIN / "labgrid-coordinator"), "-l", address], cwd=root,
                                       stdout=open(root / "coordinator.log", "wb"),  # noqa: SIM115 - closed with the process
                                       stderr=subprocess.STDOUT)
        port = int(address.rsplit(":", 1)[1])
        wait_for(lambda: _accepts(port), "the coordinator to listen")  # an exporter started earlier gives up
        (root / "exporter.yaml").write_text(f"coral-1:\n  RawSerialPort:\n    port: {pty}\n    speed: 115200\n")
        exporter = start_exporter(root, address)
        farm = Farm(address)
        rack = Rack(root, address, resource, farm, exporter)
        wait_for(lambda: published(farm, "rack1", "coral-1"), "the exporter to publish coral-1")
        # The place carries the power wiring: the lab file below names none.
        build_place(farm, "coral-1", "rack1/coral-1/NetworkSerialPort",
                    {"board": "coral", "analyzer": resource, "analyzer_channel": "1",
                     "supply_v": f"{supply_v:.6g}", "current_range_a": f"{range_a:.6g}"})
        (root / "farm.toml").write_text(f'[lab]\nname = "farm"\ncoordinator = "{address}"\n\n'
                                        '[devices.coral]\nkind = "coral"\ntags = { board = "coral" }\n')
        yield rack
    finally:
        if farm is not None:
            farm.close()
        for proc in (rack.exporter if rack is not None else exporter, coordinator):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
        analyzer.close()
        twin.close()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def records_of(path: Path) -> list[dict[str, object]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return list(data["records"])


# A latency test and an energy test of one pair: what proves the board and its analyzer are reached
# through the place (the whole suites on a twin are run by the suites' own CI step).
SUBSET = "tinytracker and (test_end_to_end_latency or test_end_to_end_energy)"


@needs_farm
def test_latency_and_energy_run_green_through_the_coordinator_and_the_records_name_the_place(rack):
    run = rack.pytest("-k", SUBSET, "--edgehil-save=farm-results.json")
    out, _ = run.communicate(timeout=WAIT_S * 4)
    assert run.returncode == 0, out[-6000:]
    assert "2 passed" in out, out[-3000:]  # nothing skipped: energy was measured, not refused
    records = records_of(rack.root / "farm-results.json")
    assert records and {r["context"]["place"] for r in records} == {"coral-1"}  # type: ignore[index]
    assert {r["context"]["place_host"] for r in records} == {"127.0.0.1"}  # type: ignore[index]
    assert {"end_to_end_ms", "end_to_end_mj", "end_to_end_mw"} <= {r["metric"] for r in records}
    assert rack.place_holder() == "free"  # released at session end
    assert rack.farm.reservations() == []  # and its reservation cancelled


@needs_farm
def test_a_second_run_asking_for_the_held_place_waits_then_runs_or_fails_naming_the_owner(rack):
    first = rack.pytest("-k", "hold and tinytracker", output=rack.root / "first.log")
    wait_for(lambda: rack.place_holder().startswith("acquired by "), "the first run's place")
    owner = rack.place_holder().removeprefix("acquired by ")
    # Two more runs ask for the held place at once: one that may not wait, one that waits up to 120 s.
    log = rack.root / "second.log"
    refused = rack.pytest("-k", "test_end_to_end_latency and tinytracker", "--edgehil-save=refused.json")
    waiting = rack.pytest("-k", "test_end_to_end_latency and tinytracker", "-o", "edgehil_lock_timeout=120",
                          "--edgehil-save=second.json", output=log)
    out, _ = refused.communicate(timeout=WAIT_S * 2)
    assert refused.returncode != 0, out[-4000:]
    assert f"coral-1 acquired by {owner}" in out and "DeviceBusy" in out, out[-4000:]
    assert f"labgrid-client -x {rack.address} -p coral-1 release" in out  # what frees a killed run's place
    assert not (rack.root / "refused.json").exists() or not records_of(rack.root / "refused.json")
    wait_for(lambda: "is busy: coral-1 acquired by" in log.read_text(), "the second run to say what it waits for")
    assert waiting.poll() is None and first.poll() is None  # the first holds the board, the second waits
    assert not (rack.root / "second.json").exists() or not records_of(rack.root / "second.json")
    (rack.root / "release").touch()  # the first run ends and releases the place; the second gets it
    assert first.wait(WAIT_S) == 0, (rack.root / "first.log").read_text()[-4000:]
    assert waiting.wait(WAIT_S * 2) == 0, log.read_text()[-4000:]
    assert "1 passed" in (rack.root / "first.log").read_text()  # the first ran on the board, then let go
    second = records_of(rack.root / "second.json")  # and the second measured after it, on the same place
    assert second and {r["context"]["place"] for r in second} == {"coral-1"}  # type: ignore[index]
    assert rack.place_holder() == "free" and rack.farm.reservations() == []


@needs_farm
def test_a_second_device_of_the_same_run_never_waits_for_the_place_its_first_device_holds(rack):
    # Two lab devices with one place's tags, in one process: the first holds coral-1 until the session ends,
    # so waiting for it cannot end. Refused at once, naming the device that holds it, not "busy … wait for
    # that run to finish or release it" (which would have the user kick their own run off the board).
    first = DeviceConfig(name="coral-a", kind="coral", simulated=False, place_tags=(("board", "coral"),))
    second = replace(first, name="coral-b")
    farm = rack.farm  # one labgrid session per process: gRPC shares its connection, the coordinator one client
    lease = farm.acquire(first)
    try:
        with pytest.raises(ConfigError, match=r"device 'coral-b': .*coral-1.* held by this run's own device "
                                              r"'coral-a'") as caught:
            farm.acquire(second, timeout_s=WAIT_S)
        assert "release" not in str(caught.value)  # no command that would free the board under coral-a
        assert [token for token, _ in farm.reservations()] == [lease.token]  # coral-b's reservation cancelled
    finally:
        farm.release(lease)
    assert rack.place_holder() == "free" and rack.farm.reservations() == []


@needs_farm
def test_a_run_cancelled_while_the_coordinator_grants_its_place_releases_it(rack, monkeypatch):
    # SIGTERM/Ctrl-C lands while AcquirePlace is in flight: the coordinator grants the place, the answer
    # never reaches the run. The place must not stay acquired by a run that is gone (labgrid keeps it).
    farm = rack.farm
    granted = farm._acquire

    async def granted_then_cancelled(place: str) -> None:
        await granted(place)
        os.kill(os.getpid(), signal.SIGINT)  # the run is cancelled before the answer is back
        await asyncio.sleep(2)

    monkeypatch.setattr(farm, "_acquire", granted_then_cancelled)
    with pytest.raises(KeyboardInterrupt):
        farm.acquire(CORAL_1)
    monkeypatch.undo()
    assert rack.place_holder() == "free" and farm.reservations() == []


@needs_farm
def test_a_run_cancelled_while_the_coordinator_creates_its_reservation_cancels_it(rack, monkeypatch):
    # SIGTERM/Ctrl-C lands between the coordinator creating the reservation and the run recording its token:
    # the coordinator keeps it (allocated to the run's identity, refreshed by nobody) and the next run finds
    # the place "reserved for" a run that is gone. The run must cancel it on the way out.
    farm = rack.farm
    created = farm._reserve

    async def created_then_cancelled(wanted: dict[str, str]) -> str:
        token = await created(wanted)
        os.kill(os.getpid(), signal.SIGINT)  # the run is cancelled before the token is back
        await asyncio.sleep(2)
        return token

    monkeypatch.setattr(farm, "_reserve", created_then_cancelled)
    with pytest.raises(KeyboardInterrupt):
        farm.acquire(CORAL_1)
    monkeypatch.undo()
    assert farm.reservations() == [] and rack.place_holder() == "free"


@needs_farm
def test_a_board_republished_on_a_new_port_by_its_exporter_is_found_again_through_the_place(rack):
    # An exporter that restarts (its host rebooted) or a USB-CDC board that re-enumerates gets a new ser2net
    # TCP port from labgrid's exporter: the run finds the board again where the place now says it is.
    run = rack.pytest("-k", "tinytracker", tests="test_refind.py", output=rack.root / "refind.log")
    try:
        wait_for(lambda: (rack.root / "held").exists() or run.poll() is not None, "the run to hold the board")
        before = rack.serial_port()
        rack.restart_exporter()
        wait_for(lambda: rack.serial_port() not in (None, before), "the exporter to serve coral-1 again")
        (rack.root / "go").touch()
        assert run.wait(WAIT_S * 2) == 0, (rack.root / "refind.log").read_text()[-4000:]
    finally:
        (rack.root / "go").touch()
        run.wait(WAIT_S * 2)
    out = (rack.root / "refind.log").read_text()
    assert "2 passed" in out, out[-3000:]
    assert rack.place_holder() == "free" and rack.farm.reservations() == []


@needs_farm
def test_a_cancelled_xdist_run_releases_its_place(rack):
    # CI cancels a job with SIGTERM to its process group: xdist's workers, which hold the places, get it too.
    # A place stays acquired after its holder dies (labgrid's design), so a worker killed outright would
    # block every later job on that board until someone releases it by hand.
    run = rack.pytest("-k", "hold and tinytracker", "-n", "2", output=rack.root / "cancelled.log", new_session=True,
                      release="never-released")
    try:
        wait_for(lambda: rack.place_holder().startswith("acquired by "), "a worker to acquire the place")
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(WAIT_S)
        # The workers are gone too (a straggler would still hold the place).
        wait_for(lambda: not group_alive(run.pid), "the run's processes to end")
        assert rack.place_holder() == "free", (rack.root / "cancelled.log").read_text()[-4000:]
        assert rack.farm.reservations() == []
    finally:
        rack.free_the_place()  # whatever happened, the next test finds the place free


@needs_farm
def test_the_busy_message_after_a_killed_run_frees_the_place_in_one_go(rack):
    # A run killed with SIGKILL leaves its place acquired and its reservation allocated. Releasing the place
    # alone is not enough: the next run still finds it reserved for the dead run until the reservation times
    # out. The message gives every command that frees it, so one round of them does.
    killed = rack.pytest("-k", "hold and tinytracker", output=rack.root / "killed.log", new_session=True,
                         release="never-released")
    try:
        wait_for(lambda: rack.place_holder().startswith("acquired by "), "the run to acquire the place")
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(WAIT_S)
        (token,) = [token for token, _ in rack.farm.reservations()]  # the dead run's, still allocated
        refused = rack.pytest("-k", "test_end_to_end_latency and tinytracker")
        out, _ = refused.communicate(timeout=WAIT_S * 2)
        assert refused.returncode != 0 and "DeviceBusy" in out, out[-4000:]
        assert f"labgrid-client -x {rack.address} -p coral-1 release" in out, out[-4000:]
        assert f"labgrid-client -x {rack.address} cancel-reservation {token}" in out, out[-4000:]
    finally:
        rack.free_the_place()
    assert rack.place_holder() == "free" and rack.farm.reservations() == []
