"""What every SCPI power-analyzer driver shares: settings applied one by one with the error queue
drained after each, an explicit state machine, status polling while armed, and a checked close.

A driver subclass declares its settings table and status bits, and implements `configure`,
`_start_acquisition` and `_fetch`. Calling a method in the wrong state raises an error naming the
method and the state, so a test that forgot to arm fails with a sentence, not with a stale trace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from pytest_edgehil.errors import ConfigError, InstrumentError, InstrumentTimeout
from pytest_edgehil.instruments.base import TRIGGER_SOURCES, PowerAnalyzer, Trace
from pytest_edgehil.instruments.scpi import SettingTable, Value, VisaLink, drain_errors, parse_error


@dataclass(frozen=True)
class CaptureConfig:
    """A capture as the instrument actually runs it (interval and range as it reports them)."""

    voltage_v: float
    current_range_a: float
    sample_interval_s: float
    points: int
    pretrigger_points: int
    digitize_voltage: bool


class ScpiAnalyzer(PowerAnalyzer):
    """Common plumbing of the SCPI drivers; subclasses are mostly declarations."""

    settings: ClassVar[SettingTable]
    error_query: ClassVar[str] = "SYST:ERR?"
    status_query: ClassVar[str]  # may contain {channel}
    waiting_bit: ClassVar[int]  # status bit set while armed and waiting for the trigger
    measuring_bit: ClassVar[int]  # status bit set from the trigger until the capture is complete
    max_channel: ClassVar[int] = 1
    poll_interval_s: ClassVar[float] = 0.005

    def __init__(self, link: VisaLink, *, idn: str, channel: int = 1) -> None:
        if not 1 <= channel <= self.max_channel:
            raise ConfigError(f"{self.model} at {link.name}: channel {channel} does not exist; "
                              f"use 1 to {self.max_channel}")
        self.link = link
        self.idn = idn
        self.resource = link.name
        self.channel = channel
        self.capture: CaptureConfig | None = None
        self._state = "open"
        self._drain_stale_errors()

    # --- plumbing -----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    def _require(self, method: str, *states: str) -> None:
        if self._state not in states:
            raise InstrumentError(f"{self.model} at {self.resource}: {method}() called while the driver "
                                  f"is {self._state!r}; it needs {' or '.join(map(repr, states))} "
                                  f"(order: configure, arm, wait_complete, fetch_trace)")

    def _drain_stale_errors(self) -> None:
        # Errors left by an earlier session are not ours to raise; clear them so that the first
        # ScpiError we raise blames the right command.
        self.link.write("*CLS")
        for _ in range(64):
            if parse_error(self.link.query(self.error_query))[0] == 0:
                break

    def drain_errors(self, after: str) -> None:
        drain_errors(self.link, after=after, model=self.model, query=self.error_query)

    def apply(self, name: str, value: Value) -> Value:
        """Validate (ConfigError, bounds in the message), send, then drain the error queue."""
        setting = self.settings[name]
        checked = setting.check(value, model=f"{self.model} at {self.resource}")
        command = setting.set_command(checked, self.channel)
        self.link.write(command)
        self.drain_errors(after=command)
        return checked

    def read_setting(self, name: str) -> Value:
        setting = self.settings[name]
        command = setting.query_command(self.channel)
        reply = self.link.query(command)
        try:
            return setting.parse(reply)
        except ValueError:
            raise InstrumentError(f"{self.model} at {self.resource}: {command!r} answered {reply!r}, "
                                  f"not a {setting.kind.__name__}; is this the model the driver "
                                  f"expects ({self.idn})?") from None

    def send(self, command: str) -> None:
        """Send a raw command and raise the instrument's own error text if it objected."""
        self.link.write(command)
        self.drain_errors(after=command)

    def query(self, command: str) -> str:
        return self.link.query(command)

    def _configured(self, capture: CaptureConfig) -> None:
        self.capture = capture
        self._state = "configured"

    # --- the PowerAnalyzer interface ------------------------------------------------------------------

    def arm(self, source: str = "EXT") -> None:
        self._require("arm", "configured", "armed", "complete")
        source = source.upper()
        if source not in TRIGGER_SOURCES:
            raise ConfigError(f"{self.model} at {self.resource}: trigger source {source!r} is not "
                              f"supported; use one of {', '.join(TRIGGER_SOURCES)}")
        self._start_acquisition(source)
        self._state = "armed"

    def trigger_now(self) -> None:
        """Software trigger (*TRG) for an acquisition armed with source BUS."""
        self._require("trigger_now", "armed")
        self.send("*TRG")

    def acquisition_status(self) -> str:
        """'waiting for trigger', 'measuring' or 'complete', from the instrument's status register."""
        command = self.status_query.format(channel=self.channel)
        reply = self.link.query(command)
        try:
            bits = int(float(reply))
        except ValueError:
            raise InstrumentError(f"{self.model} at {self.resource}: {command!r} answered {reply!r}, "
                                  f"not a status register value") from None
        if bits & self.waiting_bit:
            return "waiting for trigger"
        if bits & self.measuring_bit:
            return "measuring"
        return "complete"

    def wait_complete(self, timeout_s: float) -> None:
        self._require("wait_complete", "armed", "complete")
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.acquisition_status()
            if status == "complete":
                self._state = "complete"
                return
            if time.monotonic() >= deadline:
                hint = ("check the trigger cabling from the device's trigger pin to the analyzer's "
                        "trigger input, that the device raises its trigger line (trigger enabled in "
                        "firmware), and the VISA connection (pyvisa-info)"
                        if status == "waiting for trigger" else
                        "the capture is longer than the timeout allows: reduce points or the sample "
                        "interval, or wait longer")
                raise InstrumentTimeout(f"{self.model} at {self.resource} ch{self.channel}: acquisition "
                                        f"still {status} after {timeout_s:g} s; {hint}")
            time.sleep(self.poll_interval_s)

    def fetch_trace(self) -> Trace:
        self._require("fetch_trace", "complete")
        assert self.capture is not None  # set with the "configured" state
        return self._fetch(self.capture)

    def close(self) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        try:
            self.drain_errors(after="the last command of the session (checked at close)")
        finally:
            self.link.close()

    # --- what each driver provides ----------------------------------------------------------------------

    def _start_acquisition(self, source: str) -> None:
        raise NotImplementedError

    def _fetch(self, capture: CaptureConfig) -> Trace:
        raise NotImplementedError
