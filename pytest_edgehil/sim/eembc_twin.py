"""A twin of the MLPerf Tiny reference firmware (performance mode) on a pty, with real LiteRT behind it.

It speaks the EEMBC text protocol as `api/internally_implemented.cpp` does (commands end with `%`, every
reply ends with `m-ready`; `name`, `profile`, `db load N`, `db HEX`, `infer N W`, `results`), runs the
compiled-in model with LiteRT on the host's CPU and stamps `m-lap-us-` from `time.monotonic_ns()`. Its
known field failures can be switched on to test the host's errors:
- `garble=True`: every reply byte comes out as a wrong-baud UART would deliver it (high bit set);
- `drop_every=K`: the K-th byte of each results line is lost (a UART overrun);
- `energy_mode=True`: firmware built for energy mode, which prints no `m-lap-us-` lines.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgehil.link.eembc import CMD_SIZE
from pytest_edgehil.model.runtime import ModelRunner

if TYPE_CHECKING:
    from typing import Self


class EembcTwin:
    """Reference firmware with `model_bytes` compiled in, named `model_name` in `profile%`."""

    def __init__(self, model_bytes: bytes, model_name: str, *, device_name: str = "twin",
                 garble: bool = False, drop_every: int = 0, energy_mode: bool = False) -> None:
        self.runner = ModelRunner(model_bytes)
        self.model_name, self.device_name = model_name, device_name
        self.garble, self.drop_every, self.energy_mode = garble, drop_every, energy_mode
        spec = self.runner.inputs[0]
        self._input = np.zeros(spec.shape, dtype=spec.dtype)
        self._buffer = bytearray()
        self._expected = 0
        self.commands: list[str] = []
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)  # raw at once: bytes written before the host opens the port are kept
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=f"eembc-twin:{self.port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        pending = bytearray()
        while True:
            ready, _, _ = select.select([self._master, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                pending += os.read(self._master, 65536)
            except OSError:
                return
            while b"%" in pending:
                cmd, _, rest = bytes(pending).partition(b"%")
                pending[:] = rest
                text = cmd.decode("ascii", "replace").strip()[:CMD_SIZE]  # the firmware's buffer keeps 80
                self.commands.append(text)
                self._send(self._answer(text.split()) + ["m-ready"])

    def _send(self, lines: list[str]) -> None:
        data = bytearray()
        for line in lines:
            raw = (line + "\r\n").encode()
            if self.drop_every and line.startswith("m-results-"):
                raw = b"".join(raw[i:i + 1] for i in range(len(raw)) if (i + 1) % self.drop_every)
            data += raw
        if self.garble:
            data = bytearray(b | 0x80 for b in data)
        os.write(self._master, bytes(data))

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
            self._expected, self._buffer = int(args[1]), bytearray()
            return [f"m-[Expecting {self._expected} bytes]"]
        self._buffer += bytes.fromhex(args[0])[: self._expected - len(self._buffer)]
        if len(self._buffer) < self._expected:
            return []
        spec = self.runner.inputs[0]
        if len(self._buffer) == spec.size_bytes:
            self._input = np.frombuffer(bytes(self._buffer), dtype=spec.dtype).reshape(spec.shape)
        return ["m-load-done"]

    def _infer(self, args: list[str]) -> list[str]:
        n, warmup = (int(args[0]) if args else 1), (int(args[1]) if len(args) > 1 else 10)
        if n <= 0:
            return ["e-[Inference iterations must be >0]"]
        lines = [f"m-warmup-start-{warmup}"]
        for _ in range(warmup):
            self.runner.run_raw([self._input])
        lines += ["m-warmup-done", f"m-infer-start-{n}"]
        start_us = time.monotonic_ns() // 1000
        outputs: list[np.ndarray] = []
        for _ in range(n):
            outputs = self.runner.run_raw([self._input])
        end_us = time.monotonic_ns() // 1000
        if not self.energy_mode:
            lines += [f"m-lap-us-{start_us}", f"m-lap-us-{end_us}"]
        return [*lines, "m-infer-done", self._results(outputs)]

    def _results(self, outputs: list[np.ndarray]) -> str:
        spec = self.runner.outputs[0]
        values = spec.dequantize(outputs[0]).reshape(-1)
        return "m-results-[" + ",".join(f"{v:0.3f}" for v in values) + "]"
