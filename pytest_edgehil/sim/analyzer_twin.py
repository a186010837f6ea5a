"""The analyzer twin: a power analyzer that digitizes the device twin's `ActivityTimeline`.

It is a real SCPI server on loopback TCP that speaks the dialect of one of our drivers, built from
that driver's declarations (`twin_dialect`). What each command does (settings as state, common
commands, the error queue and status registers) is `analyzer_commands`; the armed capture, its
trigger (BUS, EXT, level) and its samples are `analyzer_acquisition`; what a capture holds (mean
power per sample, noise, quantization) is `trace_synthesis`. This module wires them to the server,
applies faults to replies and does the blocking waits (FETCh, `*WAI`, `*OPC?`: until an initiated
acquisition is idle again) outside the lock. Faults (a reply late, short or garbled, a queued error, a
lost trigger, a clipped capture) are armed with `inject` or the `faults` argument: `analyzer_faults`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.instruments.dialect import LineCycles
from pytest_edgehil.instruments.scpi import Value
from pytest_edgehil.sim.analyzer_acquisition import Digitizer
from pytest_edgehil.sim.analyzer_commands import SCALAR_WINDOW_S, CommandSet
from pytest_edgehil.sim.analyzer_faults import (
    ANY_COMMAND,
    BLOCK_FAULTS,
    FETCH,
    REPLY_FAULTS,
    STATUS,
    AnalyzerFault,
    FaultPlan,
    reshape_reply,
)
from pytest_edgehil.sim.bench_physics import BenchPhysics
from pytest_edgehil.sim.fastlog_stream import FastLogStream
from pytest_edgehil.sim.instrument_errors import InstrumentErrors
from pytest_edgehil.sim.instrument_specs import TWIN_SPECS
from pytest_edgehil.sim.scpi_server import Reply, ScpiCommand, ScpiServer, parse_line
from pytest_edgehil.sim.scpi_status import StatusRegisters, StatusTree
from pytest_edgehil.sim.timeline import ActivityTimeline
from pytest_edgehil.sim.trace_synthesis import CaptureWindow, mean_power_per_sample
from pytest_edgehil.sim.twin_dialect import DIALECTS, ERROR_QUEUE, CapturePlan, TwinDialect

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

__all__ = ["DIALECTS", "SCALAR_WINDOW_S", "AnalyzerFault", "AnalyzerTwin", "CapturePlan", "CaptureWindow",
           "TwinDialect", "mean_power_per_sample"]

# How long a status query waits for a measuring capture's samples to be computed (see `_handle`).
STATUS_SETTLE_S = 1.0
GRACE_S = 0.05  # real seconds to wait for the device to record activity up to the window's end


class AnalyzerTwin:
    """A simulated power analyzer on loopback TCP, digitizing `timeline` in the chosen dialect."""

    def __init__(self, timeline: ActivityTimeline, *, dialect: str = "keysight-n6705c", seed: int = 0,
                 noise_rel: float = 0.002, adc_bits: int = 18, grace_s: float = GRACE_S,
                 faults: Iterable[AnalyzerFault] = (), physics: BenchPhysics | None = None,
                 arm_latency_s: float = 0.0) -> None:
        if dialect not in DIALECTS:
            raise ConfigError(f"analyzer twin dialect {dialect!r} is unknown; "
                              f"use one of {', '.join(DIALECTS)}")
        self.timeline = timeline
        self.dialect_name = dialect
        self.dialect = DIALECTS[dialect]
        self.seed = seed
        self.noise_rel = noise_rel
        self.adc_bits = adc_bits
        self.grace_s = grace_s
        self.faults = FaultPlan(tuple(faults))
        # Bench effects on the analyzer's side (trigger latency, front end, decoupling, sampling model).
        self.physics = physics or BenchPhysics.ideal()
        if isinstance(self.dialect.driver.interval_rule, LineCycles) and self.physics.sampling != "integrating":
            # An instrument whose readings are integrated over NPLC power-line cycles (the 2281S, Reference
            # Manual p. 7-120) cannot point-sample, whatever the bench's digitizers do: its aperture is its
            # interval. A point-sampled 2281S would be a bench no lab has (it gave the run window 1.1 %).
            self.physics = replace(self.physics, sampling="integrating")
        # The instrument's own errors, drawn for this session within its data sheet (`sim.instrument_specs`).
        spec = TWIN_SPECS.get(self.dialect.driver.__name__)
        self.instrument_errors = InstrumentErrors.draw(spec, seed, scale=self.physics.instrument_accuracy_rel,
                                                       drift_rel=self.physics.instrument_drift_rel)
        self.commands: list[str] = []
        self.resource = ""
        chunk_s = self.dialect.driver.chunk_period_s
        # A streaming instrument (the NGM202) flags its chunks through the OPERation register hierarchy.
        self.status = StatusRegisters(tree=None if chunk_s is None else StatusTree(self.dialect.driver.max_channel))
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._digitizer = Digitizer(timeline, status=self.status, lock=self._lock, closed=self._closed,
                                    physics=self.physics, seed=seed, noise_rel=noise_rel, adc_bits=adc_bits,
                                    grace_s=grace_s, external_polarity=lambda: self._commands.external_polarity(),
                                    arm_latency_s=arm_latency_s, errors=self.instrument_errors,
                                    conversion_s=spec.conversion_s if spec is not None else None)
        self._stream = None if chunk_s is None else FastLogStream(
            timeline, lock=self._lock, closed=self._closed, physics=self.physics, seed=seed, noise_rel=noise_rel,
            adc_bits=adc_bits, grace_s=grace_s, chunk_s=chunk_s, status=self.status, errors=self.instrument_errors)
        self._commands = CommandSet(self.dialect, timeline=timeline, status=self.status,
                                    digitizer=self._digitizer, faults=self.faults, stream=self._stream)
        self._server = ScpiServer(self._handle, name=f"analyzer-twin-{dialect}", on_line=self._on_line)

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> str:
        port = self._server.start()
        self.resource = f"TCPIP::127.0.0.1::{port}::SOCKET"
        return self.resource

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._digitizer.cancel()
            if self._stream is not None:
                self._stream.stop()
        self._server.close()

    def __enter__(self) -> Self:
        if not self.resource:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what a test may read ------------------------------------------------------------------------

    @property
    def last_capture(self) -> CaptureWindow | None:
        """Where the last completed capture sat on the timeline; None before the first. For a FastLog
        stream: the stretch its chunks have covered so far (from FLOG 1 on)."""
        if self._stream is not None:
            return self._stream.last_window
        return self._digitizer.last_capture

    @property
    def lost_chunks(self) -> int:
        """FastLog chunks overwritten unread (or dropped by the lost-chunk fault); 0 for other dialects."""
        return 0 if self._stream is None else self._stream.lost

    def true_energy_j(self, t0_s: float, t1_s: float) -> float:
        """The energy the device really drew in [t0, t1] (the function the samples average)."""
        return self.timeline.energy_between(t0_s, t1_s)

    def last_readings(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(current_a, voltage_v) float32 of the last completed capture, exactly as served; None if none.
        For a FastLog stream: every chunk served since the last `FLOG 1`, in order."""
        with self._lock:
            if self._stream is not None:
                pairs = self._stream.served_pairs()
                return None if pairs is None else (pairs[1::2].copy(), pairs[0::2].copy())
            data = self._digitizer.data
            return None if data is None else (data.current_a.copy(), data.voltage_v.copy())

    @property
    def settings(self) -> dict[str, Value]:
        with self._lock:
            return dict(self._commands.state)

    def inject(self, kind: str, count: int = 1, **options: object) -> AnalyzerFault:
        """Arm a fault for the next `count` commands it applies to (see `analyzer_faults`); returns it.

        Options: `on` (a header), `delay_s`, `text`, `error`, `overload`."""
        return self.faults.inject(AnalyzerFault(kind, count, **options))  # type: ignore[arg-type]

    def accepted_headers(self) -> set[str]:
        """Every header this twin answers, in short form (upper case, no '?'): the common commands,
        the error queue and the dialect's declarations."""
        return set(self._commands.common) | {ERROR_QUEUE.short()} | self.dialect.accepted_headers()

    # --- serving -------------------------------------------------------------------------------------

    def _on_line(self, line: str) -> None:
        """A line has just arrived: an ABORt in it stops the acquisition at once, so that a FETCh
        still waiting for it (its client timed out) returns, and the ABORt then runs in turn."""
        if any(self._commands.is_abort(command) for command in parse_line(line)):
            with self._lock:
                self._digitizer.abort()

    def _handle(self, command: ScpiCommand) -> Reply:
        key, route = self._commands.key(command)
        # Blocking commands wait outside the lock, so that the capture can complete meanwhile: FETCh
        # until the acquisition is done (trigger included), *OPC? and *WAI until a running capture ends.
        if route is not None and route.kind == "fetch" and command.is_query:
            if self._stream is not None:
                self._stream.wait_ready()
            else:
                self._digitizer.wait(include_trigger=True)
        elif key in ("*WAI", "*OPC") and (key == "*WAI" or command.is_query):
            # An initiated acquisition is a pending operation until its trigger system is idle again, trigger
            # included (Keysight's *OPC: "all triggered actions are completed and the trigger system returns
            # to the Idle state"; Keithley's: INITiate is not finished until the instrument is idle): *OPC?
            # after INIT with a BUS source holds off the *TRG behind it, as on the instruments.
            self._digitizer.wait(include_trigger=True)
        elif route is not None and route.kind == "status" and command.is_query:
            # Asking for the status ends a measuring capture's virtual time (the host commands the device
            # no more for it): the answer waits for the samples to be computed, as a real capture would
            # have completed by the time its window had passed, instead of "measuring" for the host to
            # poll again. A capture that takes longer still answers "measuring".
            self._digitizer.wait(include_trigger=False, timeout_s=STATUS_SETTLE_S)
        with self._lock:
            self.commands.append(command.text)
            reply = self._commands.dispatch(command, key, route)
            targets = {key}
            if route is not None and route.kind == "fetch":
                targets.add(FETCH)
            if route is not None and route.kind == "status":
                targets.add(STATUS)
            if not command.is_query and not key.startswith("*"):
                targets.add(ANY_COMMAND)
            queued = self.faults.take(("scpi-error",), targets)
            if queued is not None:
                self.status.queue(queued.error)
            if reply is None:
                return None
            # Block faults apply to block replies only (the Keithley's buffer comes back as text).
            kinds = REPLY_FAULTS if reply[:1] == b"#" else tuple(k for k in REPLY_FAULTS if k not in BLOCK_FAULTS)
            fault = self.faults.take(kinds, targets)
            return reply if fault is None else reshape_reply(fault, reply)
