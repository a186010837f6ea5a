"""The agent's trigger output through libgpiod (gpiod 2.x Python bindings), where a line is wired.

A Linux board raises one GPIO line over each inference stage (`invoke()`) so a SCPI analyzer triggers on it,
or a monitor's digital input samples it (`measure.digital_windows`). The line is requested from its
chip's character device (`/dev/gpiochipN`, line offset N) with `gpiod.request_lines`, as an output
starting inactive. `gpiod` is imported only when a line is configured: an agent without one needs no
library, and declares `trigger_gpio` in HELLO only when the line was configured and requested.
"""

from __future__ import annotations

import importlib
from typing import Any

from pytest_edgehil.errors import ConfigError

INSTALL = "pip install 'pytest-edgehil[agent]'  (gpiod >= 2.1, the libgpiod 2.x bindings)"
CAPABILITY = "trigger_gpio"


class GpiodTrigger:
    """Line `line` of `chip` (a path such as /dev/gpiochip0) as the trigger output. ConfigError naming the
    chip, the line and what to do when the library is missing or the line cannot be requested."""

    def __init__(self, chip: str, line: int, *, active_low: bool = False, consumer: str = "edgehil-agent") -> None:
        self.chip, self.line = chip, line
        try:
            gpiod: Any = importlib.import_module("gpiod")
            from gpiod.line import Direction, Value  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ConfigError(f"trigger output on {chip} line {line} needs the gpiod Python bindings (libgpiod 2.x), "
                              f"not installed here ({exc}): {INSTALL}; or start the agent without "
                              "--trigger-chip/--trigger-line") from exc
        self._active, self._inactive = Value.ACTIVE, Value.INACTIVE
        try:
            self._request = gpiod.request_lines(chip, consumer=consumer, config={
                line: gpiod.LineSettings(direction=Direction.OUTPUT, output_value=Value.INACTIVE,
                                         active_low=active_low)})
        except (OSError, ValueError) as exc:
            raise ConfigError(f"trigger output: cannot request {chip} line {line} ({exc}); check the chip path "
                              "(`gpiodetect`), the line offset (`gpioinfo`), that no other program holds the line, "
                              "and that this user may open the chip (group gpio)") from exc

    def set(self, high: bool) -> None:
        self._request.set_value(self.line, self._active if high else self._inactive)

    def close(self) -> None:
        self._request.release()


def trigger_capabilities(trigger: GpiodTrigger | None) -> tuple[str, ...]:
    """HELLO capabilities for the trigger output: `trigger_gpio` only with a line requested."""
    return (CAPABILITY,) if trigger is not None else ()
