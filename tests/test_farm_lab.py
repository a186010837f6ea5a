"""Boards in a labgrid farm, the lab file's side: the start-up checks of a device that names a place or
tags, the URL a place's serial port becomes and the wiring its tags carry. No labgrid needed (its absence
is one of the cases): these run in the main test run; the end-to-end tests through a real coordinator are
in test_farm.py, run where the labgrid extra is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_edgehil.config.lab import DeviceConfig, LabConfig, lab_from_data, select_devices
from pytest_edgehil.errors import ConfigError, DeviceError
from pytest_edgehil.farm import INSTALL, PlaceLease, apply_place, coordinator_address, serial_url


def farm_lab(**device: object) -> dict[str, object]:
    return {"lab": {"coordinator": "127.0.0.1:20408"}, "devices": {"coral": {"kind": "coral", **device}}}


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
