"""One owner per board: two pytest processes on one lab, exclusive ports, locks that die with their holder.

Real parts throughout: a device twin on a real pty plays a hardware board (the lab file names its port,
`simulated = false`), and every contender is a real `pytest` subprocess. Synchronisation is by flag files
with bounded waits, never by sleeping a guessed time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_edgehil.errors import DeviceBusy, DeviceError, ResourceBusy
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.locks import ResourceLock
from pytest_edgehil.sim import start_device_twin
from pytest_edgehil.sim.device_twin import DeviceTwin

from .conftest import BUDGETS, MODELS, REPO

WAIT_S = 60.0  # upper bound of every wait below; the happy path takes a fraction of a second

HOLDING_TEST = """
import os, pathlib, time
import pytest
from pytest_edgehil.measure.latency import stage_timings, timing_arrays_ms

@pytest.mark.edgehil_metrics("end_to_end_ms")
def test_measure(edgehil_dut, edgehil_record):
    ms = timing_arrays_ms(stage_timings(edgehil_dut, 5))
    edgehil_record.check_median("end_to_end_ms", ms["end_to_end_ms"])
    hold = os.environ.get("EDGEHIL_TEST_HOLD")
    if hold:  # keep the board (the session holds it) until the test lets go
        pathlib.Path(hold + ".ready").write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while not pathlib.Path(hold + ".release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
"""


def wait_for(predicate, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"process exited ({proc.returncode}) before {what}:\n{out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Project:
    """A user's project on disk whose lab names the twin's pty as a hardware board, run by real pytest."""

    def __init__(self, root: Path, boards: dict[str, DeviceTwin]) -> None:
        self.root = root
        self.boards = boards
        self.env = {**os.environ, "EDGEHIL_LOCK_DIR": str(root / "locks")}
        self.env.pop("PYTEST_XDIST_WORKER", None)
        self.env.pop("PYTEST_ADDOPTS", None)
        (root / "pytest.ini").write_text(textwrap.dedent(f"""
            [pytest]
            edgehil_models_dir = {MODELS}
            edgehil_budgets = {BUDGETS}
            edgehil_latency_runs = 5
        """))
        tables = "".join(f'[devices.{name}]\nkind = "{name}"\nport = "{twin.port}"\n\n' for name, twin in boards.items())
        (root / "lab.toml").write_text(f'[lab]\nname = "shared rack"\n\n{tables}')
        (root / "test_board.py").write_text(HOLDING_TEST)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pytest", "test_board.py", "--lab=lab.toml", "--model=tinytracker",
                "-p", "no:cacheprovider", "-p", "no:randomly", *args]

    def start(self, *args: str, hold: str | None = None, output: Path | None = None) -> subprocess.Popen:
        env = {**self.env, **({"EDGEHIL_TEST_HOLD": str(self.root / hold)} if hold else {})}
        out = open(output, "w") if output else subprocess.PIPE  # noqa: SIM115 - closed with the process
        return subprocess.Popen(self.command(*args), cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                text=True)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), cwd=self.root, env=self.env, capture_output=True, text=True, check=False,
                              timeout=WAIT_S * 2)

    def hold(self, name: str) -> subprocess.Popen:
        holder = self.start(hold=name)
        wait_for((self.root / f"{name}.ready").exists, f"{name} to hold the board", holder)
        return holder

    def release(self, name: str, holder: subprocess.Popen) -> str:
        (self.root / f"{name}.release").touch()
        out, _ = holder.communicate(timeout=WAIT_S * 2)
        return out

    def commands_seen(self, board: str) -> int:
        # Every command the twin answers leaves a span on its timeline: equal counts = not one byte served.
        return len(self.boards[board].timeline.snapshot())


@pytest.fixture
def rack(tmp_path: Path) -> Iterator[Project]:
    twin, _ = start_device_twin("coral", "coral", as_board=True)  # a rack board: HELLO as a board
    try:
        yield Project(tmp_path, {"coral": twin})
    finally:
        twin.close()


def test_second_pytest_on_a_held_board_fails_busy_naming_holder_and_never_measures(rack):
    holder = rack.hold("a")
    served = rack.commands_seen("coral")
    second = rack.run()
    assert second.returncode == 1, second.stdout
    port = rack.boards["coral"].port
    assert f"DeviceBusy: device 'coral' on {port} is busy: held by PID {holder.pid}" in second.stdout
    assert "since 20" in second.stdout and "test_board.py" in second.stdout  # when, and which command
    assert "edgehil_lock_timeout" in second.stdout  # and how to wait instead
    assert rack.commands_seen("coral") == served  # the second run never spoke to the board
    out = rack.release("a", holder)
    assert holder.returncode == 0, out
    run_files = [p for p in (rack.root / "edgehil-results").glob("*.json") if p.name != "latest.json"]
    assert len(run_files) == 1  # only the holder measured: the busy run recorded nothing


def test_with_a_lock_timeout_the_second_run_waits_says_so_then_measures(rack):
    holder = rack.hold("a")
    log = rack.root / "second.log"
    second = rack.start("-o", "edgehil_lock_timeout=60", output=log)
    wait_for(lambda: "is busy: held by PID" in log.read_text(), "the waiting run to say what it waits for", second)
    served = rack.commands_seen("coral")
    assert f"held by PID {holder.pid}" in log.read_text() and "waiting up to" in log.read_text()
    assert rack.release("a", holder) is not None and holder.returncode == 0
    assert second.wait(timeout=WAIT_S * 2) == 0, log.read_text()
    assert rack.commands_seen("coral") > served  # it measured, after the holder let go


def test_a_holder_killed_with_sigkill_does_not_block_the_next_run(rack):
    holder = rack.hold("a")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=WAIT_S)
    # The dead holder's record is left behind in its lock file; the flock is not.
    assert any(f'"pid": {holder.pid}' in p.read_text() for p in (rack.root / "locks").glob("*.lock"))
    after = rack.run()
    assert after.returncode == 0, after.stdout  # the kernel dropped the dead holder's flock


def test_two_processes_opening_one_pty_exclusively_the_second_gets_device_error_naming_port(rack):
    port = rack.boards["coral"].port
    script = ("import sys\nfrom pytest_edgehil.link.client import DeviceClient\n"
              "c = DeviceClient(sys.argv[1], name='first'); c.open(); print('open', flush=True); sys.stdin.read()\n")
    first = subprocess.Popen([sys.executable, "-c", script, port], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=rack.env)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "open"
        second = DeviceClient(port, name="second")
        with pytest.raises(DeviceError, match=f"device 'second': cannot open port {port}.*exclusively lock"):
            second.open()
        assert not second.is_open
    finally:
        first.communicate("", timeout=WAIT_S)
    with DeviceClient(port, name="second") as again:  # the first one's exit released the port
        assert again.hello().device_kind == "coral"


def test_lock_in_one_process_is_busy_for_another_object_and_free_after_release(tmp_path):
    first = ResourceLock("device 'x' on /dev/ttyX", "device-x", busy_error=DeviceBusy, directory=tmp_path,
                         owner="pytest suites/")
    first.acquire()
    other = ResourceLock("device 'x' on /dev/ttyX", "device-x", busy_error=DeviceBusy, directory=tmp_path)
    with pytest.raises(DeviceBusy, match=rf"device 'x' on /dev/ttyX is busy: held by PID {os.getpid()} .*"
                                         r"\(pytest suites/\)") as caught:
        other.acquire()
    assert isinstance(caught.value, ResourceBusy) and isinstance(caught.value, DeviceError)
    first.release()
    assert first.holder() is None and first.path.exists()  # the record is cleared, the file stays
    other.acquire()
    assert other.held and other.holder() is not None and other.holder().pid == os.getpid()
    other.release()


CONCURRENT_RUNS = """
import os, pathlib, time
import pytest

@pytest.mark.edgehil_metrics(unbudgeted=True)
def test_one(edgehil_record):
    edgehil_record.check_median("step_ms", [1.0, 2.0, 3.0])

@pytest.mark.edgehil_metrics(unbudgeted=True)
def test_two(edgehil_record):
    flag = os.environ.get("EDGEHIL_TEST_WAIT")
    if flag:  # tell the test we are half-way, then wait until the other run has finished
        pathlib.Path(flag + ".ready").touch()
        deadline = time.monotonic() + 120
        while not pathlib.Path(flag).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    edgehil_record.check_median("step_ms", [4.0, 5.0, 6.0])
"""


def test_two_concurrent_runs_keep_both_results_files_and_latest_is_the_last_finished(tmp_path):
    from pytest_edgehil.results.store import load_results

    (tmp_path / "pytest.ini").write_text(f"[pytest]\nedgehil_models_dir = {MODELS}\nedgehil_budgets = {BUDGETS}\n")
    (tmp_path / "test_runs.py").write_text(CONCURRENT_RUNS)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")}
    command = [sys.executable, "-m", "pytest", "test_runs.py", "--device=imx500", "--model=qsegment",
               "-p", "no:cacheprovider"]
    flag = tmp_path / "b-finished"
    slow = subprocess.Popen(command, cwd=tmp_path, env={**env, "EDGEHIL_TEST_WAIT": str(flag)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(Path(f"{flag}.ready").exists, "the slow run to be half-way", slow)
    fast = subprocess.run([*command, "-k", "test_one"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                          timeout=WAIT_S * 2)
    assert fast.returncode == 0, fast.stdout
    results = tmp_path / "edgehil-results"
    latest = results / "latest.json"
    runs = {p.name: load_results(p) for p in results.glob("*.json") if p.name != "latest.json"}
    (fast_file,) = [name for name, r in runs.items() if r.run.complete]
    assert latest.read_text() == (results / fast_file).read_text()  # the run that finished last, so far
    flag.touch()
    out, _ = slow.communicate(timeout=WAIT_S * 2)
    assert slow.returncode == 0, out
    runs = {p.name: load_results(p) for p in results.glob("*.json") if p.name != "latest.json"}
    assert len(runs) == 2 and all(r.run.complete for r in runs.values())
    (slow_file,) = set(runs) - {fast_file}
    assert [r.raw for r in runs[fast_file].records] == [[1.0, 2.0, 3.0]]
    assert [r.raw for r in runs[slow_file].records] == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]  # nothing lost
    assert latest.read_text() == (results / slow_file).read_text()  # now the slow one: it finished last
    assert load_results(latest).run.complete
    assert [p.name for p in results.iterdir() if p.name.endswith(".tmp")] == []


WHERE_TEST = """
import os
import pytest

@pytest.mark.edgehil_metrics(unbudgeted=True)
def test_where(edgehil_pair, edgehil_dut, record_property):
    record_property("xdist_worker", os.environ["PYTEST_XDIST_WORKER"])
    record_property("device", edgehil_pair.device)
    assert edgehil_dut.hello.device_kind == edgehil_dut.config.kind
"""


def workers_by_device(xml: Path) -> dict[str, set[str]]:
    import xml.etree.ElementTree as ET

    seen: dict[str, set[str]] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        seen.setdefault(str(props["device"]), set()).add(str(props["xdist_worker"]))
    return seen


def test_loadgroup_keeps_every_device_on_one_worker(edgehil_project):
    pytest.importorskip("xdist")
    edgehil_project.makepyfile(test_where=WHERE_TEST)
    xml = edgehil_project.path / "junit.xml"
    result = edgehil_project.runpytest("--device=all", "-n", "2", "--dist", "loadgroup", f"--junitxml={xml}",
                                       "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 6 and "failed" not in outcomes and "errors" not in outcomes
    seen = workers_by_device(xml)
    assert len(seen) >= 4 and all(len(workers) == 1 for workers in seen.values()), seen
    assert len(set().union(*seen.values())) == 2  # and both workers had devices to run


def test_plain_n2_on_a_hardware_lab_groups_by_device_instead_of_failing_busy(edgehil_project, monkeypatch, tmp_path):
    pytest.importorskip("xdist")
    monkeypatch.setenv("EDGEHIL_LOCK_DIR", str(tmp_path / "locks"))
    twins = {name: start_device_twin(name, name, as_board=True)[0] for name in ("coral", "imx500")}
    try:
        tables = "".join(f'[devices.{n}]\nkind = "{n}"\nport = "{t.port}"\n\n' for n, t in twins.items())
        lab = edgehil_project.makefile(".toml", lab=tables)
        edgehil_project.makepyfile(test_where=WHERE_TEST)
        xml = edgehil_project.path / "junit.xml"
        # `-n 2` alone means --dist load, which would give one board to both workers: the plugin groups instead.
        result = edgehil_project.runpytest(f"--lab={lab}", "-n", "2", f"--junitxml={xml}", "-p", "no:cacheprovider")
        outcomes = result.parseoutcomes()
        assert outcomes.get("passed", 0) >= 4 and "errors" not in outcomes and "failed" not in outcomes, outcomes
        seen = workers_by_device(xml)
        assert set(seen) == {"coral", "imx500"} and all(len(w) == 1 for w in seen.values()), seen
    finally:
        for twin in twins.values():
            twin.close()


def test_the_hardware_path_still_imports_no_simulation():
    # bench.py gained the lock; the lock module must stay off the simulation like the rest of the hardware path.
    code = ("import sys, pytest_edgehil.bench, pytest_edgehil.locks; "
            "print([m for m in sys.modules if m.startswith('pytest_edgehil.sim')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_device_of_a_node_id_takes_the_longest_pair_id_among_the_parameters():
    pytest.importorskip("xdist")
    from pytest_edgehil.plugin.xdist_groups import device_of

    pairs = {"qsegment-jetson-nano": "jetson-nano", "qsegment-jetson": "jetson", "a-b": "b"}
    assert device_of("s/test_x.py::test_l[qsegment-jetson-nano]", pairs) == "jetson-nano"
    assert device_of("s/test_x.py::test_l[qsegment-jetson-3]", pairs) == "jetson"
    assert device_of("s/test_x.py::T::test_l[7-a-b]", pairs) == "b"
    assert device_of("s/test_x.py::test_plain", pairs) is None
    assert device_of("s/test_x.py::test_l[a-bc]", pairs) is None
