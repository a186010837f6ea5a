"""The agent's LiteRT backend: the board's own CPU runs the model, timed on the board's monotonic clock.

It answers the same messages as any firmware (`link.messages`): HELLO, LOAD_BEGIN/CHUNK/END (the model is
checked against its SHA-256), SELECT_MODEL (models kept in memory, by hash), SET_INPUT (dtype and shape
checked against the model), RUN n and RESET. A RUN's stage times are real: per inference, the input
copy-in (`readout`), `invoke()` (`inference`) and the output copy-out (`retrieval`), each from
`time.monotonic_ns()` on the board; `start_us` is each inference's start relative to the first.
Nothing here is simulated, and nothing imports `pytest_edgehil.sim`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import pytest_edgehil
from pytest_edgehil.agent.onboard_energy import OnboardEnergy, find_sources
from pytest_edgehil.agent.power import find_monitors, power_capabilities
from pytest_edgehil.agent.trigger_gpio import GpiodTrigger, trigger_capabilities
from pytest_edgehil.errors import ModelError
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.device_side import DeviceRefusal, ModelUpload, require_upload
from pytest_edgehil.model.runtime import ModelRunner

FIRMWARE = f"edgehil-agent {pytest_edgehil.__version__}"
DEFAULT_STORE_BYTES = 256 * 1024 * 1024  # models kept in memory; a LOAD_BEGIN beyond it is refused
BASE_CAPABILITIES = ("load_model", "select_model", "run", "stage_timings", "backend:litert-cpu")


Refusal = DeviceRefusal  # becomes an ERROR frame, as real firmware answers a request it cannot serve


@dataclass
class _Loaded:
    sha256: bytes
    name: str
    runner: ModelRunner
    inputs: list[np.ndarray]


def board_serial() -> str:
    """A stable identity of this machine: a hash of /etc/machine-id (else the host name)."""
    try:
        ident = open("/etc/machine-id").read().strip()  # noqa: SIM115 - one short read
    except OSError:
        ident = socket.gethostname()
    return f"AGENT-{hashlib.sha256(ident.encode()).hexdigest()[:12].upper()}"


def physical_ram_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


class LiteRTDevice:
    """Answers protocol messages with LiteRT on this machine's CPU. Thread-safe (one lock)."""

    def __init__(self, *, kind: str = "linux-cpu", name: str | None = None, threads: int = 1,
                 store_bytes: int = DEFAULT_STORE_BYTES, extra_capabilities: Sequence[str] | None = None,
                 inputs: str = "pushed", trigger: GpiodTrigger | None = None,
                 clock_ns: Callable[[], int] = time.monotonic_ns, energy: OnboardEnergy | None = None) -> None:
        self.kind, self.name = kind, name or socket.gethostname()
        self.threads, self.store_bytes, self.clock_ns = threads, store_bytes, clock_ns
        if extra_capabilities is None:  # default: the on-board power readers present here (`power:none`)
            extra_capabilities = power_capabilities(find_monitors())
        # "pushed": the host sends inputs (SET_INPUT); "sensor": the network runs on the board's own frames
        self.trigger = trigger  # raised around each inference where a GPIO line is wired (agent.trigger_gpio)
        # on-board energy counters read around every RUN, served by ENERGY_READ (default: those under /sys)
        self.energy = energy if energy is not None else OnboardEnergy(find_sources())
        self.capabilities = (*BASE_CAPABILITIES, f"inputs:{inputs}", *extra_capabilities,
                             *trigger_capabilities(trigger), *self.energy.capabilities)
        self.serial_number = board_serial()
        self._store: dict[bytes, bytes] = {}
        self._upload: ModelUpload | None = None
        self._model: _Loaded | None = None
        self._lock = threading.Lock()
        self._handlers: dict[type, Callable[..., p.Message]] = {
            p.Hello: self._hello, p.LoadBegin: self._load_begin, p.LoadChunk: self._load_chunk,
            p.LoadEnd: self._load_end, p.SelectModel: self._select, p.SetInput: self._set_input,
            p.Run: self._run, p.Reset: self._reset, p.EnergyRead: self._energy_read,
        }

    def handle(self, message: p.Message) -> p.Message:
        with self._lock:
            handler = self._handlers.get(type(message))
            if handler is None:
                return p.Error(p.ErrorCode.UNKNOWN_MESSAGE, f"{self.name}: no handler for {type(message).__name__}")
            try:
                return handler(message)
            except Refusal as refusal:
                return p.Error(refusal.code, f"{self.name}: {refusal}")
            except ModelError as exc:
                return p.Error(p.ErrorCode.BAD_INPUT, f"{self.name}: {exc}")

    def _hello(self, _: p.Hello) -> p.Message:
        return p.HelloReply(device_kind=self.kind, device_name=self.name, firmware=FIRMWARE,
                            protocol_version=p.PROTOCOL_VERSION, capabilities=self.capabilities,
                            ram_bytes=physical_ram_bytes(), flash_bytes=self.store_bytes,
                            serial_number=self.serial_number)

    def _load_begin(self, msg: p.LoadBegin) -> p.Message:
        self._upload = ModelUpload.begin(msg, self.store_bytes, "this agent keeps (--store-mb) at most")
        return p.Ack(p.MsgType.LOAD_BEGIN)

    def _load_chunk(self, msg: p.LoadChunk) -> p.Message:
        require_upload(self._upload).add(msg)
        return p.Ack(p.MsgType.LOAD_CHUNK)

    def _load_end(self, msg: p.LoadEnd) -> p.Message:
        upload, self._upload = require_upload(self._upload), None
        data, digest = upload.finish(msg)
        self._activate(data, upload.name)
        while sum(map(len, self._store.values())) + len(data) > self.store_bytes and self._store:
            self._store.pop(next(iter(self._store)))  # the oldest model goes; the host uploads it again if asked
        self._store[digest] = data
        return p.Ack(p.MsgType.LOAD_END)

    def _select(self, msg: p.SelectModel) -> p.Message:
        data = self._store.get(bytes(msg.sha256))
        if data is None:
            raise Refusal(p.ErrorCode.NO_MODEL, f"no model with SHA-256 {bytes(msg.sha256).hex()[:16]}… here")
        self._activate(data, "stored")
        return p.Ack(p.MsgType.SELECT_MODEL)

    def _set_input(self, msg: p.SetInput) -> p.Message:
        model = self._require_model()
        specs = model.runner.inputs
        if not 0 <= msg.index < len(specs):
            raise Refusal(p.ErrorCode.BAD_INPUT, f"input index {msg.index}; the model has {len(specs)}")
        tensor, spec = np.asarray(msg.tensor), specs[msg.index]
        if tensor.dtype != spec.dtype or tuple(tensor.shape) != tuple(spec.shape):
            raise Refusal(p.ErrorCode.BAD_INPUT, f"input {msg.index} is {tensor.dtype}{list(tensor.shape)}, the "
                                                 f"model expects {np.dtype(spec.dtype)}{list(spec.shape)}")
        model.inputs[msg.index] = tensor
        return p.Ack(p.MsgType.SET_INPUT)

    def _run(self, msg: p.Run) -> p.Message:
        model = self._require_model()
        if msg.count < 1:
            raise Refusal(p.ErrorCode.BAD_PAYLOAD, f"RUN count must be >= 1, got {msg.count}")
        timings: list[p.StageTiming] = []
        outputs: list[np.ndarray] = []
        self.energy.begin(self.clock_ns)  # counters read just before the first inference …
        first_ns = self.clock_ns()
        for _ in range(msg.count):
            start_ns = self.clock_ns()
            if self.trigger is not None:  # high over the whole inference (copy-in, invoke, copy-out)
                self.trigger.set(True)
            outputs, (copy_in, invoke, copy_out) = model.runner.run_raw_timed(model.inputs, self.clock_ns)
            if self.trigger is not None:
                self.trigger.set(False)
            timings.append(p.StageTiming(start_us=(start_ns - first_ns) / 1e3, readout_us=copy_in / 1e3,
                                         inference_us=invoke / 1e3, retrieval_us=copy_out / 1e3))
            self.energy.poll(self.clock_ns)  # a wrapping counter read often enough to unwrap it
        self.energy.end(self.clock_ns, msg.count)  # … and just after the last
        return p.Result(timings=tuple(timings), outputs=tuple(outputs), model_sha256=model.sha256)

    def _energy_read(self, _: p.EnergyRead) -> p.Message:
        return self.energy.last()

    def _reset(self, _: p.Reset) -> p.Message:
        self._upload, self._model = None, None
        return p.Ack(p.MsgType.RESET)

    def _activate(self, data: bytes, name: str) -> None:
        try:
            runner = ModelRunner(data, num_threads=self.threads, name=name)
        except ModelError as exc:
            raise Refusal(p.ErrorCode.BAD_PAYLOAD, str(exc)) from exc
        inputs = [np.zeros(spec.shape, dtype=spec.dtype) for spec in runner.inputs]
        self._model = _Loaded(hashlib.sha256(data).digest(), name, runner, inputs)

    def _require_model(self) -> _Loaded:
        if self._model is None:
            raise Refusal(p.ErrorCode.NO_MODEL, "no active model: load or select one first")
        return self._model
