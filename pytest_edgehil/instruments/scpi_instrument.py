"""A SCPI instrument driven from its declarative settings table (pymeasure style).

Each setting is validated against its declaration (raise with the bounds, never clamp), sent in its short
form, and the instrument's error queue is drained after it, so a refused setting raises the instrument's
own text naming the command. A setting read back is checked against its own bounds or choices. Raw
sends and scalar MEASure queries go through the same checks. `ScpiInstrument` knows nothing of captures:
`instruments.driver.ScpiAnalyzer` builds the power-analyzer state machine on it.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.instruments.replies import reply_error
from pytest_edgehil.instruments.scpi import Setting, SettingTable, Value
from pytest_edgehil.instruments.scpi_header import short_command
from pytest_edgehil.instruments.visa_link import MAX_QUEUE_ENTRIES, VisaLink, drain_errors


class ScpiInstrument:
    """One channel of a SCPI instrument on a `VisaLink`, its stale errors cleared at construction.

    Raises ConfigError for a channel the instrument does not have (1 to `max_channel`).
    """

    #: Human name of the instrument model (the analyzer drivers take it from `PowerAnalyzer`).
    model: ClassVar[str]
    settings: ClassVar[SettingTable]
    #: Scalar measurement queries by quantity ("current", "voltage", "power"; may contain {channel}).
    measure_queries: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: The digital pin wired to the device's trigger line, where `roles.trigger_input` is declared.
    trigger_pin: ClassVar[int] = 1
    error_query: ClassVar[str] = "SYST:ERR?"
    max_channel: ClassVar[int] = 1

    def __init__(self, link: VisaLink, *, idn: str, channel: int = 1) -> None:
        if not 1 <= channel <= self.max_channel:
            raise ConfigError(f"{self.model} at {link.name}: channel {channel} does not exist; "
                              f"use 1 to {self.max_channel}")
        self.link = link
        self.idn = idn
        self.resource = link.name
        self.channel = channel
        self._drain_stale_errors()

    def _drain_stale_errors(self) -> None:
        # Errors left by an earlier session are not ours to raise; clear them so that the first
        # ScpiError we raise blames the right command.
        self.link.write("*CLS")
        for _ in range(MAX_QUEUE_ENTRIES):
            if self.link.query_error(self.error_query)[0] == 0:
                break

    def drain_errors(self, after: str, first: tuple[int, str] | None = None) -> None:
        """Read the error queue to its end (`first`: an entry already read with the last query)."""
        drain_errors(self.link, after=after, model=self.model, query=self.error_query, first=first)

    def apply(self, name: str, value: Value) -> Value:
        """Validate (ConfigError, bounds in the message), send, then drain the error queue."""
        setting = self.settings[name]
        checked = setting.check(value, model=f"{self.model} at {self.resource}")
        command = setting.set_command(checked, self.channel, self._suffix(setting))
        self.link.write(command)
        self.drain_errors(after=command)
        return checked

    def read_setting(self, name: str) -> Value:
        """The setting's value as the instrument reports it, checked against the setting's own
        bounds or choices (InstrumentReplyError, and a cleared session, for anything else)."""
        setting = self.settings[name]
        command = setting.query_command(self.channel, self._suffix(setting))

        def parse(reply: str) -> Value:
            try:
                value = setting.parse(reply)
                accepted = setting.accepts(value) if setting.kind is str else _within(setting, float(value))
            except (ValueError, OverflowError):
                accepted = False
            if not accepted:
                raise reply_error(self.resource, command, reply,
                                  f"is not a {setting.kind.__name__} within {setting.bounds_text()}",
                                  f"is this the model the driver expects ({self.idn})?")
            return value

        return self.link.query_checked(command, parse)

    def _suffix(self, setting: Setting) -> int:
        return self.trigger_pin if setting.suffixes > 1 else 1

    def send(self, command: str) -> None:
        """Send a raw command and raise the instrument's own error text if it objected."""
        self.link.write(command)
        self.drain_errors(after=command)

    def query(self, command: str) -> str:
        return self.link.query(command)

    def measure(self, quantity: str) -> float:
        """One scalar reading: "current" (A), "voltage" (V) or "power" (W), from the instrument's
        MEASure query. ConfigError if the instrument has none for `quantity`; InstrumentReplyError
        for a reply that is not a finite number; ScpiError if the instrument objected."""
        queries = dict(self.measure_queries)
        if quantity not in queries:
            raise ConfigError(f"{self.model} at {self.resource} has no scalar {quantity} measurement; "
                              f"it measures {', '.join(queries) or 'nothing as a scalar'}")
        command = short_command(queries[quantity]).format(channel=self.channel)
        value = self.link.query_number(command)
        self.drain_errors(after=command)
        return value


def _within(setting: Setting, value: float) -> bool:
    """A read-back number within the setting's bounds, allowing for the text's last-digit rounding."""
    return (math.isfinite(value)
            and (setting.minimum is None or value >= setting.minimum - 1e-9 * abs(setting.minimum))
            and (setting.maximum is None or value <= setting.maximum + 1e-9 * abs(setting.maximum)))
