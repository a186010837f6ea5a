from pathlib import Path

import pytest

from pytest_edgehil.config.kinds import DeviceKind, device_kinds, get_device_kind, register_device_kind
from pytest_edgehil.config.lab import apply_backend, load_lab, select_devices, simulated_lab
from pytest_edgehil.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_builtin_kinds_are_registered_with_twins():
    kinds = device_kinds()
    for name in ("imx500", "coral", "spresense", "cortex-m4", "jetson-nano", "jetson-xavier"):
        assert kinds[name].simulatable


def test_duplicate_kind_is_rejected():
    with pytest.raises(ConfigError, match="already registered"):
        register_device_kind(DeviceKind("coral", "another coral"))


def test_unknown_kind_lists_known_ones():
    with pytest.raises(ConfigError, match="imx500"):
        get_device_kind("esp32-s3")


def test_default_lab_file_is_all_simulated():
    lab = load_lab(REPO / "fixtures" / "lab.sim.toml")
    assert lab.all_simulated
    assert set(lab.devices) == set(simulated_lab().devices)


def test_example_hardware_lab_parses(tmp_path):
    lab = load_lab(REPO / "fixtures" / "lab.example-hw.toml")
    assert not lab.all_simulated
    assert lab.devices["coral"].usb_serial
    assert lab.devices["coral-2"].kind == "coral"
    with pytest.raises(ConfigError, match="simulated"):
        apply_backend(simulated_lab(), "hw")


def test_hardware_device_without_port_is_an_error_naming_the_fix(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text('[devices.coral]\nkind = "coral"\n')
    with pytest.raises(ConfigError, match="port"):
        load_lab(path)


def test_backend_sim_simulates_a_hardware_lab_explicitly():
    lab = apply_backend(load_lab(REPO / "fixtures" / "lab.example-hw.toml"), "sim")
    assert lab.all_simulated


def test_select_devices():
    lab = simulated_lab()
    assert select_devices(lab, "coral,imx500") == ["coral", "imx500"]
    assert set(select_devices(lab, "all")) == set(lab.devices)
    with pytest.raises(ConfigError, match="known devices"):
        select_devices(lab, "coral,nope")
