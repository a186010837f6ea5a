"""A labgrid rack on loopback for the farm tests (test_farm.py): `labgrid-coordinator`, a `labgrid-exporter`
that publishes a device twin's pty as a `NetworkSerialPort` (labgrid's RawSerialPort export starts ser2net
on it when the place is acquired), the place made through labgrid's client API (what `labgrid-client
create/add-match/set-tags` send, in one session: each CLI call costs ≈ 1.5 s), and real `pytest`
subprocesses on a lab file naming the place by its tags. The device twin (answering HELLO as a board, so
`--backend hw` takes it) and its analyzer twin run in the test process: to the pytest runs they are a board
in a rack and a SCPI analyzer at the VISA address the place's tags name.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_edgehil.config.lab import DeviceConfig
from pytest_edgehil.farm import INSTALL, Farm

BIN = Path(sys.executable).parent
WAIT_S = 60.0  # bound of every wait below; each step takes a second or two


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


@contextmanager
def running_rack(root: Path) -> Iterator[Rack]:
    """A rack in the empty directory `root`: the coordinator, exporter and twins start, and stop on exit.
    Fails the test when a part is missing (`needs_farm` skips before, outside CI)."""
    missing = _missing()
    if missing:
        pytest.fail(f"CI is set, so the farm test must run: {missing}")
    from pytest_edgehil.sim import start_analyzer_twin, start_device_twin

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

