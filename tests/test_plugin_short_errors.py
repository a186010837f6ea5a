"""A typed error (`EdgeHILError`) raised in a test or a fixture is reported as its class and message, which
say what failed and what to do, not as a traceback through pytest-edgehil's internals; `--tb=long` (or any
explicit style, or -vv) brings the traceback back. Other exceptions keep pytest's report."""

from __future__ import annotations

import pytest

# A user's conftest fixture that reaches into the package (a bench for a device its lab does not have a
# port for) and a test that raises through it: the DeviceError comes from package frames (resolve_port,
# imported from bench where it was first, lives in pytest_edgehil/device_under_test.py).
CONFTEST = """
import pytest
from pytest_edgehil.bench import resolve_port
from pytest_edgehil.config.lab import DeviceConfig


@pytest.fixture
def board():
    config = DeviceConfig(name="cam", kind="imx500", simulated=False, usb_serial="NOPE-0042")
    return resolve_port(config, comports=lambda: [])
"""

USER_TEST = """
def test_uses_board(board):
    assert board


def test_plain_failure():
    assert 1 + 1 == 3
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user=USER_TEST)
    return pytester


def test_a_typed_fixture_error_shows_its_message_not_our_frames(project):
    result = project.runpytest("-p", "no:cacheprovider", "-rE")
    result.assert_outcomes(errors=1, failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_uses_board*",
        "DeviceError: device 'cam': no USB serial port with serial number 'NOPE-0042'; ports present: none.*",
        "conftest.py:*: in board",
        "*--tb=long*",
    ])
    assert "pytest_edgehil/" not in out and "pytest_edgehil.errors" not in out
    # The -r summary line carries the message, so a long run's summary says what failed.
    result.stdout.fnmatch_lines(["ERROR test_user.py::test_uses_board - DeviceError: device 'cam': no USB*"])
    # Anything else keeps pytest's own report.
    result.stdout.fnmatch_lines(["*assert (1 + 1) == 3*"])


@pytest.mark.parametrize("flag", ["--tb=long", "-vv"])
def test_asking_for_tracebacks_shows_the_traceback(project, flag):
    result = project.runpytest("-p", "no:cacheprovider", flag)
    result.assert_outcomes(errors=1, failed=1)
    out = result.stdout.str()
    assert "pytest_edgehil/device_under_test.py" in out and "def resolve_port" in out
    assert "shortened this error's traceback" not in out
