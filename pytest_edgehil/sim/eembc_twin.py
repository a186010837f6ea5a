"""A twin of the MLPerf Tiny reference firmware (performance mode) on a pty, with real LiteRT behind it.

It speaks the EEMBC text protocol as `api/internally_implemented.cpp` does (commands end with `%`, every
reply ends with `m-ready`; `name`, `profile`, `db load N`, `db HEX`, `infer N W`, `results`), runs the
compiled-in model with LiteRT on the host's CPU and stamps `m-lap-us-` from `time.monotonic_ns()` (with a
device `profile`, or `timer_inference_us`, from a virtual timer instead: see below). Its
known field failures can be switched on to test the host's errors:
- `garble=True`: every reply byte comes out as a wrong-baud UART would deliver it (high bit set);
- `drop_every=K`: the K-th byte of each results line is lost (a UART overrun);
- `energy_mode=True`: firmware built for energy mode, which prints no `m-lap-us-` lines; instead
  `th_timestamp()` pulls the open-drain timestamp GPIO low for `timestamp_hold_s` before and after the
  N inferences of `infer N W%`, as the reference ports do;
- `max_db_bytes=M`: the firmware's `MAX_DB_INPUT_SIZE` (reference default 96*96*3): `db load N` with
  N > M prints the reference's bare "Supplied buffer size N exceeds maximum of M" line (no `e-`) and the
  bytes past M are lost (on the board they overrun the buffer), though `m-load-done` still comes;
- `th_results=PORT`: the results line printed as that reference port's `th_results()` prints it
  (`TH_RESULTS`, read from mlcommons/tiny `benchmark/reference_submissions/PORT/submitter_implemented.cpp`):
  "image_classification" (default) `%0.3f` joined by commas; "person_detection" `%0.3f` with a comma after
  each of the first `nresults - 1 = 2` values (its 2 classes: a trailing comma); "keyword_spotting" the
  digits `0.%d` `%d` `%d` of `(int)(x*10)`, `(int)(x*100) % 10`, `(int)(x*1000) % 10` (truncated, not rounded);
- `infer_wall_s=S`: every `infer` takes S more seconds of wall time before its reply, as a slower board (or a
  larger N) does; the twin reads no command meanwhile, like the firmware's single loop (`main.cpp`);
- `io_manager=True`: the host reaches it through a twin of EEMBC's IO manager (`sim.eembc_io_twin`, the
  energy setup's interface board): `port` is then the IO manager's;
- `timer_inference_us=T`: the firmware's µs timer is virtual: each inference takes T µs on it, and
  `th_printf` blocks for the UART time of each line at `uart_baud` (8N1), as the reference ports' blocking
  UART does, so the first `m-lap-us-` line's print lies inside the timed window (the model then runs
  once per `infer`: the outputs do not depend on how often).

Given a device `profile`, the twin also records its activity on an `ActivityTimeline` (virtual clock,
stage times from the profile's cost model for the compiled-in model, powers from the profile), and its
`m-lap-us-` timer is virtual, advancing by those inference times (and the lap line's print), so a
simulated board reports its kind's latency, not the host's; a monitor twin (`sim.ppk2_twin`) digitizes
its current and its timestamp line. The truth of the last `infer` is kept: `last_window_s` (the two
timestamps' falling edges) and `last_inference_j` (the inference spans' energy / N), what the meter is
checked against.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.link.eembc import CMD_SIZE, line_print_us
from pytest_edgehil.model.info import analyze_model
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.bench_physics import BenchPhysics, load_ripple
from pytest_edgehil.sim.eembc_io_twin import IoManagerTwin
from pytest_edgehil.sim.eembc_pty import EembcPty
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan
from pytest_edgehil.sim.twin_timing import float_compute

if TYPE_CHECKING:
    from pytest_edgehil.sim.profile import DeviceProfile

REFERENCE_HOLD_S = 1e-6  # th_timestamp: "Hold low for at least 1us" (the reference port's comment)
#: The reference ports whose th_results() the twin prints like (see the module docstring).
TH_RESULTS = ("image_classification", "person_detection", "keyword_spotting")
RESULTS_PRINT_S = 1e-3  # the results line leaves the UART after the second timestamp: idle, outside the window


class EembcTwin(EembcPty):
    """Reference firmware with `model_bytes` compiled in, named `model_name` in `profile%`."""

    def __init__(self, model_bytes: bytes, model_name: str, *, device_name: str = "twin",
                 garble: bool = False, drop_every: int = 0, energy_mode: bool = False,
                 profile: DeviceProfile | None = None, physics: BenchPhysics | None = None,
                 timestamp_hold_s: float = REFERENCE_HOLD_S, seed: int = 0,
                 timer_inference_us: float | None = None, uart_baud: int = 115200, max_db_bytes: int = 0,
                 th_results: str = "image_classification", infer_wall_s: float = 0.0,
                 io_manager: bool = False) -> None:
        if th_results not in TH_RESULTS:
            raise ConfigError(f"EembcTwin(th_results={th_results!r}): the twin prints like one of the reference "
                              f"ports {TH_RESULTS}")
        self.th_results, self.infer_wall_s = th_results, infer_wall_s
        self.max_db_bytes = max_db_bytes  # 0: no MAX_DB_INPUT_SIZE limit
        self.runner = ModelRunner(model_bytes)
        self.timer_inference_us, self.uart_baud = timer_inference_us, uart_baud
        self._timer_us = 1_000_000.0  # the virtual timer (timer_inference_us): µs since the firmware's boot
        self.profile, self.physics = profile, physics or BenchPhysics.ideal()
        self.timestamp_hold_s = timestamp_hold_s
        self.timeline: ActivityTimeline | None = None
        self._inference_s = 0.0
        self._rng = np.random.default_rng([seed, len(model_bytes)])
        if profile is not None:
            self.timeline = ActivityTimeline(profile.power.idle_w, profile.supply_v, trigger_active_low=energy_mode,
                                             ripple=load_ripple(self.physics, profile.power.idle_w))
            info = analyze_model(model_bytes, model_name)
            self._inference_s = profile.inference_s(info.macs, info.elementwise_ops,
                                                    float_model=float_compute(info))
        self.clock_s = 0.0
        self.last_window_s: tuple[float, float] | None = None
        self.last_inference_j = float("nan")
        self.model_name, self.device_name = model_name, device_name
        self.garble, self.drop_every, self.energy_mode = garble, drop_every, energy_mode
        spec = self.runner.inputs[0]
        self._input = np.zeros(spec.shape, dtype=spec.dtype)
        self._buffer = bytearray()
        self._expected = self._received = 0
        self.commands: list[str] = []
        super().__init__("eembc-twin")
        self.start()
        # io_manager: the host reaches the firmware through an EEMBC IO manager twin, on its port
        self.io_manager = IoManagerTwin(self.port) if io_manager else None
        if self.io_manager is not None:
            self.port = self.io_manager.port

    def close(self) -> None:
        if self.io_manager is not None:
            self.io_manager.close()
        super().close()

    def on_command(self, text: str) -> bool:
        text = text.strip()[:CMD_SIZE]  # the firmware's buffer keeps 80
        self.commands.append(text)
        self._send(self._answer(text.split()) + ["m-ready"])
        return True

    def _send(self, lines: list[str]) -> None:
        data = bytearray()
        for line in lines:
            raw = (line + "\r\n").encode()
            if self.drop_every and line.startswith("m-results-"):
                raw = b"".join(raw[i:i + 1] for i in range(len(raw)) if (i + 1) % self.drop_every)
            data += raw
        if self.garble:
            data = bytearray(b | 0x80 for b in data)
        self.write(bytes(data))

    def _answer(self, tokens: list[str]) -> list[str]:
        if not tokens:
            return ["e-[Unknown command: ]"]
        head = tokens[0]
        if head == "name":
            return [f"m-name-{self.device_name}-[edgehil-twin]"]
        if head == "profile":
            return ["m-profile-[ULPMark-ML v1.0 twin]", f"m-model-[{self.model_name}]"]
        if head == "db":
            return self._db(tokens[1:])
        if head == "infer":
            return self._infer(tokens[1:])
        if head == "results":
            return [self._results(self.runner.run_raw([self._input]))]
        return [f"e-[Unknown command: {head}]"]

    def _db(self, args: list[str]) -> list[str]:
        if not args:
            return ["e-[Command 'db' requires a subcommand]"]
        if args[0] == "load":
            self._expected, self._buffer, self._received = int(args[1]), bytearray(), 0
            if self.max_db_bytes and self._expected > self.max_db_bytes:
                return [f"Supplied buffer size {self._expected} exceeds maximum of {self.max_db_bytes}"]
            return [f"m-[Expecting {self._expected} bytes]"]
        chunk = bytes.fromhex(args[0])[: self._expected - self._received]
        self._received += len(chunk)
        self._buffer += chunk[: max(0, self.max_db_bytes - len(self._buffer))] if self.max_db_bytes else chunk
        if self._received < self._expected:
            return []
        spec = self.runner.inputs[0]
        if len(self._buffer) == spec.size_bytes:
            self._input = np.frombuffer(bytes(self._buffer), dtype=spec.dtype).reshape(spec.shape)
        return ["m-load-done"]

    def _infer(self, args: list[str]) -> list[str]:
        n, warmup = (int(args[0]) if args else 1), (int(args[1]) if len(args) > 1 else 10)
        if n <= 0:
            return ["e-[Inference iterations must be >0]"]
        if self.infer_wall_s > 0:
            time.sleep(self.infer_wall_s)
        lines = [f"m-warmup-start-{warmup}"]
        for _ in range(warmup):
            self.runner.run_raw([self._input])
        lines += ["m-warmup-done", f"m-infer-start-{n}"]
        # With a profile the firmware's timer is the kind's: the n inferences last what the timeline says
        # (the profile's cost for the model's MACs, with its jitter), not the host's LiteRT time.
        timeline_s = self._record(warmup, n)
        if self.timer_inference_us is not None or timeline_s is not None:
            start_us, end_us = self._virtual_laps(n, timeline_s)
            outputs = self.runner.run_raw([self._input])
        else:
            start_us = time.monotonic_ns() // 1000
            outputs = []
            for _ in range(n):
                outputs = self.runner.run_raw([self._input])  # real outputs; LiteRT on the host, not the board's
            end_us = time.monotonic_ns() // 1000
        if not self.energy_mode:
            lines += [f"m-lap-us-{start_us}", f"m-lap-us-{end_us}"]
        return [*lines, "m-infer-done", self._results(outputs)]

    def _virtual_laps(self, n: int, inferences_s: float | None) -> tuple[int, int]:
        """th_timestamp, n inferences, th_timestamp on the virtual timer: each th_timestamp reads the timer,
        then prints its line (blocking), so the first line's print is timed with the inferences. The n
        inferences take n × `timer_inference_us` where it is given, else `inferences_s` (the timeline's)."""
        infer_us = n * self.timer_inference_us if self.timer_inference_us is not None else (inferences_s or 0.0) * 1e6
        start_us = int(self._timer_us)
        self._timer_us += line_print_us(f"m-lap-us-{start_us}", self.uart_baud) + infer_us
        end_us = int(self._timer_us)
        self._timer_us += line_print_us(f"m-lap-us-{end_us}", self.uart_baud)
        return start_us, end_us

    def _record(self, warmup: int, n: int) -> float | None:
        """`infer n warmup` on the timeline: warm-up, timestamp, n inferences, timestamp, results print.
        Returns the n inferences' total time in s (None without a profile: no timeline)."""
        if self.timeline is None or self.profile is None:
            return None
        power = self.profile.power
        jitter = self.profile.jitter_rel
        energy_j = 0.0
        inferences_s = 0.0
        self._span("inference", warmup * self._inference_s, power.inference_w)
        first = self._timestamp(power.inference_w)
        for i in range(n):
            length_s = self._inference_s * min(max(1.0 + jitter * float(self._rng.standard_normal()), 0.5), 1.5)
            energy_j += self._span("inference", length_s, power.inference_w, run_index=i)
            inferences_s += length_s
        second = self._timestamp(power.inference_w)
        self._span("idle", RESULTS_PRINT_S, power.idle_w)
        self.last_window_s, self.last_inference_j = (first, second), energy_j / n
        return inferences_s

    def _timestamp(self, power_w: float) -> float:
        """th_timestamp(): the line held low for the hold time (the CPU spins meanwhile); its falling edge."""
        start_s = self.clock_s
        if self.energy_mode:
            self._span("timestamp", self.timestamp_hold_s, power_w, trigger=True)
        return start_s

    def _span(self, stage: str, length_s: float, power_w: float, *, trigger: bool = False, run_index: int = -1
              ) -> float:
        if length_s <= 0 or self.timeline is None:
            return 0.0
        span = StageSpan(stage, self.clock_s, self.clock_s + length_s, power_w, trigger, run_index)
        self.timeline.append(span)
        self.clock_s = span.end_s
        return span.energy_j

    def _results(self, outputs: list[np.ndarray]) -> str:
        """th_results() of the reference port `th_results`: `DequantizeInt8ToFloat` (float32), then its print."""
        spec = self.runner.outputs[0]
        values = spec.dequantize(outputs[0]).reshape(-1)
        # person_detection loops over its 2 classes but puts a comma after each i < nresults - 1, nresults = 3
        commas = 2 if self.th_results == "person_detection" else len(values) - 1
        text = "m-results-["
        for i, value in enumerate(values):
            text += kws_digits(value) if self.th_results == "keyword_spotting" else f"{value:0.3f}"
            text += "," if i < commas else ""
        return text + "]"


def kws_digits(converted: np.float32) -> str:
    """What keyword_spotting's th_results() prints for one value ("Some platforms don't implement floating
    point formatting"): `th_printf("0.%d", (int)(converted * 10))`, then `"%d"` of `(int)(converted * 100) % 10`
    and of `(int)(converted * 1000) % 10`. The products are float32 (a float times an int), the casts truncate
    toward zero and `%` keeps the dividend's sign, as in C: 1.0 prints "0.1000", -0.25 prints "0.-2-50"."""
    x = np.float32(converted)
    tenths = int(x * np.float32(10))
    hundredths = int(math.fmod(int(x * np.float32(100)), 10))
    thousandths = int(math.fmod(int(x * np.float32(1000)), 10))
    return f"0.{tenths}{hundredths}{thousandths}"
