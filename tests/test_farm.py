"""Boards in a labgrid farm end to end: the suites through a real coordinator, exporter and ser2net on
loopback (`farm_rack`), and what a run leaves at the coordinator when it is cancelled or killed. One rack
serves every test of the module. They skip when labgrid or ser2net is missing, except in CI (`CI` set),
where they must run. The lab file's side of a farm device is tested in test_farm_lab.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from dataclasses import replace

import pytest

from pytest_edgehil.config.lab import DeviceConfig
from pytest_edgehil.errors import ConfigError

from .farm_rack import CORAL_1, WAIT_S, Rack, group_alive, needs_farm, records_of, running_rack, wait_for


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    """One rack for every test of this module: the coordinator, exporter and twins start once."""
    with running_rack(tmp_path_factory.mktemp("farm")) as started:
        yield started


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
