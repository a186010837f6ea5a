"""What every SCPI power-analyzer driver shares: an explicit state machine over the capture roles it
declares, status polling while armed, array fetches checked before a Trace is built, and a checked close.
What a status reading means, and what to check when a wait ends in it, is `acquisition_state`.
Settings are applied one by one with the error queue drained after each (`scpi_instrument.ScpiInstrument`,
the base class); the fetched arrays are checked by `fetched_trace.checked_trace`.

A driver subclass is declarations only (pymeasure style): its settings table, its interval rule, which
settings carry a capture (`CaptureRoles`), its measurement ranges, the commands that start and stop an
acquisition, the queries that read its arrays, and its status bits. `configure`, `arm`, `abort` and
`fetch_trace` here apply them; the analyzer twin (its dialect module, in the simulation package) reads the same
declarations to speak the dialect. Calling a method in the wrong state raises an error naming the
method and the state, so a test that forgot to arm fails with a sentence, not with a stale trace.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from pytest_edgehil.errors import ConfigError, InstrumentError, InstrumentTimeout, TriggerTimeout
from pytest_edgehil.instruments.accuracy import CaptureAccuracy
from pytest_edgehil.instruments.acquisition_state import (
    ARMING,
    COMPLETE,
    STUCK_HINTS,
    WAITING,
    acquisition_state,
)
from pytest_edgehil.instruments.base import TRIGGER_SOURCES, PowerAnalyzer, Trace
from pytest_edgehil.instruments.dialect import (
    BYTE_ORDER_SETTING,
    FORMAT_SETTING,
    CaptureRoles,
    FetchQuery,
    IntervalRule,
)
from pytest_edgehil.instruments.fetched_trace import CaptureConfig, checked_trace
from pytest_edgehil.instruments.replies import parse_status
from pytest_edgehil.instruments.scpi import Value
from pytest_edgehil.instruments.scpi_header import short_command
from pytest_edgehil.instruments.scpi_instrument import ScpiInstrument
from pytest_edgehil.instruments.visa_link import VisaLink

# CaptureConfig lives with the trace checks (fetched_trace); importable from here, where it was first.
__all__ = ["CaptureConfig", "ScpiAnalyzer"]

ARM_POLL_S = 0.001  # how often `arm` asks whether the acquisition is ready for its trigger
# A read-back interval this far (relative) from the programmed one is another interval, not the reply's
# text precision (a reply with 6 significant digits is within 5e-6); neighbouring grid values differ by
# more up to 1 s intervals (the N6705C's 20.48 us steps: 2e-5 there).
INTERVAL_READBACK_TOLERANCE = 1e-5


class ScpiAnalyzer(ScpiInstrument, PowerAnalyzer):
    """Common plumbing of the SCPI drivers; subclasses are declarations (`settings`, `measure_queries`,
    `trigger_pin`, `error_query` and `max_channel` are declared as `ScpiInstrument` describes)."""

    #: How a sample interval is programmed (grid, rate table, line cycles).
    interval_rule: ClassVar[IntervalRule]
    #: Which settings carry a capture, and in which way.
    roles: ClassVar[CaptureRoles]
    #: The instrument's current measurement ranges (ascending); empty: any value within the setting.
    current_ranges_a: ClassVar[tuple[float, ...]] = ()
    #: An `*IDN?` reply of the modelled instrument (what the analyzer twin answers).
    reference_idn: ClassVar[str]
    # Commands below are written as the manual writes them (canonical mixed case, `[optional]`
    # nodes); the driver sends their short form (`scpi_header.short_command`).
    #: Sent in order after the trigger source to start an acquisition (may contain {channel}).
    start_commands: ClassVar[tuple[str, ...]]
    #: Stops an armed acquisition (may contain {channel}).
    stop_command: ClassVar[str]
    #: Headers of commands above not found in the maker's manual (marked so in docs/instruments.md).
    unconfirmed_commands: ClassVar[tuple[str, ...]] = ()
    #: The array reads of a completed capture, in order.
    fetch_queries: ClassVar[tuple[FetchQuery, ...]]
    #: What to check when fetched data look mis-decoded.
    fetch_hint: ClassVar[str] = "check the transfer format and byte order"
    status_query: ClassVar[str]  # may contain {channel}
    #: The latched (EVENt) form of the status register, where the driver declares one (read clears it).
    status_event_query: ClassVar[str | None] = None
    #: Seconds between the chunks of a streamed record (NGM202 FastLog: 0.25); None: triggered captures.
    chunk_period_s: ClassVar[float | None] = None
    waiting_bit: ClassVar[int]  # status bit set while armed and waiting for the trigger
    measuring_bit: ClassVar[int]  # status bit set from the trigger until the capture is complete
    #: Status bit set while no acquisition is initiated, where the register has one (0: none). With it,
    #: "complete" means idle, and a register with none of the three bits is an acquisition still arming.
    idle_bit: ClassVar[int] = 0
    poll_interval_s: ClassVar[float] = 0.005
    #: How long `arm` waits for the instrument to report it is ready for its trigger (N6705C: "a few ms").
    arm_timeout_s: float = 2.0

    #: "REAL" (float32 binary blocks, the fast path) or "ASC" (text), where a FORMAT_SETTING exists.
    transfer_format: str = "REAL"
    #: The byte order programmed and decoded with, where a BYTE_ORDER_SETTING exists (NORM = big-endian).
    byte_order: str = "NORM"
    #: None: decode blocks in the byte order the dialect declares. True/False overrides it (a test
    #: makes the classic is_big_endian slip on purpose with it).
    fetch_big_endian: bool | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Limits the interface advertises follow from the declarations, so they cannot disagree.
        if "interval_rule" in cls.__dict__:
            cls.min_sample_interval_s = cls.interval_rule.minimum_s
        if "settings" in cls.__dict__ and "roles" in cls.__dict__:
            # A streaming instrument (the NGM202's FastLog) has no points setting; it declares max_points.
            if cls.roles.points in cls.settings:
                maximum = cls.settings[cls.roles.points].maximum
                if maximum is not None:
                    cls.max_points = int(maximum)
            if "keeps_pretrigger" not in cls.__dict__:
                cls.keeps_pretrigger = cls.roles.pretrigger is not None

    def __init__(self, link: VisaLink, *, idn: str, channel: int = 1) -> None:
        self.capture: CaptureConfig | None = None
        self._state = "open"
        super().__init__(link, idn=idn, channel=channel)

    # --- plumbing -----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    def _require(self, method: str, *states: str) -> None:
        if self._state not in states:
            raise InstrumentError(f"{self.model} at {self.resource}: {method}() called while the driver "
                                  f"is {self._state!r}; it needs {' or '.join(map(repr, states))} "
                                  f"(order: configure, arm, wait_complete, fetch_trace)")

    def _configured(self, capture: CaptureConfig) -> None:
        self.capture = capture
        self._state = "configured"

    @classmethod
    def select_current_range(cls, requested_a: float) -> float:
        """The smallest declared range that holds `requested_a`; ConfigError with the ranges if none.

        Without declared ranges the request itself is the full scale."""
        if not cls.current_ranges_a:
            return float(requested_a)
        for range_a in cls.current_ranges_a:
            if requested_a <= range_a * (1 + 1e-9):
                return range_a
        raise ConfigError(f"{cls.model}: no current range holds {requested_a:g} A; its ranges are "
                          f"{', '.join(f'{r:g}' for r in cls.current_ranges_a)} A (values are never clamped)")

    def supported_sample_interval_s(self, requested_s: float) -> float:
        return self.interval_rule.supported_s(requested_s)

    def capture_accuracy(self) -> CaptureAccuracy:
        """As `PowerAnalyzer.capture_accuracy`, on the range the instrument read back at `configure` and with
        the voltage figure of what it digitized (InstrumentError before a capture is configured)."""
        spec = self.declared_accuracy()
        if self.capture is None:
            raise InstrumentError(f"{self.model} at {self.resource}: capture_accuracy() before configure()")
        range_a = None if spec.autoranging else self.capture.current_range_a
        return CaptureAccuracy(spec, self.model, range_a, self.capture.digitize_voltage and self.voltage_measured)

    def set_transfer_format(self, data_format: str) -> None:
        """Switch between binary ("REAL") and text ("ASC") array transfers."""
        if FORMAT_SETTING not in self.settings:
            raise ConfigError(f"{self.model} at {self.resource} has one transfer format; "
                              f"set_transfer_format() does not apply to it")
        self.transfer_format = str(self.apply(FORMAT_SETTING, data_format))

    def capture_settings(self, *, voltage_v: float, current_range_a: float, interval_value: Value,
                         points: int, pretrigger_points: int, digitize_voltage: bool) -> list[tuple[str, Value]]:
        """The (setting, value) pairs `configure` sends, in order (see `CaptureRoles`)."""
        roles = self.roles
        sequence: list[tuple[str, Value]] = []
        if roles.channel_select:
            sequence.append((roles.channel_select, self.channel))
        sequence += list(roles.fixed)
        sequence += [(roles.voltage, voltage_v), (roles.current_range, current_range_a), (roles.output, "ON")]
        if roles.digitize_current:
            sequence.append((roles.digitize_current, "ON"))
        if roles.digitize_voltage:
            sequence.append((roles.digitize_voltage, "ON" if digitize_voltage else "OFF"))
        sequence.append((roles.interval, interval_value))
        if roles.points in self.settings:  # a stream (FastLog) has no points setting: the driver counts
            sequence.append((roles.points, points))
        if roles.pretrigger:
            sequence.append((roles.pretrigger, roles.pretrigger_sign * pretrigger_points))
        if FORMAT_SETTING in self.settings:
            sequence.append((FORMAT_SETTING, self.transfer_format))
        if BYTE_ORDER_SETTING in self.settings:
            sequence.append((BYTE_ORDER_SETTING, self.byte_order))
        return sequence

    # --- the PowerAnalyzer interface ------------------------------------------------------------------

    def power_up(self, *, voltage_v: float, current_range_a: float) -> None:
        """Supply setpoint and current range, the trigger input (pin `trigger_pin`, its polarity), then
        output on: what must hold before the board is contacted (its HELLO needs power; an N6705C's EXT
        source fires only from a pin configured as trigger input). ConfigError / ScpiError as `configure`.
        """
        self._require("power_up", "open", "configured", "complete")
        roles = self.roles
        sequence: list[tuple[str, Value]] = [(roles.channel_select, self.channel)] if roles.channel_select else []
        sequence += [*roles.fixed, (roles.voltage, voltage_v), (roles.current_range, current_range_a),
                     *roles.trigger_input, (roles.output, "ON")]
        for name, value in sequence:
            self.apply(name, value)

    def configure(self, *, voltage_v: float, current_range_a: float, sample_interval_s: float,
                  points: int, pretrigger_points: int = 0) -> None:
        """Program the capture from the declarations; raise (never clamp) with the bounds in the message.

        ConfigError for a value outside a setting's bounds or an interval the instrument has no setting
        for, MeasurementError for an interval shorter than it can resolve, ScpiError with the
        instrument's own text if it refuses a setting.
        """
        self._require("configure", "configured", "open", "complete", "armed")
        where = f"{self.model} at {self.resource}"
        roles = self.roles
        interval_value = self.interval_rule.setting_value(sample_interval_s, where=where)
        if roles.pretrigger is None and pretrigger_points:
            raise ConfigError(f"{where}: its buffer starts at the trigger and keeps no pre-trigger "
                              f"samples; use pretrigger_points=0 (asked for {pretrigger_points})")
        if pretrigger_points < 0 or (pretrigger_points and pretrigger_points >= points):
            raise ConfigError(f"{where}: pretrigger_points = {pretrigger_points} must be 0 to points - 1 "
                              f"({points - 1})")
        # Voltage is digitized too only where the module can do both at this rate.
        digitize_voltage = (roles.digitize_voltage is None
                            or sample_interval_s >= roles.min_interval_both_s - 1e-12)
        for name, value in self.capture_settings(
                voltage_v=voltage_v, current_range_a=current_range_a, interval_value=interval_value,
                points=points, pretrigger_points=pretrigger_points, digitize_voltage=digitize_voltage):
            self.apply(name, value)
        # Read back what the instrument chose: the range holding the request, the interval it runs at.
        running_s = self.interval_rule.interval_s(self.read_setting(roles.interval))
        if abs(running_s - sample_interval_s) > INTERVAL_READBACK_TOLERANCE * sample_interval_s:
            # The points were sized for the planned interval: a capture at another one covers another span
            # (shorter: its windows fall off the trace's end), so it is not run at all.
            self.capture, self._state = None, "open"
            header = self.settings[roles.interval].short()
            raise InstrumentError(
                f"{where} ch{self.channel}: {header}? reads {running_s * 1e6:.6g} us back after "
                f"{sample_interval_s * 1e6:.6g} us was programmed; the instrument runs an interval grid other "
                f"than the driver's ({type(self).__name__}.interval_rule), so a {points}-point capture would not "
                "span what was planned. Check the instrument's interval settings (Keysight N6705C: "
                "SENS:SWE:TINT:RES RES20) and the module's interval table, then configure again")
        self._configured(CaptureConfig(
            voltage_v=float(voltage_v),
            current_range_a=float(self.read_setting(roles.current_range)),
            sample_interval_s=running_s,
            points=points, pretrigger_points=pretrigger_points, digitize_voltage=digitize_voltage))

    def arm(self, source: str = "EXT") -> None:
        self._require("arm", "configured", "armed", "complete")
        source = source.upper()
        if source not in TRIGGER_SOURCES:
            raise ConfigError(f"{self.model} at {self.resource}: trigger source {source!r} is not "
                              f"supported; use one of {', '.join(TRIGGER_SOURCES)}")
        self._start_acquisition(source)
        self._state = "armed"
        self._wait_ready(source)

    def _wait_ready(self, source: str) -> None:
        """Return once the instrument reports the acquisition waiting for (or past) its trigger, and its
        pre-trigger points have had their time. A trigger before either is ignored, so a device started earlier
        has its first inference uncaptured: the capture fires on a later one and the device-timed windows land a
        period late (4x energies, no error). InstrumentTimeout after `arm_timeout_s`, the acquisition stopped."""
        deadline = time.monotonic() + self.arm_timeout_s
        while (status := self.acquisition_status()) in (COMPLETE, ARMING):  # not yet waiting nor measuring
            if time.monotonic() >= deadline:
                self.abort()
                query = short_command(self.status_query).format(channel=self.channel)
                raise InstrumentTimeout(
                    f"{self.model} at {self.resource} ch{self.channel}: acquisition (source {source}) not ready for "
                    f"its trigger {self.arm_timeout_s:g} s after it was started: {query} never showed the "
                    f"waiting-for-trigger bit ({self.waiting_bit}); a trigger now would be ignored, so the "
                    f"device is not started. Check SYST:ERR? and the trigger settings, or raise arm_timeout_s")
            # Finer than a capture's poll: arming takes a few ms, and every capture waits for it.
            time.sleep(min(self.poll_interval_s, ARM_POLL_S))
        # N6705C User's Guide p. 213: "a trigger [...] before the pre-trigger data count is completed" is ignored.
        if status == WAITING and self.capture is not None and self.capture.pretrigger_points:
            time.sleep(self.capture.pretrigger_points * self.capture.sample_interval_s)

    def abort(self) -> None:
        """Stop an armed acquisition; the capture stays configured."""
        self._require("abort", "armed", "complete")
        self.send(short_command(self.stop_command).format(channel=self.channel))
        self._state = "configured"

    def trigger_now(self) -> None:
        """Software trigger (*TRG) for an acquisition armed with source BUS."""
        self._require("trigger_now", "armed")
        self.send("*TRG")

    def acquisition_status(self) -> str:
        """'waiting for trigger', 'measuring', 'complete' or (where the register has an idle bit) 'arming',
        from the instrument's status register (`acquisition_state.acquisition_state`)."""
        command = short_command(self.status_query).format(channel=self.channel)
        bits = self.link.query_checked(command, lambda text: parse_status(text, resource=self.resource,
                                                                          command=command))
        return acquisition_state(bits, waiting_bit=self.waiting_bit, measuring_bit=self.measuring_bit,
                                 idle_bit=self.idle_bit)

    def wait_complete(self, timeout_s: float) -> None:
        self._require("wait_complete", "armed", "complete")
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.acquisition_status()
            if status == COMPLETE:
                self._state = "complete"
                return
            if time.monotonic() >= deadline:
                message = (f"{self.model} at {self.resource} ch{self.channel}: acquisition still {status} after "
                           f"{timeout_s:g} s; {STUCK_HINTS[status]}")
                if status == WAITING:  # armed and ready, and no edge came: the trigger's own fault
                    raise TriggerTimeout(message, resource=f"{self.resource} ch{self.channel}", timeout_s=timeout_s)
                raise InstrumentTimeout(message)
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

    # --- applying the declarations ---------------------------------------------------------------------

    def _start_acquisition(self, source: str) -> None:
        if source == "EXT":
            for name, value in self.roles.trigger_input:
                self.apply(name, value)
        self.apply(self.roles.trigger_source, source)
        for command in self.start_commands:
            self.send(short_command(command).format(channel=self.channel))

    def _big_endian(self, fetch: FetchQuery) -> bool:
        if self.fetch_big_endian is not None:
            return self.fetch_big_endian
        return self.byte_order == "NORM" if fetch.big_endian is None else fetch.big_endian

    def _read_array(self, fetch: FetchQuery, command: str, count: int, *,
                    with_error: bool = False) -> tuple[np.ndarray, tuple[int, str] | None]:
        """The fetched values and, when `with_error` and the block is binary, the first error-queue entry
        asked in the same program message (a round trip fewer; None otherwise)."""
        # A FETCh the instrument still holds for a trigger (its status said complete too early) blocks the
        # session until the acquisition is stopped: the link's recovery sends the stop command first.
        release = short_command(self.stop_command).format(channel=self.channel)
        binary = self.transfer_format == "REAL" if fetch.binary is None else fetch.binary
        if binary and with_error:
            return self.link.query_float32_block_and_error(
                command, self.error_query, big_endian=self._big_endian(fetch), expected_count=count,
                release=release)
        if binary:
            return self.link.query_float32_block(command, big_endian=self._big_endian(fetch),
                                                 expected_count=count, release=release), None
        return self.link.query_ascii_floats(command, expected_count=count, release=release), None

    def _fetch(self, capture: CaptureConfig) -> Trace:
        columns: dict[str, np.ndarray] = {}
        sources: dict[str, str] = {}  # column -> the command that read it (named in errors)
        fetches = [fetch for fetch in self.fetch_queries
                   if fetch.columns != ("voltage",) or capture.digitize_voltage]  # else the programmed voltage
        entry: tuple[int, str] | None = None
        for number, fetch in enumerate(fetches, start=1):
            command = short_command(fetch.query).format(channel=self.channel)
            width = len(fetch.columns)
            # The count is checked as the reply is read (a block's header before its payload).
            try:
                values, entry = self._read_array(fetch, command, width * capture.points,
                                                 with_error=number == len(fetches))
            except InstrumentTimeout:
                self._state = "configured"  # the recovery stopped the acquisition: arm again for a capture
                raise
            for k, name in enumerate(fetch.columns):
                # One column is the fresh array itself; interleaved ones are copied out contiguous.
                columns[name] = values if width == 1 else values[k::width].copy()
                sources[name] = command
        # One error query for the whole fetch, asked with its last block where that is binary: the queue
        # keeps every error of every block, so nothing is missed, and a 1 M-sample fetch saves a round
        # trip per block.
        self.drain_errors(after="; ".join(dict.fromkeys(sources.values())) or "the fetch", first=entry)
        return self._checked_trace(capture, columns, sources, trigger_index=capture.pretrigger_points)

    def _checked_trace(self, capture: CaptureConfig, columns: dict[str, np.ndarray], sources: dict[str, str], *,
                       trigger_index: int, trigger_located: bool = True) -> Trace:
        """The Trace of fetched `columns` after the checks of `fetched_trace.checked_trace`, in this
        driver's words (InstrumentReplyError, InstrumentError)."""
        return checked_trace(capture, columns, sources, where=f"{self.model} at {self.resource} ch{self.channel}",
                             hint=self.fetch_hint.format(big_endian=self._big_endian(self.fetch_queries[0])),
                             full_scale_v=self.settings[self.roles.voltage].maximum or capture.voltage_v,
                             interval_setting=self.roles.interval, idn=self.idn, trigger_index=trigger_index,
                             trigger_located=trigger_located)
