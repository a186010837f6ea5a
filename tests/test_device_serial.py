"""The right board: where the lab file states a board's `device_serial` (the serial number its firmware
reports in HELLO), a board swapped onto another entry's port is refused before any test measures it; where
it does not, the gate's comparison flags the change of board for the device name.

Two stand-in boards of one kind (device twins served as boards, `as_board=True`): their serial numbers
differ because their names do, and each test reads them from the twins' own HELLO, never a literal.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_edgehil.bring_up import check_identity
from pytest_edgehil.config.lab import DeviceConfig, LabConfig, apply_backend, lab_from_data
from pytest_edgehil.errors import ConfigError, DeviceError, WrongBoard
from pytest_edgehil.link import messages as p
from pytest_edgehil.results.gate_flags import context_flags
from pytest_edgehil.results.store import load_results
from pytest_edgehil.sim import start_device_twin
from pytest_edgehil.sim.device_twin import DeviceTwin

BOARD_TEST = """
import pytest

@pytest.mark.edgehil_metrics("inference_ms")
def test_board(edgehil_pair, edgehil_dut, edgehil_record, edgehil_model_info):
    assert edgehil_dut.hello.device_kind == "coral"
    edgehil_record.check("model_kib", edgehil_model_info.size_bytes / 1024)
"""


def hello_of(twin: DeviceTwin) -> p.HelloReply:
    (reply,) = twin.handle(p.Hello())
    assert isinstance(reply, p.HelloReply)
    return reply


@pytest.fixture
def boards(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, DeviceTwin]]:
    """Two Coral boards on the rack, "a" and "b" (the names only tell the twins apart)."""
    monkeypatch.setenv("EDGEHIL_LOCK_DIR", str(tmp_path / "locks"))
    twins = {k: start_device_twin("coral", f"rack-coral-{k}", as_board=True)[0] for k in ("a", "b")}
    try:
        yield twins
    finally:
        for twin in twins.values():
            twin.close()


def lab_text(ports: dict[str, str], serials: dict[str, str]) -> str:
    return "".join(f'[devices.coral-{k}]\nkind = "coral"\nport = "{ports[k]}"\n'
                   + (f'device_serial = "{serials[k]}"\n' if k in serials else "") + "\n" for k in ports)


def run(project: pytest.Pytester, lab: str, *args: str) -> tuple[pytest.RunResult, Path]:
    path = project.makefile(".toml", lab=lab)
    project.makepyfile(test_board=BOARD_TEST)
    return project.runpytest(f"--lab={path}", "--model=qsegment", "-p", "no:cacheprovider", *args), path


def test_the_twins_report_different_serials_so_the_check_has_something_to_tell_apart(boards):
    a, b = (hello_of(boards[k]).serial_number for k in "ab")
    assert a and b and a != b


def test_boards_swapped_between_ports_are_refused_naming_entry_port_both_serials_and_the_fix(edgehil_project, boards):
    serial = {k: hello_of(t).serial_number for k, t in boards.items()}
    # The cables are swapped: board b answers on the port the lab gives coral-a, and board a on coral-b's.
    ports = {"a": boards["b"].port, "b": boards["a"].port}
    saved = edgehil_project.path / "results.json"
    result, lab = run(edgehil_project, lab_text(ports, serial), "--device=all", f"--edgehil-save={saved}")
    out = result.stdout.str()
    assert result.ret != 0, out
    outcomes = result.parseoutcomes()
    assert "passed" not in outcomes and outcomes.get("errors", 0) == 2, outcomes
    assert "WrongBoard" in out
    assert (f"device 'coral-a' on {ports['a']} is another board: it reports serial number {serial['b']!r} in "
            f"HELLO, and [devices.coral-a] of lab file {lab} states device_serial = {serial['a']!r} "
            f"({serial['b']!r} is the device_serial of [devices.coral-b]: the boards are swapped") in out
    assert f"device 'coral-b' on {ports['b']} is another board: it reports serial number {serial['a']!r}" in out
    assert "Put the cables back" in out and f"set device_serial = {serial['b']!r} in [devices.coral-a]" in out
    assert not saved.exists() or not json.loads(saved.read_text())["records"]  # nothing measured under either name


def test_each_board_on_its_own_port_passes_with_its_serial_checked(edgehil_project, boards):
    serial = {k: hello_of(t).serial_number for k, t in boards.items()}
    ports = {k: t.port for k, t in boards.items()}
    result, _ = run(edgehil_project, lab_text(ports, serial), "--device=all")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 2 and "errors" not in outcomes and "failed" not in outcomes, result.stdout.str()
    assert "states no device_serial" not in result.stdout.str()  # stated: no hint to state it


def test_without_device_serial_a_swap_is_measured_as_before_and_the_gate_flags_the_other_board(edgehil_project, boards):
    serial = {k: hello_of(t).serial_number for k, t in boards.items()}
    results = edgehil_project.path / "results.json"
    base, _ = run(edgehil_project, lab_text({"a": boards["a"].port}, {}), f"--edgehil-save={results}")
    assert base.parseoutcomes().get("passed") == 1, base.stdout.str()
    baseline = load_results(results)
    # Board b now behind coral-a's port, and the lab states no serial: measured, as before this check.
    swapped, _ = run(edgehil_project, lab_text({"a": boards["b"].port}, {}), f"--edgehil-save={results}")
    assert swapped.parseoutcomes().get("passed") == 1, swapped.stdout.str()
    new = load_results(results)
    assert new.run.run_id != baseline.run.run_id
    old_rec = next(r for r in baseline.records if r.device == "coral-a" and r.metric == "model_kib")
    new_rec = next(r for r in new.records if r.device == "coral-a" and r.metric == "model_kib")
    assert (old_rec.context or {}).get("device_serial") == serial["a"]
    assert (new_rec.context or {}).get("device_serial") == serial["b"]
    assert f"board serial number differs: {serial['a']} → {serial['b']}" in context_flags(old_rec, new_rec)
    # The run summary shows the serial the board reported and how to have it checked.
    assert (f"[devices.coral-a] states no device_serial; its board reported {serial['b']!r}: add "
            f"device_serial = \"{serial['b']}\"") in swapped.stdout.str()


# ---------------------------------------------------------------------------------------- unit level


def coral(name: str = "coral-a", **kw: object) -> DeviceConfig:
    return DeviceConfig(name=name, kind="coral", simulated=False, port="/dev/ttyACM0", **kw)  # type: ignore[arg-type]


def test_a_serial_typed_in_another_case_or_with_blanks_is_the_same_board(boards):
    seen = hello_of(boards["a"])
    check_identity(coral(device_serial=f" {seen.serial_number.lower()} "), "/dev/ttyACM0", seen)  # no error


def test_wrong_board_carries_device_port_expected_and_found_and_is_a_device_error(boards):
    a, b = hello_of(boards["a"]), hello_of(boards["b"])
    lab = LabConfig(name="rack", path=Path("rack.toml"),
                    devices={"coral-a": coral(device_serial=a.serial_number),
                             "coral-b": coral("coral-b", device_serial=b.serial_number)})
    with pytest.raises(WrongBoard) as info:
        check_identity(lab.devices["coral-a"], "/dev/ttyACM0", b, lab)
    assert isinstance(info.value, DeviceError)
    assert (info.value.device, info.value.port, info.value.expected, info.value.found) == (
        "coral-a", "/dev/ttyACM0", a.serial_number, b.serial_number)
    assert "[devices.coral-a] of lab file rack.toml" in str(info.value)


def test_firmware_reporting_no_serial_is_refused_with_what_to_do_when_one_is_stated(boards):
    silent = dataclasses.replace(hello_of(boards["a"]), serial_number="")
    with pytest.raises(WrongBoard, match="reports no serial number in HELLO.*drop `device_serial`"):
        check_identity(coral(device_serial="X1"), "/dev/ttyACM0", silent)


def test_without_device_serial_any_serial_is_accepted_as_before(boards):
    check_identity(coral(), "/dev/ttyACM0", hello_of(boards["b"]))  # no error: nothing stated, nothing checked


def test_the_lab_file_carries_device_serial_and_refuses_it_for_eembc_firmware(tmp_path):
    lab = lab_from_data({"devices": {"coral-a": {"kind": "coral", "port": "/dev/ttyACM0",
                                                 "device_serial": "C0FFEE"}}}, tmp_path / "lab.toml")
    assert lab.devices["coral-a"].device_serial == "C0FFEE"
    with pytest.raises(ConfigError, match=r"\[devices.kws\]: `device_serial` .* MLPerf Tiny reference firmware "
                                          "reports none"):
        lab_from_data({"devices": {"kws": {"kind": "coral", "port": "/dev/ttyACM0", "protocol": "eembc",
                                           "firmware_model": "kws01", "device_serial": "C0FFEE"}}},
                      tmp_path / "lab.toml")


def test_backend_sim_drops_the_boards_serial_its_twin_reports_its_own(tmp_path):
    lab = lab_from_data({"devices": {"coral-a": {"kind": "coral", "port": "/dev/ttyACM0",
                                                 "device_serial": "C0FFEE"}}}, tmp_path / "lab.toml")
    assert apply_backend(lab, "sim").devices["coral-a"].device_serial is None


def test_device_serial_with_farm_tags_is_refused_at_load_naming_the_fix(tmp_path):
    """Tags let the farm hand out any matching place; a stated serial pins one board, so the run would be
    refused whenever the coordinator picked another (at random, found by review-s25). Refused at load."""
    with pytest.raises(ConfigError, match=r"\[devices.coral-a\]: `device_serial` .* `tags` .* `place`"):
        lab_from_data({"lab": {"coordinator": "ws://coord:20408/ws"},
                       "devices": {"coral-a": {"kind": "coral", "tags": {"board": "coral"},
                                               "device_serial": "C0FFEE"}}}, tmp_path / "lab.toml")
