"""`[lab] kinds` and `[lab] profiles`: a lab's own board kinds and twins, from files it names.

The path that registers a new kind is exercised end to end (in a subprocess, so the registration does
not leak into this process's other tests) by tests/test_extending_doc.py; here, what is refused."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_edgehil.config.kinds import device_kinds
from pytest_edgehil.config.lab import load_lab
from pytest_edgehil.errors import ConfigError

IMX500_AS_SHIPPED = """
[kind.imx500]
display_name = "Sony IMX500 intelligent vision sensor"
ram_bytes = 8_388_608
flash_bytes = 8_388_608
default_baud = 115200
supply_v = 3.3
float_compute = false
"""


def lab(tmp_path: Path, lab_table: str, kinds: str | None = None) -> Path:
    if kinds is not None:
        (tmp_path / "boards.toml").write_text(textwrap.dedent(kinds), encoding="utf-8")
    path = tmp_path / "lab.toml"
    path.write_text(textwrap.dedent(lab_table) + '\n[devices.imx500]\nkind = "imx500"\nsimulated = true\n',
                    encoding="utf-8")
    return path


def test_a_kind_with_the_shipped_facts_is_accepted_and_changes_nothing(tmp_path: Path) -> None:
    before = device_kinds()
    loaded = load_lab(lab(tmp_path, '[lab]\nkinds = "boards.toml"\n', IMX500_AS_SHIPPED))
    assert loaded.devices["imx500"].kind == "imx500" and device_kinds() == before


def test_a_lab_cannot_change_a_shipped_kinds_facts(tmp_path: Path) -> None:
    path = lab(tmp_path, '[lab]\nkinds = "boards.toml"\n', IMX500_AS_SHIPPED.replace("supply_v = 3.3", "supply_v = 5.0"))
    with pytest.raises(ConfigError, match=r"\[lab\] kinds: kind 'imx500' in .*boards.toml differs .*own kind name"):
        load_lab(path)
    assert device_kinds()["imx500"].supply_v == 3.3


@pytest.mark.parametrize("key", ["kinds", "profiles"])
def test_a_missing_file_names_the_key_and_says_paths_are_relative_to_the_lab(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[lab\] {key}: no file .*absent.toml; the path is relative to the lab file"):
        load_lab(lab(tmp_path, f'[lab]\n{key} = "absent.toml"\n'))


def test_a_malformed_kinds_file_names_the_entry_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[kind.acme\].*ram_bytes"):
        load_lab(lab(tmp_path, '[lab]\nkinds = "boards.toml"\n',
                     '[kind.acme]\ndisplay_name = "Acme"\nram_bytes = "2 MB"\n'))
