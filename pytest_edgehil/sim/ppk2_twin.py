"""A Nordic PPK2 twin on a pty: its binary protocol (`instruments/ppk2_protocol.py`), streaming the device
twin's timeline at 100 kS/s with the trigger line on logic input D0.

The device twin runs on a virtual clock, so the stream follows it: after AVERAGE_START the twin emits every
sample whose interval the timeline has covered, and on AVERAGE_STOP it finishes with `tail_s` of idle
(the time a real host takes between the RUN's reply and its STOP command) and falls silent; it starts
`lead_s` before the device's present, so the host sees samples as soon as it has started the stream. Samples are
the analyzer twin's synthesis (bench physics, integrating or point sampling), with relative noise and the
PPK2's own offset and gain errors (`sim.instrument_errors`, drawn within `instrument_specs.PPK2`; its output
sits off the programmed voltage as much as that table allows), each coded on the range the PPK2's
auto-ranging would pick.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from pytest_edgehil.instruments import ppk2_protocol as proto
from pytest_edgehil.sim.bench_physics import BenchPhysics
from pytest_edgehil.sim.instrument_errors import InstrumentErrors
from pytest_edgehil.sim.instrument_specs import TWIN_SPECS
from pytest_edgehil.sim.monitor_pty import SerialTwin, monitor_samples
from pytest_edgehil.sim.timeline import ActivityTimeline

CHUNK = 2_000  # samples synthesized at a time (20 ms of stream: the host never sees a long pause)


class PPK2Twin(SerialTwin):
    """The PPK2 twin; `commands` logs every opcode received (with its arguments), `voltage_mv` the source."""

    def __init__(self, timeline: ActivityTimeline, *, physics: BenchPhysics | None = None, seed: int = 0,
                 noise_rel: float = 0.002, tail_s: float = 2e-3, lead_s: float = 1e-3,
                 logic_bit: int = 0) -> None:
        super().__init__("ppk2-twin")
        self.timeline = timeline
        self.physics = physics or BenchPhysics.ideal()
        self.seed = seed
        self.noise_rel = noise_rel
        self.tail_s = tail_s
        self.lead_s = lead_s
        self.logic_bit = logic_bit
        self.instrument_errors = InstrumentErrors.draw(TWIN_SPECS["ppk2"], seed,
                                                       scale=self.physics.instrument_accuracy_rel,
                                                       drift_rel=self.physics.instrument_drift_rel)
        self.commands: list[tuple[int, ...]] = []
        self.voltage_mv = 0
        self.dut_power = False
        self.source_mode = False
        self.captures = 0
        self.last_stream: tuple[float, int] | None = None  # (first sample instant on the timeline, samples)
        self._pending = b""
        self._stop = threading.Event()
        self._streamer: threading.Thread | None = None

    def on_bytes(self, data: bytes) -> None:
        buf = self._pending + data
        while buf:
            need = 1 + proto.ARGUMENT_BYTES.get(buf[0], 0)
            if len(buf) < need:
                break
            command, buf = tuple(buf[:need]), buf[need:]
            self.commands.append(command)
            self._handle(command)
        self._pending = buf

    def _handle(self, command: tuple[int, ...]) -> None:
        op = command[0]
        if op == proto.GET_META_DATA:
            self.write(proto.metadata_text().encode())
        elif op == proto.REGULATOR_SET:
            self.voltage_mv = proto.regulator_mv(command[1], command[2])
        elif op == proto.SET_POWER_MODE:
            self.source_mode = command[1] == proto.POWER_MODE_SOURCE
        elif op == proto.DEVICE_RUNNING_SET:
            self.dut_power = bool(command[1])
        elif op == proto.AVERAGE_START:
            self._start_stream()
        elif op == proto.AVERAGE_STOP:
            self._stop_stream()
        # Any other opcode (LCD, spike filter, user gains) changes nothing the twin models.

    def _start_stream(self) -> None:
        self._stop_stream()
        self.captures += 1
        self._stop.clear()
        # The stream starts with `lead_s` of what the device was already doing: a real PPK2 streams at once,
        # and a host waits for the first samples before it lets the device run.
        self._streamer = threading.Thread(target=self._stream, args=(self.timeline.end_s - self.lead_s, self.captures),
                                          name="ppk2-twin-stream", daemon=True)
        self._streamer.start()

    def _stop_stream(self) -> None:
        if self._streamer is not None:
            self._stop.set()
            self._streamer.join(timeout=30.0)
            self._streamer = None

    def _stream(self, t0_s: float, capture: int) -> None:
        dt = proto.SAMPLE_INTERVAL_S
        volts = self.voltage_mv / 1000.0
        sent, chunk = 0, 0
        final: int | None = None
        while not self.closed.is_set():
            stopping = self._stop.is_set()
            if stopping and final is None:
                final = math.floor((self.timeline.end_s + self.tail_s - t0_s) / dt - 0.5) + 1
            covered = final if final is not None else math.floor((self.timeline.end_s - t0_s) / dt - 0.5) + 1
            count = min(covered - sent, CHUNK)
            if count <= 0:
                if final is not None:
                    break
                self._stop.wait(0.005)
                continue
            rng = np.random.default_rng([self.seed, capture, chunk])
            power_w, line = monitor_samples(self.timeline, self.physics, t0_s + sent * dt, dt, count, rng,
                                            self.noise_rel)
            output_v = self.instrument_errors.output_voltage_v(volts)
            if output_v > 0 and self.dut_power:
                instants_s = t0_s + (sent + np.arange(count)) * dt
                current_a = self.instrument_errors.read_current_a(power_w / output_v, instants_s, None)
            else:
                current_a = np.zeros(count)
            logic = line.astype(np.uint32) << self.logic_bit
            if not self.write(proto.encode_samples(current_a, logic, counter_start=sent)):
                return
            sent += count
            chunk += 1
        self.last_stream = (t0_s, sent)

    def close(self) -> None:
        self._stop.set()
        super().close()
        if self._streamer is not None:
            self._streamer.join(timeout=1.0)
