"""`edgehil init`'s "next:" line names a pytest that has the plugin, also from a shell without the venv."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_edgehil.starter import pytest_command


def test_a_shell_whose_path_lacks_this_environment_is_told_this_interpreter(tmp_path: Path) -> None:
    other = tmp_path / "bin"
    other.mkdir()
    stranger = other / "pytest"  # another environment's pytest, first on PATH
    stranger.write_text("#!/bin/sh\n")
    stranger.chmod(0o755)
    assert pytest_command(path=str(other)) == f"{sys.executable} -m pytest"
    assert pytest_command(path=str(tmp_path / "empty")) == f"{sys.executable} -m pytest"


def test_a_shell_with_this_environment_first_on_path_is_told_plain_pytest() -> None:
    here = Path(sys.executable).parent
    if not (here / "pytest").exists():
        pytest.skip(f"no pytest script beside {sys.executable} (a virtualenv has one)")
    assert pytest_command(path=str(here)) == "pytest"
