"""An ST X-NUCLEO-LPM01A twin on a pty: its ASCII protocol (`instruments/lpm01a_protocol.py`), digitizing the
device twin's timeline from the trigger line's rising edge (`trigsrc d7`) for `acqtime`.

It refuses what the board refuses (the firmware's `help`, `instruments/lpm01a_limits.py`): a voltage outside
1.8-3.3 V, a frequency it does not have, an `acqtime` outside 100 µs-100 s (0 and `inf`, infinite, are
taken), an ASCII acquisition its UART cannot carry (past 10 kHz, or at 10 kHz for longer than 1 s), an
unknown command (`error <command>: <reason>`); every reply line behind the board's prompt. An infinite
acquisition is taken but not modelled: `start` refuses it. Samples are the analyzer twin's synthesis
(bench physics, trigger latency) with relative noise and the board's own errors (`sim.instrument_errors`,
within `instrument_specs.LPM01A`), coded in the chosen format. `commands` logs every line.
"""

from __future__ import annotations

import threading

import numpy as np

from pytest_edgehil.instruments import lpm01a_limits as limits
from pytest_edgehil.instruments import lpm01a_protocol as proto
from pytest_edgehil.sim.bench_physics import BenchPhysics, trigger_delay_s
from pytest_edgehil.sim.instrument_errors import InstrumentErrors
from pytest_edgehil.sim.instrument_specs import TWIN_SPECS
from pytest_edgehil.sim.monitor_pty import SerialTwin, monitor_samples
from pytest_edgehil.sim.timeline import ActivityTimeline

GRACE_S = 0.05  # real seconds to wait for the device to record activity up to the window's end


class LPM01ATwin(SerialTwin):
    def __init__(self, timeline: ActivityTimeline, *, physics: BenchPhysics | None = None, seed: int = 0,
                 noise_rel: float = 0.002) -> None:
        super().__init__("lpm01a-twin")
        self.timeline = timeline
        self.physics = physics or BenchPhysics.ideal()
        self.seed = seed
        self.noise_rel = noise_rel
        self.instrument_errors = InstrumentErrors.draw(TWIN_SPECS["lpm01a"], seed,
                                                       scale=self.physics.instrument_accuracy_rel,
                                                       drift_rel=self.physics.instrument_drift_rel)
        self.commands: list[str] = []
        self.values = {"volt": 3.3, "freq": 100.0, "acqtime": 1.0}  # V, Hz, s
        self.settings = {"format": "ascii_dec", "trigsrc": "sw", "acqmode": "dyn", "output": "current"}
        self.host_control = False
        self.captures = 0
        self.last_trigger_s: float | None = None
        self._line = b""
        self._capture: threading.Thread | None = None
        self._abort = threading.Event()

    def on_bytes(self, data: bytes) -> None:
        self._line += data
        while b"\n" in self._line:
            raw, self._line = self._line.split(b"\n", 1)
            line = raw.decode("ascii", "replace").strip()
            if line:
                self.commands.append(line)
                self._reply(line, self._handle(line))

    def _reply(self, line: str, error: str | None) -> None:
        self.write((proto.PROMPT + (f"error {line}: {error}" if error else f"ack {line}")).encode() + b"\r\n")

    def _handle(self, line: str) -> str | None:
        """None when the command is accepted, else the reason for `error`."""
        word, _, arg = line.partition(" ")
        if word == "htc":
            self.host_control = True
            return None
        if not self.host_control:
            return "host has not taken control (send htc first)"
        if word == "stop":
            self._abort.set()
            return None
        if word == "start":
            return self._start()
        if word not in self.settings and word not in self.values:
            return "command unknown"
        try:
            if word == "acqtime" and arg in ("0", "inf"):
                self.values[word] = 0.0  # infinite acquisition
                return None
            if word in ("volt", "freq", "acqtime"):
                value = proto.parse_value(arg)
                if word == "acqtime" and limits.acqtime_problem(value) is not None:
                    return "value out of range 100u-100"
                if word == "volt" and not proto.VOLTAGE_RANGE_V[0] <= value <= proto.VOLTAGE_RANGE_V[1] + 1e-9:
                    return "value out of range 1800m-3300m"
                if word == "freq" and value not in proto.FREQS_HZ:
                    return "frequency not supported"
                self.values[word] = value
            else:
                self.settings[word] = arg
        except ValueError:
            return "bad value"
        return None

    def _start(self) -> str | None:
        if self.settings["format"] == "ascii_dec" and not limits.ascii_allowed(self.values["freq"],
                                                                                 self.values["acqtime"]):
            return "ascii_dec cannot stream this acquisition (10k: 1s max, above 10k: none), use bin_hexa"
        if self.values["acqtime"] == 0:
            return "infinite acquisition not modelled by the twin"
        self._abort.clear()
        self.captures += 1
        self._capture = threading.Thread(target=self._acquire, args=(self.timeline.end_s, self.captures),
                                         name="lpm01a-twin-capture", daemon=True)
        self._capture.start()
        return None

    def _acquire(self, armed_s: float, capture: int) -> None:
        trigger_s = armed_s
        if self.settings["trigsrc"] == "d7":
            edge_s: float | None = None
            while edge_s is None and not (self.closed.is_set() or self._abort.is_set()):
                edge_s = self.timeline.wait_for_trigger(armed_s, 0.05)
            if edge_s is None:
                return
            trigger_s = edge_s + trigger_delay_s(self.physics, np.random.default_rng([self.seed, 11, capture]))
        self.last_trigger_s = trigger_s
        dt = 1.0 / self.values["freq"]
        points = round(self.values["acqtime"] / dt)
        self.timeline.wait_until_covered(trigger_s + points * dt, GRACE_S)
        power_w, _ = monitor_samples(self.timeline, self.physics, trigger_s, dt, points,
                                     np.random.default_rng([self.seed, capture]), self.noise_rel)
        output_v = self.instrument_errors.output_voltage_v(self.values["volt"])
        current_a = self.instrument_errors.read_current_a(power_w / output_v, trigger_s + np.arange(points) * dt, None)
        if self.settings["format"] == "bin_hexa":
            data = proto.encode_binary(current_a)
        else:
            data = "".join(proto.format_ascii(i) + "\r\n" for i in current_a).encode()
        if self.write(data):
            self.write(f"\r\n{proto.PROMPT}{proto.COMPLETED}\r\n".encode())
