"""Two lab entries stating one `device_serial` make the board check vacuous between them: either board
passes as either entry, so two boards swapped between their ports are measured under each other's names,
the very case `device_serial` is there to refuse (docs/lab.md). Refused when the lab file is read, naming
both entries; the serial numbers compared as the bring-up compares them (case and blanks aside)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.config.lab import lab_from_data
from pytest_edgehil.errors import ConfigError


def _lab(second_serial: str) -> dict[str, object]:
    return {"lab": {"name": "rack"}, "devices": {
        "coral-1": {"kind": "coral", "port": "/dev/ttyACM0", "device_serial": "A1B2C3"},
        "coral-2": {"kind": "coral", "port": "/dev/ttyACM1", "device_serial": second_serial}}}


@pytest.mark.parametrize("second", ["A1B2C3", " a1b2c3"])
def test_two_entries_stating_one_device_serial_are_refused_naming_both(second: str) -> None:
    with pytest.raises(ConfigError) as caught:
        lab_from_data(_lab(second), Path("lab.toml"))
    text = str(caught.value)
    assert "coral-1" in text and "coral-2" in text and "device_serial" in text, text


def test_distinct_device_serials_load() -> None:
    lab = lab_from_data(_lab("D4E5F6"), Path("lab.toml"))
    assert {name: dev.device_serial for name, dev in lab.devices.items()} == {"coral-1": "A1B2C3", "coral-2": "D4E5F6"}


def test_two_unselected_entries_stating_one_serial_leave_a_third_board_s_run_alone() -> None:
    data = _lab("A1B2C3")
    data["devices"]["imx500"] = {"kind": "imx500", "simulated": True}  # type: ignore[index]
    lab = lab_from_data(data, Path("lab.toml"), selected={"imx500"})
    assert set(lab.devices) == {"imx500"} and set(lab.unusable) == {"coral-1", "coral-2"}
