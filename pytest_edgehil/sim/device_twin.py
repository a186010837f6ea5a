"""A device twin: firmware behaviour of one board, served over a real pseudo-terminal.

The twin speaks the same protocol module as the host (`pytest_edgehil.link.messages`) through the generic
pty link (`pytest_edgehil.sim.pty_link`), runs the model for real with LiteRT, and times it with its
timing model (`sim.twin_timing.TimedTwin`, its base class: stage times and power from its
`DeviceProfile` and the MACs counted at the shape actually fed, on a virtual clock). A model with dynamic
height/width is resized (LiteRT `resize_tensor_input`) to each SET_INPUT's shape and timed from the MACs
at that shape; a RUN before any input of such a model is refused with the reason.

Faults (`sim/device_faults.py`) act on the line through the pty link; a reboot fault also resets the
twin as firmware resets: the active model, its inputs and any upload in progress are lost, the models in
flash are kept (unless the fault wipes flash), and the board comes back on a new pty path, published
under its USB serial number (`usb_serial`, the same string HELLO reports) for the host to find.
"""

from __future__ import annotations

import hashlib
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from typing_extensions import Self

from pytest_edgehil.config.kinds import get_device_kind
from pytest_edgehil.errors import ModelError
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.device_side import (
    DeviceRefusal,
    ModelUpload,
    batch_images,
    check_batch,
    check_result_fits,
    checked_input,
    require_upload,
)
from pytest_edgehil.model.info import ModelInfo, analyze_model
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.bench_physics import BenchPhysics
from pytest_edgehil.sim.device_faults import NO_INVOKE_PULSE_S, DeviceFaultPlan
from pytest_edgehil.sim.profile import DeviceProfile
from pytest_edgehil.sim.pty_link import REPLY_CACHE, PtyEndpoint, serve_pty
from pytest_edgehil.sim.timeline import ActivityTimeline
from pytest_edgehil.sim.twin_timing import TimedTwin, float_compute

# float_compute lives with the timing model (sim.twin_timing); importable from here, where it was first.
__all__ = ["COMMAND_S", "DeviceTwin", "TwinRefusal", "float_compute"]

# Virtual time the firmware spends parsing a command and answering it (host round trip excluded).
COMMAND_S = 50e-6

TwinRefusal = DeviceRefusal  # becomes an ERROR frame, as real firmware answers a request it cannot serve


@dataclass
class _LoadedModel:
    sha256: bytes
    name: str
    data: bytes
    info: ModelInfo  # at the shapes of `inputs` (unresolved for a dynamic model before its first input)
    runner: ModelRunner
    inputs: list[np.ndarray]


class DeviceTwin(TimedTwin):
    """One simulated board. `start()` serves it on a pty and returns the port path pyserial opens."""

    def __init__(self, profile: DeviceProfile, name: str, *, seed: int = 0,
                 timeline: ActivityTimeline | None = None, faults: DeviceFaultPlan | None = None,
                 realtime: float = 0.0, physics: BenchPhysics | None = None, as_board: bool = False) -> None:
        super().__init__(profile, name, seed=seed, timeline=timeline, physics=physics)
        # A stand-in for a real board (tests of the hardware path, `--backend hw`): HELLO then carries none
        # of the marks of simulated firmware (bring_up.simulated_firmware), so the host treats it as a board.
        self.as_board = as_board
        # > 0: a RUN sleeps its simulated span × this (parallel speed-up checks). A stand-in board takes its
        # RUN's time, as a board does: the host bounds a board's timings by the round trip (link.replies).
        self.realtime = max(realtime, 1.0) if as_board else realtime
        self.name = name
        # Stable across reboots, like a board's USB serial number; HELLO reports the same string.
        self.usb_serial = f"SIM-{zlib.crc32(name.encode()):08X}"
        self.faults = faults if faults is not None else DeviceFaultPlan()
        self.reboots = 0
        self._flash: dict[bytes, bytes] = {}  # models stored on the device, by SHA-256
        self._upload: ModelUpload | None = None
        self._model: _LoadedModel | None = None
        self._endpoint: PtyEndpoint | None = None
        self._lock = threading.Lock()
        self._handlers: dict[type, Callable[..., Sequence[p.Message]]] = {
            p.Hello: self._hello,
            p.LoadBegin: self._load_begin,
            p.LoadChunk: self._load_chunk,
            p.LoadEnd: self._load_end,
            p.SelectModel: self._select_model,
            p.SetInput: self._set_input,
            p.Run: self._run,
            p.Eval: self._eval,
            p.EvalBatch: self._eval_batch,
            p.Reset: self._reset,
        }

    # -- serving -----------------------------------------------------------------------------------
    def start(self) -> str:
        if self._endpoint is None:
            self._endpoint = serve_pty(self.handle, name=self.name, faults=self.faults, usb_serial=self.usb_serial,
                                       on_reboot=self._rebooted)
        return self._endpoint.port

    @property
    def port(self) -> str:
        """The pty path the twin serves on now (a reboot changes it)."""
        if self._endpoint is None:
            raise RuntimeError(f"device twin {self.name!r} is not started; call start() first")
        return self._endpoint.port

    @property
    def link(self) -> PtyEndpoint:
        """The pty link serving the twin; its counters say what the line did (replays, corrupt_frames,
        swallowed, reboots)."""
        if self._endpoint is None:
            raise RuntimeError(f"device twin {self.name!r} is not started; call start() first")
        return self._endpoint

    @property
    def active_model_info(self) -> ModelInfo | None:
        """The analysis the twin times the active model with (at the shape last fed), None without a model."""
        with self._lock:
            return self._model.info if self._model is not None else None

    def close(self) -> None:
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, message: p.Message) -> Sequence[p.Message]:
        """Answer one request, as the firmware's command loop does."""
        with self._lock:
            self._advance_idle(COMMAND_S)
            handler = self._handlers.get(type(message))
            if handler is None:
                return [p.Error(p.ErrorCode.UNKNOWN_MESSAGE, f"{self.name}: no handler for {type(message).__name__}")]
            try:
                return handler(message)
            except TwinRefusal as refusal:
                return [p.Error(refusal.code, f"{self.name}: {refusal}")]
            except Exception as exc:  # noqa: BLE001 - firmware answers INTERNAL rather than going silent
                return [p.Error(p.ErrorCode.INTERNAL, f"{self.name}: {type(exc).__name__}: {exc}")]

    # -- commands ------------------------------------------------------------------------------------
    def _hello(self, _: p.Hello) -> Sequence[p.Message]:
        caps: tuple[str, ...] = ("load_model", "select_model", "run", "stage_timings", "trigger_gpio",
                                 p.EVAL_CAPABILITY, f"{p.PIPELINE_CAPABILITY}{REPLY_CACHE}",
                                 f"{p.BATCH_CAPABILITY}{batch_images(self.profile.ram_bytes, REPLY_CACHE)}")
        firmware, serial = self.profile.firmware, self.usb_serial
        if self.as_board:  # what a board's firmware would say: no "-twin" name, no SIM- serial, no capability
            words = firmware.split(maxsplit=1)
            firmware = " ".join([words[0].removesuffix("-twin"), *words[1:]])
            serial = "BOARD-" + serial.removeprefix("SIM-")
        else:
            caps += (p.SIMULATED_CAPABILITY,)
        return [p.HelloReply(
            device_kind=self.profile.kind, device_name=self.name, firmware=firmware,
            protocol_version=p.PROTOCOL_VERSION, capabilities=caps, ram_bytes=self.profile.ram_bytes,
            flash_bytes=self.profile.flash_bytes, serial_number=serial,
        )]

    def _load_begin(self, msg: p.LoadBegin) -> Sequence[p.Message]:
        self._upload = ModelUpload.begin(msg, self.profile.flash_bytes, "flash holds")
        return [p.Ack(p.MsgType.LOAD_BEGIN)]

    def _load_chunk(self, msg: p.LoadChunk) -> Sequence[p.Message]:
        require_upload(self._upload).add(msg)
        return [p.Ack(p.MsgType.LOAD_CHUNK)]

    def _load_end(self, msg: p.LoadEnd) -> Sequence[p.Message]:
        upload, self._upload = require_upload(self._upload), None
        data, digest = upload.finish(msg)
        self._activate(data, upload.name)
        self._flash[digest] = data
        return [p.Ack(p.MsgType.LOAD_END)]

    def _select_model(self, msg: p.SelectModel) -> Sequence[p.Message]:
        model = self._flash.get(bytes(msg.sha256))
        if model is None:
            raise TwinRefusal(p.ErrorCode.NO_MODEL, f"no model with SHA-256 {bytes(msg.sha256).hex()[:16]}… "
                                                    "in flash; upload it with LOAD_BEGIN, LOAD_CHUNK and LOAD_END")
        self._activate(model, "flash")
        return [p.Ack(p.MsgType.SELECT_MODEL)]

    def _set_input(self, msg: p.SetInput) -> Sequence[p.Message]:
        self._feed(msg.index, msg.tensor)
        return [p.Ack(p.MsgType.SET_INPUT)]

    def _run(self, msg: p.Run) -> Sequence[p.Message]:
        return [self._infer(msg.count, "RUN")]

    def _eval(self, msg: p.Eval) -> Sequence[p.Message]:
        """EVAL: each input as SET_INPUT sets it, then RUN 1; a refused input runs nothing."""
        for index, tensor in msg.inputs:
            self._feed(index, tensor)
        return [self._infer(1, "EVAL")]

    def _eval_batch(self, msg: p.EvalBatch) -> Sequence[p.Message]:
        """EVAL_BATCH: image by image, its inputs set as SET_INPUT sets them and one inference run; one
        BATCH_RESULT with every image's outputs and timing, echoing the request payload's CRC-32. A refused
        input ends the batch (the images before it ran, as on a board; the reply is the ERROR)."""
        check_batch(len(msg.images), batch_images(self.profile.ram_bytes, REPLY_CACHE))
        model = self._require_model()
        outputs: list[tuple[np.ndarray, ...]] = []
        ran: list[ModelInfo] = []  # the analysis each image ran at (a dynamic model's images may differ in shape)
        start_s = self.clock_s
        try:
            for tensors in msg.images:
                for index, tensor in zip(msg.indices, tensors):
                    self._feed(index, tensor)
                self._require_resolved(model)
                outputs.append(tuple(model.runner.run_raw(model.inputs)))
                ran.append(model.info)
        finally:
            # Timed once the images ran (those before a refused one too, as on a board), each image a RUN 1 of
            # its own, runs of one analysis at once: the spans and timings of timing image by image.
            timings = self._time_images(ran)
        if self.realtime > 0:
            time.sleep((self.clock_s - start_s) * self.realtime)
        return [p.BatchResult(model.sha256, msg.payload_crc32, tuple(timings), tuple(outputs))]

    def _time_images(self, ran: list[ModelInfo]) -> list[p.StageTiming]:
        """One timing per image of an EVAL_BATCH (each analysed as `ran` says), `start_us` from the first
        image's trigger as RUN N reports it; timed in runs of consecutive images with one analysis."""
        timings: list[p.StageTiming] = []
        first_trigger_s: float | None = None
        start = 0
        while start < len(ran):
            end = start + 1
            while end < len(ran) and ran[end] is ran[start]:
                end += 1
            group = self._simulate_runs(ran[start], end - start, each_a_run=True)
            trigger_s = self.device_clock.stamp_s(self.last_run_edges_s[0][1])
            first_trigger_s = trigger_s if first_trigger_s is None else first_trigger_s
            offset_us = (trigger_s - first_trigger_s) * 1e6
            # Within a run the offsets count from its first trigger; the batch's from the batch's first.
            timings += group if not offset_us else [
                p.StageTiming(((self.device_clock.stamp_s(edges[1]) - first_trigger_s) * 1e6), t.readout_us,
                              t.inference_us, t.retrieval_us) for t, edges in zip(group, self.last_run_edges_s)]
            start = end
        return timings

    def _feed(self, index: int, tensor: np.ndarray) -> None:
        """Set input `index` (SET_INPUT, EVAL); TwinRefusal for an index, dtype or shape the model refuses."""
        model = self._require_model()
        tensor = checked_input(model.runner, index, tensor)
        shape = tensor.shape
        if shape != model.runner.inputs[index].shape or not model.info.resolved:
            self._reshape(model, index, shape)
        model.inputs[index] = tensor

    def _infer(self, count: int, request: str) -> p.Result:
        """RUN `count`: one real inference gives the outputs (the input does not change within a RUN);
        the timeline is generated for every one of the `count` inferences. A `no-invoke` firmware fault
        (`sim.device_faults`) answers with zero outputs and idle trigger pulses instead."""
        model = self._require_model()
        if count < 1:
            raise TwinRefusal(p.ErrorCode.BAD_PAYLOAD, f"RUN count must be >= 1, got {count}")
        self._require_resolved(model)
        outputs = model.runner.run_raw(model.inputs)
        check_result_fits(count, outputs)  # a RUN no RESULT could answer is refused before it runs
        start_s = self.clock_s
        fault = self.faults.take("firmware", request, 0) if self.faults.active else None
        if fault is not None and fault.kind == "no-invoke":
            outputs = [np.zeros_like(output) for output in outputs]
            timings = self._simulate_idle_runs(count, NO_INVOKE_PULSE_S)
        else:
            timings = self._simulate_runs(model.info, count)
        if self.realtime > 0:
            time.sleep((self.clock_s - start_s) * self.realtime)
        # Protocol v2: the RESULT names the model that ran, so the host can refuse a swapped one.
        return p.Result(timings=tuple(timings), outputs=tuple(outputs), model_sha256=model.sha256)

    @staticmethod
    def _require_resolved(model: _LoadedModel) -> None:
        if not model.info.resolved:
            raise TwinRefusal(p.ErrorCode.BAD_INPUT,
                              f"model {model.name!r} has dynamic input dimensions ({model.info.dynamic_text()}) "
                              "and no input has been set, so there is no size to time; send SET_INPUT with "
                              "the shape to measure first")

    def _rebooted(self, wipe_flash: bool) -> None:
        """A reset by a reboot fault: RAM is gone (active model, inputs, upload); flash survives unless wiped."""
        with self._lock:
            self.reboots += 1
            self._upload = None
            self._model = None
            if wipe_flash:
                self._flash.clear()

    def _reset(self, _: p.Reset) -> Sequence[p.Message]:
        self._upload = None
        self._model = None
        return [p.Ack(p.MsgType.RESET)]

    # -- model and timing ------------------------------------------------------------------------------
    def _activate(self, model_bytes: bytes, name: str) -> None:
        info = analyze_model(model_bytes, name=name)
        # The board's own loader refuses what its hardware cannot run (the IMX500's converter and packager
        # take quantized networks only), by the rule the plugin checks before any upload.
        reason = get_device_kind(self.profile.kind).refuses(info)
        if reason is not None:
            raise TwinRefusal(p.ErrorCode.UNSUPPORTED, f"model {name!r}: {reason}; convert it to a full-integer "
                                                       "(int8) model")
        if info.resolved:  # a dynamic model is checked against RAM at the shape it is fed
            self._check_ram(info, name)
        runner = ModelRunner(model_bytes)
        if info.resolved and info.dynamic_inputs:  # only the batch open: run at the batch analysed (1)
            runner.resize_inputs([spec.shape for spec in info.inputs])
        inputs = [np.zeros(spec.shape, dtype=spec.dtype) for spec in runner.inputs]
        self._model = _LoadedModel(hashlib.sha256(model_bytes).digest(), name, model_bytes, info, runner, inputs)
        # Loading costs flash-read time: 1 µs per KB keeps virtual time moving plausibly.
        self._advance("load", len(model_bytes) * 1e-9, self.profile.power.readout_w)

    def _check_ram(self, info: ModelInfo, name: str) -> None:
        if info.peak_activation_bytes > self.profile.ram_bytes:
            raise TwinRefusal(p.ErrorCode.MODEL_TOO_LARGE,
                              f"model {name!r} needs {info.peak_activation_bytes} bytes of activation memory "
                              f"(inputs {[list(s.shape) for s in info.inputs]}) but the {self.profile.kind} has "
                              f"{self.profile.ram_bytes} bytes of RAM")

    def _reshape(self, model: _LoadedModel, index: int, shape: tuple[int, ...]) -> None:
        """Resize the model to the shape fed at input `index`, re-count its cost there, check its RAM."""
        shapes = [tuple(s.shape) for s in model.runner.inputs]
        shapes[index] = shape
        try:
            info = analyze_model(model.data, name=model.name, input_shapes=shapes)
            self._check_ram(info, model.name)
            model.runner.resize_inputs(shapes)
        except ModelError as exc:
            raise TwinRefusal(p.ErrorCode.BAD_INPUT, f"model {model.name!r} cannot run at inputs {shapes}: {exc}") from exc
        model.info = info
        model.inputs = [t if tuple(t.shape) == s else np.zeros(s, dtype=t.dtype) for t, s in zip(model.inputs, shapes)]

    def _require_model(self) -> _LoadedModel:
        if self._model is None:
            raise TwinRefusal(p.ErrorCode.NO_MODEL, "no model loaded; upload one (LOAD_BEGIN, LOAD_CHUNK, "
                                                    "LOAD_END) or send SELECT_MODEL first")
        return self._model

