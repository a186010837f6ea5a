"""Real LiteRT inference: the device twins' compute, and the host-side reference for accuracy checks.

`ModelRunner` wraps one LiteRT interpreter for one model and is reused for many inferences (tensors
are allocated once). `TensorSpec` describes one input or output tensor, including its affine
quantization (real = scale * (raw - zero_point)), and converts between float and raw values the way
TFLite's QUANTIZE / DEQUANTIZE kernels do.

Threads: a runner serializes its own invocations with a lock, so sharing one between threads is safe
but gives no parallelism; for parallel inference create one runner per thread.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_edgehil.errors import ModelError


def _load_interpreter_class() -> Any:
    """LiteRT's Interpreter, or tflite-runtime's where LiteRT is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        # Fallback only: tflite-runtime 2.14 (its last release) is built against numpy 1 and fails to
        # import under numpy 2, which is why LiteRT is the first choice.
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,no-redef]
        return Interpreter
    except ImportError as exc:
        raise ModelError("no TFLite interpreter is available: install 'ai-edge-litert' (or, with numpy<2, "
                         "'tflite-runtime') in this environment") from exc


@dataclass(frozen=True)
class TensorSpec:
    """One model input/output: name, static shape, raw dtype and per-tensor affine quantization.

    `scale == 0` means the tensor is not quantized (raw values are the real values).
    """

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)

    @property
    def size_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def quantize(self, values: np.ndarray | float) -> np.ndarray:
        """Real values -> raw values: round(x * (1/scale)) + zero_point, saturated to the dtype's range.

        Matches LiteRT's default (optimized) QUANTIZE kernel bit for bit: float32 multiply by the
        reciprocal scale, round half to even. TFLite's reference kernel and TFLM divide and round half
        away from zero instead, so on a microcontroller an input sitting exactly on a half step can land
        one step away; nothing else differs. An unquantized tensor just takes the dtype.
        """
        real = np.asarray(values, dtype=np.float32)
        if not self.quantized:
            return real.astype(self.dtype)
        if np.isnan(real).any():
            raise ModelError(f"tensor {self.name!r}: cannot quantize NaN values; check the input pipeline")
        scaled = real * (np.float32(1.0) / np.float32(self.scale))
        info = np.iinfo(self.dtype)
        # Clip while still float (float64 holds every int32 exactly) so huge or infinite inputs saturate.
        raw = np.clip(np.round(scaled).astype(np.float64) + self.zero_point, info.min, info.max)
        return raw.astype(self.dtype)

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        """Raw values -> real float32 values: scale * (raw - zero_point)."""
        values = np.asarray(raw)
        if not self.quantized:
            return values.astype(np.float32)
        if values.dtype.itemsize <= 2:
            # |raw - zero_point| < 2**17 is exact in float32, so float32 arithmetic rounds the exact product
            # once, as the int64/float64 form below does: the same bits, without passes over 8-byte copies
            # (a 20-image batch of 128x128 outputs: 0.07 ms instead of 2.6 ms).
            out = values.astype(np.float32)
            out -= np.float32(self.zero_point)
            out *= np.float32(self.scale)
            return out
        return ((values.astype(np.int64) - self.zero_point) * np.float32(self.scale)).astype(np.float32)

    def describe(self) -> str:
        """e.g. 'int8[1, 32, 32, 8] scale=0.00784 zp=-128' (for messages and the CLI)."""
        text = f"{np.dtype(self.dtype).name}{list(self.shape)}"
        return text + (f" scale={self.scale:.6g} zp={self.zero_point}" if self.quantized else "")


def only_batch_open(signature: Sequence[int]) -> bool:
    """Whether the only open dimension (-1) of an input's shape_signature is its leading batch, on an input
    of rank >= 2 (Keras's default signature [-1, H, W, C]; a rank-1 [-1] is a length, not a batch). TFLM and
    the boards run such a model at batch 1, and so do the analysis, the twins and the agent."""
    return len(signature) >= 2 and signature[0] < 0 and all(d >= 0 for d in signature[1:])


def _spec_from_details(details: dict[str, Any]) -> TensorSpec:
    scale, zero_point = details.get("quantization", (0.0, 0))
    return TensorSpec(name=str(details["name"]), shape=tuple(int(d) for d in details["shape"]),
                      dtype=np.dtype(details["dtype"]), scale=float(scale), zero_point=int(zero_point))


def _read_model(model: bytes | bytearray | str | Path) -> tuple[bytes, str]:
    """The model's bytes and a name for messages (the file name, or a short content hash)."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        return data, f"<model sha256:{hashlib.sha256(data).hexdigest()[:12]}>"
    path = Path(model)
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}; check the path") from exc


class ModelRunner:
    """One LiteRT interpreter for one model, ready for repeated inference.

    `run_raw` takes and returns tensors in their stored dtype (e.g. int8) — what travels to a device;
    `run` takes and returns float arrays, quantizing inputs and dequantizing outputs as needed.
    """

    def __init__(self, model: bytes | bytearray | str | Path, num_threads: int = 1,
                 name: str | None = None, *, default_delegates: bool = True) -> None:
        """`default_delegates=False` runs LiteRT's builtin kernels only (no XNNPACK): what the shape analysis
        uses, as it only prepares the graph (faster, and the kernels that size tensors are the reference ones)."""
        data, default_name = _read_model(model)
        self.name = name or default_name
        if num_threads < 1:
            raise ModelError(f"model {self.name}: num_threads must be >= 1, got {num_threads}")
        interpreter_class = _load_interpreter_class()
        options: dict[str, Any] = {}
        if not default_delegates:
            resolvers = importlib.import_module(interpreter_class.__module__).OpResolverType
            options["experimental_op_resolver_type"] = resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._interpreter = interpreter_class(model_content=data, num_threads=num_threads, **options)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"model {self.name} could not be loaded by LiteRT ({exc}); check that it is a "
                             f"complete .tflite flatbuffer and uses only builtin ops") from exc
        input_details = self._interpreter.get_input_details()
        self._input_indices = [int(d["index"]) for d in input_details]
        # -1 marks a dimension the model leaves open (dynamic height/width); `shape` then holds placeholders.
        self.input_signatures: tuple[tuple[int, ...], ...] = tuple(
            tuple(int(x) for x in d.get("shape_signature", d["shape"])) for d in input_details)
        self._lock = threading.Lock()
        self._read_specs()

    def _read_specs(self) -> None:
        input_details = self._interpreter.get_input_details()
        output_details = self._interpreter.get_output_details()
        self._output_indices = [int(d["index"]) for d in output_details]
        self.inputs: tuple[TensorSpec, ...] = tuple(_spec_from_details(d) for d in input_details)
        self.outputs: tuple[TensorSpec, ...] = tuple(_spec_from_details(d) for d in output_details)

    @property
    def dynamic(self) -> bool:
        """Whether any input has a dimension the model leaves open (shape_signature -1)."""
        return any(d < 0 for signature in self.input_signatures for d in signature)

    def check_input_shape(self, index: int, shape: Sequence[int]) -> tuple[int, ...]:
        """`shape` as a tuple if input `index` can take it: same rank, fixed dims equal, open dims >= 1.

        Raises ModelError naming the input, its signature and the shape asked for.
        """
        signature = self.input_signatures[index]
        wanted = tuple(int(d) for d in shape)
        fits = len(wanted) == len(signature) and all(
            (s < 0 and w >= 1) or w == s for s, w in zip(signature, wanted))
        if not fits:
            raise ModelError(f"model {self.name}, input {self.inputs[index].name!r}: shape {list(wanted)} does not "
                             f"fit its signature {list(signature)} (-1 = any size >= 1, other dims fixed); give a "
                             "shape with the model's rank and fixed dimensions")
        return wanted

    def resize_inputs(self, shapes: Sequence[Sequence[int]]) -> None:
        """Give each input a concrete shape (LiteRT `resize_tensor_input` + `allocate_tensors`).

        Needed before running a model with dynamic dimensions at the size actually fed; `inputs` and
        `outputs` then describe the new shapes. ModelError if a shape does not fit the input's signature.
        """
        if len(shapes) != len(self.inputs):
            raise ModelError(f"model {self.name} takes {len(self.inputs)} input tensor(s), got {len(shapes)} shapes")
        wanted = [self.check_input_shape(i, shape) for i, shape in enumerate(shapes)]
        with self._lock:
            if all(w == spec.shape for w, spec in zip(wanted, self.inputs)):
                return
            try:
                for index, shape in zip(self._input_indices, wanted):
                    self._interpreter.resize_tensor_input(index, list(shape), strict=True)
                self._interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"model {self.name}: LiteRT cannot run it at input shapes "
                                 f"{[list(w) for w in wanted]} ({exc})") from exc
            self._read_specs()

    def tensor_shapes(self, subgraph: int = 0) -> dict[int, tuple[int, ...]]:
        """Shape of every tensor of `subgraph` (0: the main one) at the current input shapes, by tensor index,
        as LiteRT's kernels computed them when the graph was prepared. (LiteRT adds scratch tensors after the
        file's: their indices are past the file's tensors.)"""
        with self._lock:
            details = (self._interpreter.get_tensor_details() if subgraph == 0
                       else self._interpreter.get_tensor_details(subgraph_index=subgraph))
            return {int(d["index"]): tuple(int(x) for x in d["shape"]) for d in details}

    def __repr__(self) -> str:
        return f"ModelRunner({self.name}, inputs={[s.describe() for s in self.inputs]})"

    def _check_inputs(self, tensors: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(tensors) != len(self.inputs):
            raise ModelError(f"model {self.name} takes {len(self.inputs)} input tensor(s), got {len(tensors)}")
        checked = []
        for spec, tensor in zip(self.inputs, tensors):
            array = np.asarray(tensor)
            if tuple(array.shape) != spec.shape or array.dtype != spec.dtype:
                raise ModelError(f"model {self.name}, input {spec.name!r}: expected "
                                 f"{np.dtype(spec.dtype).name}{list(spec.shape)}, got "
                                 f"{array.dtype.name}{list(array.shape)}; reshape/convert the input "
                                 f"(ModelRunner.run quantizes float inputs for you)")
            checked.append(np.ascontiguousarray(array))
        return checked

    def run_raw(self, tensors: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One inference on raw-dtype tensors; returns copies of the raw outputs, in model order."""
        checked = self._check_inputs(tensors)
        with self._lock:
            for index, array in zip(self._input_indices, checked):
                self._interpreter.set_tensor(index, array)
            try:
                self._interpreter.invoke()
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"model {self.name}: inference failed in LiteRT ({exc})") from exc
            return [np.array(self._interpreter.get_tensor(index)) for index in self._output_indices]

    def run_raw_timed(self, tensors: Sequence[np.ndarray], clock_ns: Callable[[], int],
                      mark_invoke: Callable[[bool], None] | None = None,
                      ) -> tuple[list[np.ndarray], tuple[int, int, int, int]]:
        """`run_raw` with its three stages stamped on `clock_ns` (an on-board agent: `time.monotonic_ns`):
        (outputs, (copy-in start, invoke start, invoke end, copy-out end) in ns). `mark_invoke(True)` is
        called just after the invoke-start stamp and `mark_invoke(False)` just after the invoke-end stamp
        (also when invoke fails): a trigger line driven by it lags both stamps alike, so its pulse is the
        inference stage the protocol's `start_us` and `inference_us` describe (docs/protocol.md, RESULT)."""
        checked = self._check_inputs(tensors)
        with self._lock:
            t0 = clock_ns()
            for index, array in zip(self._input_indices, checked):
                self._interpreter.set_tensor(index, array)
            t1 = clock_ns()
            if mark_invoke is not None:
                mark_invoke(True)
            try:
                self._interpreter.invoke()
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"model {self.name}: inference failed in LiteRT ({exc})") from exc
            finally:
                t2 = clock_ns()
                if mark_invoke is not None:
                    mark_invoke(False)
            outputs = [np.array(self._interpreter.get_tensor(index)) for index in self._output_indices]
            t3 = clock_ns()
        return outputs, (t0, t1, t2, t3)

    def run(self, tensors: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One inference on float inputs; returns float32 outputs (dequantized where quantized)."""
        if len(tensors) != len(self.inputs):
            raise ModelError(f"model {self.name} takes {len(self.inputs)} input tensor(s), got {len(tensors)}")
        raw_inputs = []
        for spec, tensor in zip(self.inputs, tensors):
            array = np.asarray(tensor)
            if tuple(array.shape) != spec.shape:
                raise ModelError(f"model {self.name}, input {spec.name!r}: expected shape {list(spec.shape)}, "
                                 f"got {list(array.shape)}")
            raw_inputs.append(spec.quantize(array))
        raw_outputs = self.run_raw(raw_inputs)
        return [spec.dequantize(raw) for spec, raw in zip(self.outputs, raw_outputs)]
