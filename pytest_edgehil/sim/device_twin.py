"""A device twin: firmware behaviour of one board, served over a real pseudo-terminal.

The twin speaks the same protocol module as the host (`pytest_edgehil.link.messages`) through the generic
pty link (`pytest_edgehil.sim.pty_link`), runs the model for real with LiteRT, and derives stage timings
and power from its `DeviceProfile` and the MACs counted in the model at the shape actually fed: a model
with dynamic height/width is resized (LiteRT `resize_tensor_input`) to each SET_INPUT's shape and timed
from the MACs at that shape; a RUN before any input of such a model is refused with the reason. Whether
it is timed as int8 or float follows the dtype its convolutions compute in, not its input dtype. It runs on a virtual clock: a
RUN of 100 inferences of 19 ms answers at once, but every span it reports (and records on the bench's
`ActivityTimeline` for the analyzer twin) is consistent in virtual time.

Faults (`sim/device_faults.py`) act on the line through the pty link; a reboot fault also resets the
twin as firmware resets: the active model, its inputs and any upload in progress are lost, the models in
flash are kept (unless the fault wipes flash), and the board comes back on a new pty path, published
under its USB serial number (`usb_serial`, the same string HELLO reports) for the host to find.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from typing_extensions import Self

from pytest_edgehil.errors import ModelError
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.device_side import DeviceRefusal, ModelUpload, require_upload
from pytest_edgehil.model.info import ModelInfo, analyze_model
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.bench_physics import BenchPhysics, DeviceClock, layer_segments, session_factor
from pytest_edgehil.sim.device_faults import DeviceFaultPlan
from pytest_edgehil.sim.profile import DeviceProfile, FrameReadout
from pytest_edgehil.sim.pty_link import REPLY_CACHE, PtyEndpoint, serve_pty
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

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


class DeviceTwin:
    """One simulated board. `start()` serves it on a pty and returns the port path pyserial opens."""

    def __init__(self, profile: DeviceProfile, name: str, *, seed: int = 0,
                 timeline: ActivityTimeline | None = None, faults: DeviceFaultPlan | None = None,
                 realtime: float = 0.0, physics: BenchPhysics | None = None, as_board: bool = False) -> None:
        self.profile = profile
        # A stand-in for a real board (tests of the hardware path, `--backend hw`): HELLO then carries none
        # of the marks of simulated firmware (bring_up.simulated_firmware), so the host treats it as a board.
        self.as_board = as_board
        self.realtime = realtime  # > 0: a RUN sleeps its simulated span × this (parallel speed-up checks)
        self.name = name
        # Stable across reboots, like a board's USB serial number; HELLO reports the same string.
        self.usb_serial = f"SIM-{zlib.crc32(name.encode()):08X}"
        self.faults = faults if faults is not None else DeviceFaultPlan()
        self.reboots = 0
        # Bench effects (sim.bench_physics): none unless given; the bench passes the lab's (defaults on).
        self.physics = physics or BenchPhysics.ideal()
        # Seed from the device name too, so two boards of one kind do not jitter in lockstep.
        self._rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        self.device_clock = DeviceClock(self.physics)
        self.power_factor = session_factor(self.physics, np.random.default_rng([seed, 7, zlib.crc32(name.encode())]))
        self.timeline = timeline or ActivityTimeline(profile.power.idle_w * self.power_factor, profile.supply_v)
        # True (analyzer-clock) instants of the last RUN's edges: (readout start, trigger, inference end,
        # retrieval end) per inference. What the meter is checked against; the device reports stamps.
        self.last_run_edges_s: list[tuple[float, float, float, float]] = []
        self.clock_s = 0.0
        self._flash: dict[bytes, bytes] = {}  # models stored on the device, by SHA-256
        self._upload: ModelUpload | None = None
        self._model: _LoadedModel | None = None
        self._endpoint: PtyEndpoint | None = None
        self._lock = threading.Lock()
        self._plan: tuple[ModelInfo, tuple[float, float, float], list[tuple[float, float]], float] | None = None
        self._handlers: dict[type, Callable[..., Sequence[p.Message]]] = {
            p.Hello: self._hello,
            p.LoadBegin: self._load_begin,
            p.LoadChunk: self._load_chunk,
            p.LoadEnd: self._load_end,
            p.SelectModel: self._select_model,
            p.SetInput: self._set_input,
            p.Run: self._run,
            p.Eval: self._eval,
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
                                 p.EVAL_CAPABILITY, f"{p.PIPELINE_CAPABILITY}{REPLY_CACHE}")
        firmware, serial = self.profile.firmware, self.usb_serial
        if self.as_board:  # what a board's firmware would say: no "-twin" name, no SIM- serial, no capability
            words = firmware.split(maxsplit=1)
            firmware = " ".join([words[0].removesuffix("-twin"), *words[1:]])
            serial = "BOARD-" + serial.removeprefix("SIM-")
        else:
            caps += ("simulated",)
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
                                                    "in flash; upload it with LOAD_MODEL")
        self._activate(model, "flash")
        return [p.Ack(p.MsgType.SELECT_MODEL)]

    def _set_input(self, msg: p.SetInput) -> Sequence[p.Message]:
        model = self._require_model()
        specs = model.runner.inputs
        if not 0 <= msg.index < len(specs):
            raise TwinRefusal(p.ErrorCode.BAD_INPUT, f"input index {msg.index}; the model has {len(specs)}")
        spec = specs[msg.index]
        tensor = np.asarray(msg.tensor)
        signature = model.runner.input_signatures[msg.index]
        if tensor.dtype != spec.dtype or not _fits(tuple(tensor.shape), signature):
            raise TwinRefusal(p.ErrorCode.BAD_INPUT,
                              f"input {msg.index} is {tensor.dtype}{list(tensor.shape)}, "
                              f"the model expects {np.dtype(spec.dtype)}{list(signature)} (-1: any size)")
        if tuple(tensor.shape) != tuple(spec.shape) or not model.info.resolved:
            self._reshape(model, msg.index, tuple(tensor.shape))
        model.inputs[msg.index] = tensor
        return [p.Ack(p.MsgType.SET_INPUT)]

    def _run(self, msg: p.Run) -> Sequence[p.Message]:
        model = self._require_model()
        if msg.count < 1:
            raise TwinRefusal(p.ErrorCode.BAD_PAYLOAD, f"RUN count must be >= 1, got {msg.count}")
        if not model.info.resolved:
            raise TwinRefusal(p.ErrorCode.BAD_INPUT,
                              f"model {model.name!r} has dynamic input dimensions ({model.info.dynamic_text()}) "
                              "and no input has been set, so there is no size to time; send SET_INPUT with "
                              "the shape to measure first")
        # One real inference gives the outputs (the input does not change within a RUN);
        # the timeline is generated for every one of the `count` inferences.
        outputs = model.runner.run_raw(model.inputs)
        start_s = self.clock_s
        self.timeline.set_busy(True)  # a capture waiting on this RUN's spans waits until they are all there
        try:
            timings = self._simulate_runs(model.info, msg.count)
        finally:
            self.timeline.set_busy(False)
        if self.realtime > 0:
            time.sleep((self.clock_s - start_s) * self.realtime)
        # Protocol v2: the RESULT names the model that ran, so the host can refuse a swapped one.
        return [p.Result(timings=tuple(timings), outputs=tuple(outputs), model_sha256=model.sha256)]

    def _eval(self, msg: p.Eval) -> Sequence[p.Message]:
        """EVAL: each input as SET_INPUT sets it, then RUN 1; a refused input runs nothing."""
        for index, tensor in msg.inputs:
            self._set_input(p.SetInput(index, tensor))
        return self._run(p.Run(1))

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
        if info.resolved:  # a dynamic model is checked against RAM at the shape it is fed
            self._check_ram(info, name)
        runner = ModelRunner(model_bytes)
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

    def nominal_stage_s(self, info: ModelInfo) -> tuple[float, float, float]:
        """(readout, inference, retrieval) seconds without jitter: what calibration is checked against.

        Timed as float when the model's convolutions/matmuls compute in float (`ModelInfo.compute_dtype`),
        so an int8 graph with float32 I/O (QUANTIZE in front, DEQUANTIZE behind) runs at the int8 rate.
        ModelError if the model has dynamic dimensions and `info` was not analysed at a concrete shape.
        """
        float_model = float_compute(info)
        output_bytes = sum(math.prod(s.shape) * np.dtype(s.dtype).itemsize for s in info.outputs)
        return (self._readout(info).readout_s,
                self.profile.inference_s(info.macs, info.elementwise_ops, float_model=float_model),
                self.profile.retrieval_s(output_bytes))

    def _readout(self, info: ModelInfo) -> FrameReadout:
        """The sensor readout (time, power) of the frame the model consumes (`DeviceProfile.readout`)."""
        return self.profile.readout(tuple(info.inputs[0].shape) if info.inputs else None)

    def _jittered(self, nominal_s: tuple[float, float, float]) -> tuple[float, float, float]:
        """The three stage times with jitter: one draw of three normals (the same stream as three
        single draws, so a seed gives the same timings as before this was batched)."""
        rel = self.profile.jitter_rel
        z0, z1, z2 = self._rng.standard_normal(3).tolist()
        return (nominal_s[0] * min(max(1.0 + rel * z0, 0.5), 1.5), nominal_s[1] * min(max(1.0 + rel * z1, 0.5), 1.5),
                nominal_s[2] * min(max(1.0 + rel * z2, 0.5), 1.5))

    def _stage_plan(self, info: ModelInfo) -> tuple[tuple[float, float, float], list[tuple[float, float]], float]:
        """Nominal stage times, inference power segments and readout power of `info`, computed once per
        analysed model (a new shape brings a new ModelInfo): recounting them per RUN was a third of a
        RUN 1's twin cost."""
        if self._plan is None or self._plan[0] is not info:
            nominal = self.nominal_stage_s(info)
            segments = layer_segments(info.macs_by_op, self.profile.inference_overhead_s, nominal[1],
                                      self.physics.layer_power_rel)
            self._plan = (info, nominal, segments, self._readout(info).readout_w)
        return self._plan[1], self._plan[2], self._plan[3]

    def _simulate_runs(self, info: ModelInfo, count: int) -> list[p.StageTiming]:
        nominal, segments, readout_w = self._stage_plan(info)
        power, factor, stamp = self.profile.power, self.power_factor, self.device_clock.stamp_s
        timings: list[p.StageTiming] = []
        self.last_run_edges_s = []
        first_stamp_s: float | None = None
        for run_index in range(count):
            r, i, q = self._jittered(nominal)
            readout_start_s = self.clock_s
            self._advance("readout", r, readout_w * factor, run_index=run_index)
            trigger_s = self.clock_s
            for fraction, level in segments:  # power varies within the stage (bench_physics.layer_segments)
                self._advance("inference", i * fraction, power.inference_w * factor * level, trigger_high=True,
                              run_index=run_index)
            self.clock_s = trigger_s + i  # the segments' round-off must not move the stage's end
            inference_end_s = self.clock_s
            self._advance("retrieval", q, power.retrieval_w * factor, run_index=run_index)
            self.last_run_edges_s.append((readout_start_s, trigger_s, inference_end_s, self.clock_s))
            # The firmware stamps each edge on its own timer (rate error, resolution) and reports differences.
            s0, s1, s2, s3 = (stamp(x) for x in (readout_start_s, trigger_s, inference_end_s, self.clock_s))
            first_stamp_s = s1 if first_stamp_s is None else first_stamp_s
            timings.append(p.StageTiming(start_us=(s1 - first_stamp_s) * 1e6, readout_us=(s1 - s0) * 1e6,
                                         inference_us=(s2 - s1) * 1e6, retrieval_us=(s3 - s2) * 1e6))
        return timings

    def _advance(self, stage: str, duration_s: float, power_w: float, *, trigger_high: bool = False,
                 run_index: int = -1) -> None:
        span = StageSpan(stage, self.clock_s, self.clock_s + duration_s, power_w, trigger_high, run_index)
        self.timeline.append(span)
        self.clock_s = span.end_s

    def _advance_idle(self, duration_s: float) -> None:
        self._advance("idle", duration_s, self.profile.power.idle_w * self.power_factor)

    def _require_model(self) -> _LoadedModel:
        if self._model is None:
            raise TwinRefusal(p.ErrorCode.NO_MODEL, "no model loaded; send LOAD_MODEL or SELECT_MODEL first")
        return self._model


def _fits(shape: tuple[int, ...], signature: tuple[int, ...]) -> bool:
    """Whether a fed shape fits an input's shape_signature (-1: any size >= 1)."""
    return len(shape) == len(signature) and all((s < 0 and d >= 1) or d == s for d, s in zip(shape, signature))


def float_compute(info: ModelInfo) -> bool:
    """Whether a twin times `info` at the float rate: its conv/matmul ops compute in float. A model
    without such ops falls back on its input dtype (nothing else says what its arithmetic is)."""
    if info.compute_dtype != "none":
        return not info.integer_compute
    return bool(info.inputs) and np.issubdtype(np.dtype(info.inputs[0].dtype), np.floating)
