"""The agent's libgpiod trigger output: lazy import, a clear error naming chip, line and the install command
where the library is absent, and no `trigger_gpio` capability without a configured line."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from pytest_edgehil.agent.trigger_gpio import GpiodTrigger, trigger_capabilities
from pytest_edgehil.errors import ConfigError


def test_no_line_configured_declares_no_trigger():
    assert trigger_capabilities(None) == ()


def test_missing_library_names_chip_line_and_install_command(monkeypatch: pytest.MonkeyPatch):
    # Runs whether or not gpiod is installed (it skipped where it was): the import finds no library, as on
    # an agent installed without the [agent] extra.
    monkeypatch.setitem(sys.modules, "gpiod", None)
    with pytest.raises(ConfigError, match=r"/dev/gpiochip0 line 17 needs the gpiod.*pytest-edgehil\[agent\]"):
        GpiodTrigger("/dev/gpiochip0", 17)


# The dev extra installs gpiod on Linux (it builds there without a GPIO chip): this runs in CI.
@pytest.mark.skipif(importlib.util.find_spec("gpiod") is None, reason="gpiod is not installed here")
def test_a_chip_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot request .* line 3"):
        GpiodTrigger(str(tmp_path / "gpiochip9"), 3)
