"""`edgehil … --help` renders for every command (argparse %-formats help texts: a bare % crashed it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pytest_edgehil.cli import build_parser
from pytest_edgehil.results.comparison import DEFAULT_FAIL_ON

from .conftest import REPO


def _edgehil(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "pytest_edgehil.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


@pytest.mark.parametrize(("command", "expected"), [
    ("compare", ["usage: edgehil compare", "--fail-on FAMILY:PCT", DEFAULT_FAIL_ON.split(",")[0],
                 "throughput:5%", "families: latency, energy, power, throughput"]),
    ("report", ["usage: edgehil report", "--html OUT.html", "RESULTS"]),
])
def test_command_help_renders_in_a_subprocess(command: str, expected: list[str]) -> None:
    result = _edgehil(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines at the terminal width
    for part in expected:
        assert part in text, part


def test_every_command_formats_its_help() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    assert {"inspect", "compare", "report"} <= set(subparsers.choices)
    for name, sub in subparsers.choices.items():
        assert f"edgehil {name}" in sub.format_help()


def test_pytest_help_says_the_baseline_may_be_a_directory_of_sessions(pytester: pytest.Pytester) -> None:
    """docs/gate.md and README: `--edgehil-baseline` takes a results file or a directory of them (one per
    session, >= 5 to measure the drift); `pytest --help` said "results file" only."""
    result = pytester.runpytest("--help")
    text = " ".join(result.stdout.str().split())
    entry = text[text.index("--edgehil-baseline"):text.index("--edgehil-fail-on")]
    assert "directory" in entry, entry
