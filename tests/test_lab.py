from pathlib import Path

import pytest

from pytest_edgehil.config.kinds import DeviceKind, device_kinds, get_device_kind, register_device_kind
from pytest_edgehil.config.lab import apply_backend, load_lab, select_devices, simulated_lab
from pytest_edgehil.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


BUILTIN = ("imx500", "coral", "spresense", "cortex-m4", "jetson-nano", "jetson-xavier")


def test_builtin_kinds_are_registered_with_twins():
    from pytest_edgehil.sim import twin_kinds

    kinds = device_kinds()
    for name in BUILTIN:
        assert kinds[name].ram_bytes > 0 and kinds[name].flash_bytes > 0 and kinds[name].supply_v
        assert name in twin_kinds()


def test_twin_reports_its_kinds_hardware_facts():
    """The kind owns RAM, flash and supply; the twin's profile takes them from it, not from profiles.toml."""
    from pytest_edgehil.sim.profile import PROFILES_FILE, twin_profile

    for name in BUILTIN:
        kind, profile = get_device_kind(name), twin_profile(name)
        assert (profile.display_name, profile.ram_bytes, profile.flash_bytes, profile.supply_v) == (
            kind.display_name, kind.ram_bytes, kind.flash_bytes, kind.supply_v)
    calibration = PROFILES_FILE.read_text(encoding="utf-8")
    for fact in ("ram_bytes", "flash_bytes", "supply_v", "display_name"):
        assert f"\n{fact} =" not in calibration, f"{fact} is the kind's, not the twin's: keep it in kinds.toml"


def test_kind_without_twin_cannot_be_simulated(tmp_path):
    register_device_kind(DeviceKind("hw-only-board", "a board with no twin", supply_v=5.0), replace=True)
    path = tmp_path / "lab.toml"
    path.write_text('[devices.b]\nkind = "hw-only-board"\nsimulated = true\n')
    with pytest.raises(ConfigError, match="no twin"):
        load_lab(path)
    path.write_text('[devices.b]\nkind = "hw-only-board"\nport = "/dev/ttyEDGEHIL-absent"\n')
    assert not load_lab(path).all_simulated
    assert "hw-only-board" not in simulated_lab().devices


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
    assert set(select_devices(lab, None)) == set(lab.devices)  # the option not given: every device


@pytest.mark.parametrize("given", ["", " ", ",", " , "])
def test_a_given_but_empty_device_selection_is_refused_not_taken_for_all(given: str) -> None:
    # `--device=$BOARD` with BOARD unset in a CI job ran every board of the lab.
    with pytest.raises(ConfigError, match=r"--device is empty .*a CI variable left unset.*'all'"):
        select_devices(simulated_lab(), given)


def test_all_mixed_with_names_is_refused_as_such_not_as_an_unknown_device() -> None:
    # `--device=all,coral` said "--device all: not in lab …; known devices: … (or 'all')": it refused 'all'
    # while offering it. The message says that 'all' stands alone.
    with pytest.raises(ConfigError) as info:
        select_devices(simulated_lab(), "all,coral")
    message = str(info.value)
    assert "not in lab" not in message
    assert "'all' selects every device" in message and "alone" in message


def test_a_device_name_in_the_wrong_case_is_pointed_at_its_lab_name() -> None:
    # `--device=Coral` listed every device but did not say which one was meant.
    with pytest.raises(ConfigError, match=r"--device Coral: not in lab .*did you mean 'coral'\?"):
        select_devices(simulated_lab(), "Coral")
    with pytest.raises(ConfigError) as info:
        select_devices(simulated_lab(), "nonsense")
    assert "did you mean" not in str(info.value)  # nothing close: no guess


def test_the_device_kind_entry_point_group_keeps_its_public_name() -> None:
    # Labs' own packages register boards under this group in their pyproject; renaming it silently
    # drops their kinds (the layout move once rewrote it to a module path).
    from pytest_edgehil.config.kinds import ENTRY_POINT_GROUP

    assert ENTRY_POINT_GROUP == "pytest_edgehil.devices"


def _rack(tmp_path: Path, tables: str) -> Path:
    path = tmp_path / "rack.toml"
    path.write_text('[lab]\nname = "rack"\n' + tables)
    return path


def test_two_selected_devices_on_one_board_are_refused_at_start_up_naming_both(tmp_path):
    # Otherwise the second one's bring-up fails "busy: held by PID <this run>", as if another run held it.
    (tmp_path / "by-id").mkdir()
    alias = tmp_path / "by-id" / "usb-coral"
    alias.symlink_to("/dev/ttyACM0")  # a /dev/serial/by-id name is the same board as the device node
    lab = load_lab(_rack(tmp_path, '[devices.coral]\nport = "/dev/ttyACM0"\n'
                                   f'[devices.coral-b]\nkind = "coral"\nport = "{alias}"\n'
                                   '[devices.imx500]\nusb_serial = "0A1B"\n[devices.cam]\nkind = "imx500"\n'
                                   'usb_serial = "0A1B"\n[devices.spresense]\nport = "/dev/ttyUSB0"\n'))
    with pytest.raises(ConfigError, match=r"devices 'coral' and 'coral-b' of lab 'rack' both name port "
                                          r"/dev/ttyACM0: one board .*select one of them.*`port`"):
        select_devices(lab, "coral,coral-b")
    with pytest.raises(ConfigError, match=r"devices 'imx500' and 'cam' of lab 'rack' both name usb_serial '0A1B'"):
        select_devices(lab, "spresense,imx500,cam")
    with pytest.raises(ConfigError, match=r"devices 'coral' and 'coral-b' .* both name port"):
        select_devices(lab, "all")
    # Each alone, or with a board of its own, is fine: a lab may describe one board two ways (two firmwares).
    assert select_devices(lab, "coral-b,imx500,spresense") == ["coral-b", "imx500", "spresense"]


def test_simulated_devices_never_share_a_board(tmp_path):
    lab = load_lab(_rack(tmp_path, '[devices.coral]\nport = "/dev/ttyACM0"\n[devices.coral-b]\nkind = "coral"\n'
                                   'port = "/dev/ttyACM0"\n'))
    assert select_devices(apply_backend(lab, "sim"), "all") == ["coral", "coral-b"]  # each its own twin
