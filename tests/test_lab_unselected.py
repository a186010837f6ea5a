"""A lab entry that is wrong stops the runs that select it, not the runs of the other boards.

Labs gate merges per board: an imx500 job refused because someone broke the coral entry would be a refusal
of a sound measurement. The broken entry is still reported in every run (a warning naming the entry, the
problem and that runs selecting it stop), so a typo is seen at once; a run that selects the entry, or
every entry (`--device=all`, no `--device`), stops with the entry's error as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.config.lab import lab_from_data, select_devices
from pytest_edgehil.errors import ConfigError

# The coral board needs 5 V (kinds.toml); an LPM01A sources at most 3.3 V: the entry cannot be measured.
BROKEN_CORAL = '[devices.coral]\nsimulated = true\ntwin_monitor = "lpm01a"\n\n'
IMX500 = '[devices.imx500]\nsimulated = true\n'
SESSION_TEST = """
def test_selected(edgehil_session):
    assert edgehil_session.devices == ("imx500",)
"""


def run(project: pytest.Pytester, lab: str, *args: str) -> pytest.RunResult:
    path = project.makefile(".toml", lab=lab)
    project.makepyfile(test_selected=SESSION_TEST)
    return project.runpytest(f"--lab={path}", "-p", "no:cacheprovider", *args)


def test_a_broken_unselected_entry_warns_naming_it_and_the_selected_board_runs(edgehil_project):
    result = run(edgehil_project, BROKEN_CORAL + IMX500, "--device=imx500")
    out = result.stdout.str()
    assert result.parseoutcomes().get("passed") == 1, out
    assert "[devices.coral]: device 'coral' cannot be measured through its twin_monitor 'lpm01a'" in out
    assert "is not selected by --device, so this run goes on without it; a run that selects 'coral' (or every device) stops" in out


@pytest.mark.parametrize("selection", [(), ("--device=coral",), ("--device=all",), ("--device=imx500,coral",)])
def test_a_run_that_selects_the_broken_entry_stops_with_its_error(edgehil_project, selection):
    result = run(edgehil_project, BROKEN_CORAL + IMX500, *selection)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    assert "[devices.coral]: device 'coral' cannot be measured through its twin_monitor" in result.stderr.str()


def test_a_misspelt_key_in_an_unselected_entry_is_reported_too(tmp_path: Path):
    data = {"devices": {"coral": {"simulated": True, "twin_monitr": "ppk2"}, "imx500": {"simulated": True}}}
    lab = lab_from_data(data, tmp_path / "lab.toml", selected={"imx500"})
    assert list(lab.devices) == ["imx500"]
    assert "unknown key `twin_monitr`; did you mean `twin_monitor`?" in lab.unusable["coral"]
    with pytest.raises(ConfigError, match="twin_monitr"):
        lab_from_data(data, tmp_path / "lab.toml")  # every entry selected: refused as before


def test_an_unusable_entry_is_still_a_known_name_when_selected_by_mistake(tmp_path: Path):
    data = {"devices": {"coral": {"simulated": True, "twin_monitor": "lpm01a"}, "imx500": {"simulated": True}}}
    lab = lab_from_data(data, tmp_path / "lab.toml", selected={"imx500"})
    with pytest.raises(ConfigError, match=r"\[devices.coral\]: device 'coral' cannot be measured"):
        select_devices(lab, "coral")
