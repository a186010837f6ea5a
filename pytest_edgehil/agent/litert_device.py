"""The agent's LiteRT backend: the board's own CPU runs the model, timed on the board's monotonic clock.

It answers the same messages as any firmware (`link.messages`): HELLO, LOAD_BEGIN/CHUNK/END (the model is
checked against its SHA-256), SELECT_MODEL (models kept in memory, by hash), SET_INPUT (dtype and shape
checked against the model), RUN n, EVAL, EVAL_BATCH and RESET. A RUN's stage times are real: per
inference, the input copy-in (`readout`), `invoke()` (`inference`) and the output copy-out (`retrieval`),
each from `time.monotonic_ns()` on the board; `start_us` is each inference's invoke start (where the
trigger line rises; copy-in precedes it) relative to the first one's, as docs/protocol.md defines it.
EVAL (inputs, then RUN 1) and EVAL_BATCH (that, image by image) go through the same inference loop, so
accuracy evaluation costs one round trip per request rather than two per image (SET_INPUT + RUN 1).
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
from pytest_edgehil.agent.server import REPLY_CACHE
from pytest_edgehil.agent.trigger_gpio import GpiodTrigger, trigger_capabilities
from pytest_edgehil.errors import ModelError
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.device_side import (
    DeviceRefusal,
    ModelUpload,
    batch_images,
    check_batch,
    checked_input,
    require_upload,
)
from pytest_edgehil.model.runtime import ModelRunner, only_batch_open

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
    # Inputs with open dimensions (shape_signature -1) not yet set: until each is, there is no size to run
    # at (the file's 1x1 placeholder must never be timed as the model).
    unsized: set[int]


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
        self.trigger = trigger  # high over each invoke() where a GPIO line is wired (agent.trigger_gpio)
        # on-board energy counters read around every RUN, served by ENERGY_READ (default: those under /sys)
        self.energy = energy if energy is not None else OnboardEnergy(find_sources())
        # EVAL_BATCH images per request (HELLO `batch=N`), sized from this machine's RAM as a twin's are
        self.batch = batch_images(physical_ram_bytes(), REPLY_CACHE)
        # EVAL and EVAL_BATCH push inputs, so only an agent whose host pushes them offers them. `pipeline=`:
        # no more requests in flight than the server's reply cache holds (server.REPLY_CACHE says why).
        evaluation = (p.EVAL_CAPABILITY, f"{p.PIPELINE_CAPABILITY}{REPLY_CACHE}",
                      f"{p.BATCH_CAPABILITY}{self.batch}") if inputs == "pushed" else ()
        self.capabilities = (*BASE_CAPABILITIES, *evaluation, f"inputs:{inputs}", *extra_capabilities,
                             *trigger_capabilities(trigger), *self.energy.capabilities)
        self.serial_number = board_serial()
        self._store: dict[bytes, bytes] = {}
        self._upload: ModelUpload | None = None
        self._model: _Loaded | None = None
        self._lock = threading.Lock()
        self._handlers: dict[type, Callable[..., p.Message]] = {
            p.Hello: self._hello, p.LoadBegin: self._load_begin, p.LoadChunk: self._load_chunk,
            p.LoadEnd: self._load_end, p.SelectModel: self._select, p.SetInput: self._set_input,
            p.Run: self._run, p.Eval: self._eval, p.EvalBatch: self._eval_batch, p.Reset: self._reset,
            p.EnergyRead: self._energy_read,
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
        self._feed(self._require_model(), msg.index, msg.tensor)
        return p.Ack(p.MsgType.SET_INPUT)

    def _run(self, msg: p.Run) -> p.Message:
        model = self._require_model()
        if msg.count < 1:
            raise Refusal(p.ErrorCode.BAD_PAYLOAD, f"RUN count must be >= 1, got {msg.count}")
        self.energy.begin(self.clock_ns)  # counters read just before the first inference …
        outputs, timings = self._infer(model, [()] * msg.count, energy=True)
        self.energy.end(self.clock_ns, msg.count)  # … and just after the last
        return p.Result(timings=tuple(timings), outputs=outputs[-1], model_sha256=model.sha256)

    def _eval(self, msg: p.Eval) -> p.Message:
        """EVAL: the inputs set as SET_INPUT sets them, then RUN 1 (a refused input runs nothing). Not
        bracketed by the energy counters: ENERGY_READ answers the last RUN (docs/protocol.md), and a window
        per request would add its settle wait (up to MAX_SETTLE_S) to every image of an evaluation."""
        model = self._require_model()
        outputs, timings = self._infer(model, [msg.inputs])
        return p.Result(timings=tuple(timings), outputs=outputs[0], model_sha256=model.sha256)

    def _eval_batch(self, msg: p.EvalBatch) -> p.Message:
        """EVAL_BATCH: EVAL image by image, one BATCH_RESULT echoing the request payload's CRC-32, timings
        as RUN N reports them. More images than HELLO offered is refused before any runs; a refused input
        ends the batch with the ERROR (the images before it ran). No energy window, as for EVAL."""
        check_batch(len(msg.images), self.batch)
        model = self._require_model()
        outputs, timings = self._infer(model, [tuple(zip(msg.indices, tensors)) for tensors in msg.images])
        return p.BatchResult(model.sha256, msg.payload_crc32, tuple(timings), tuple(outputs))

    def _infer(self, model: _Loaded, images: Sequence[Sequence[tuple[int, np.ndarray]]], *,
               energy: bool = False) -> tuple[list[tuple[np.ndarray, ...]], list[p.StageTiming]]:
        """One inference per item of `images`, after setting its (index, tensor) inputs (checked as SET_INPUT;
        none: the inputs as they stand): each inference's outputs and stage times (µs, board clock;
        `start_us` at each invoke start, from the first one's). The trigger line is high over each invoke()
        only, so its rising edge is `start_us` and its pulse `inference_us` long, the convention every
        host window (device_windows, digital_windows) and the twins use;
        `energy` polls the counters after each (RUN, whose window is open). Refusal on a refused input."""
        outputs: list[tuple[np.ndarray, ...]] = []
        timings: list[p.StageTiming] = []
        first_ns: int | None = None
        for inputs in images:
            for index, tensor in inputs:
                self._feed(model, index, tensor)
            if model.unsized:
                raise Refusal(p.ErrorCode.BAD_INPUT, f"model {model.name!r} has dynamic input dimensions "
                                                     f"(inputs {sorted(model.unsized)}) never set, so there is no size to "
                                                     "run at; send SET_INPUT with the shape to measure first")
            mark = self.trigger.set if self.trigger is not None else None  # high over invoke() only
            raw, (t0, t1, t2, t3) = model.runner.run_raw_timed(model.inputs, self.clock_ns, mark)
            first_ns = t1 if first_ns is None else first_ns
            outputs.append(tuple(raw))
            timings.append(p.StageTiming(start_us=(t1 - first_ns) / 1e3, readout_us=(t1 - t0) / 1e3,
                                         inference_us=(t2 - t1) / 1e3, retrieval_us=(t3 - t2) / 1e3))
            if energy:
                self.energy.poll(self.clock_ns)  # a wrapping counter read often enough to unwrap it
        return outputs, timings

    def _feed(self, model: _Loaded, index: int, tensor: np.ndarray) -> None:
        """Set input `index` (SET_INPUT, EVAL, EVAL_BATCH); Refusal for an index, dtype or shape the model
        does not take."""
        tensor = checked_input(model.runner, index, tensor)
        specs, shape = model.runner.inputs, tuple(tensor.shape)
        if shape != tuple(specs[index].shape):  # a dynamic input at another size: the model runs at the size fed
            shapes = [tuple(s.shape) for s in specs]
            shapes[index] = shape
            model.runner.resize_inputs(shapes)  # ModelError (LiteRT refuses the size) becomes BAD_INPUT
            model.inputs = [t if tuple(t.shape) == s else np.zeros(s, t.dtype) for t, s in zip(model.inputs, shapes)]
        model.inputs[index] = tensor
        model.unsized.discard(index)

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
        # An input whose only open dimension is the batch runs at batch 1, as on every board; any other open
        # dimension waits for SET_INPUT.
        signatures = runner.input_signatures
        if any(only_batch_open(s) for s in signatures):
            try:
                runner.resize_inputs([tuple(1 if d < 0 else d for d in s) if only_batch_open(s) else spec.shape
                                      for s, spec in zip(signatures, runner.inputs)])
            except ModelError as exc:
                raise Refusal(p.ErrorCode.BAD_PAYLOAD, str(exc)) from exc
        inputs = [np.zeros(spec.shape, dtype=spec.dtype) for spec in runner.inputs]
        unsized = {i for i, s in enumerate(signatures) if any(d < 0 for d in s) and not only_batch_open(s)}
        self._model = _Loaded(hashlib.sha256(data).digest(), name, runner, inputs, unsized)

    def _require_model(self) -> _Loaded:
        if self._model is None:
            raise Refusal(p.ErrorCode.NO_MODEL, "no active model: load or select one first")
        return self._model

