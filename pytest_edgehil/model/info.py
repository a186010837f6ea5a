"""Static analysis of a .tflite model, without running it: size, parameters, MACs, peak activation memory.

The flatbuffer is parsed with the schema bindings shipped in LiteRT (`ai_edge_litert.schema_py_generated`).
Only the main subgraph (index 0) is analysed; bodies of control-flow ops (WHILE, IF) run an unknown
number of times, so those ops are reported as unknown rather than guessed.

MACs (multiply-accumulates per inference):
  CONV_2D            H_out * W_out * C_out * K_h * K_w * C_in/groups   (times batch)
  CONV_3D            output elements * K_d * K_h * K_w * C_in
  DEPTHWISE_CONV_2D  H_out * W_out * C_out * K_h * K_w
  FULLY_CONNECTED    batch * in * out
  TRANSPOSE_CONV     H_in * W_in * C_in * K_h * K_w * C_out
  BATCH_MATMUL       output elements * K (the contracted dimension)
  pooling            output elements * window (K_h * K_w)
  reductions         input elements (MEAN, SUM, REDUCE_MAX, ARG_MAX, ...)
  elementwise        one op per output element (ADD, MUL, activations, QUANTIZE, SOFTMAX, RESIZE_*, ...);
                     DEQUANTIZE of constant weights counts 0 (LiteRT does it once, not per inference)
  data movement      0 (RESHAPE, CONCATENATION, PAD, TRANSPOSE, ...)
Any other op counts 0 and is listed in `ModelInfo.unknown_ops`; analysis never fails on an op.

Peak activation memory simulates the operator order with tensor lifetimes: a non-constant tensor is live
from the op that produces it (or the start, for graph inputs) to its last consumer (or the end, for graph
outputs); the peak is the largest sum of live tensor bytes at any op. It is what must fit the device's
RAM, and a lower bound on the tensor arena TFLM's planner needs (the planner adds alignment, fragmentation,
scratch buffers and per-op persistent data).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_edgehil.errors import ModelError
from pytest_edgehil.model.runtime import TensorSpec

try:
    from ai_edge_litert import schema_py_generated as schema
except ImportError:  # pragma: no cover - depends on the environment
    schema = None


@dataclass(frozen=True)
class ModelInfo:
    """What a model costs, read from its file. MACs are per inference; bytes are bytes."""

    name: str
    size_bytes: int
    sha256: str
    parameters: int
    macs: int
    peak_activation_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    op_counts: dict[str, int] = field(default_factory=dict)
    macs_by_op: dict[str, int] = field(default_factory=dict)
    weight_dtype: str = "none"  # dtype holding most weight elements: "int8", "float32", "float16", ...
    unknown_ops: tuple[str, ...] = ()  # op names the MAC count does not know (they count 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (dtypes as names, shapes as lists)."""
        data = asdict(self)
        data["inputs"] = [_spec_dict(s) for s in self.inputs]
        data["outputs"] = [_spec_dict(s) for s in self.outputs]
        data["unknown_ops"] = list(self.unknown_ops)
        return data


def _spec_dict(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": np.dtype(spec.dtype).name,
            "scale": spec.scale, "zero_point": spec.zero_point, "quantized": spec.quantized}


# TensorType name -> (numpy dtype used for TensorSpec, bits per element in memory).
_TYPES: dict[str, tuple[str, int]] = {
    "FLOAT32": ("float32", 32), "FLOAT16": ("float16", 16), "FLOAT64": ("float64", 64),
    "INT8": ("int8", 8), "UINT8": ("uint8", 8), "INT16": ("int16", 16), "UINT16": ("uint16", 16),
    "INT32": ("int32", 32), "UINT32": ("uint32", 32), "INT64": ("int64", 64), "UINT64": ("uint64", 64),
    "BOOL": ("bool", 8), "COMPLEX64": ("complex64", 64), "COMPLEX128": ("complex128", 128),
    # No numpy equivalent: stored in the nearest container, counted at their true width.
    "INT4": ("int8", 4), "UINT4": ("uint8", 4), "INT2": ("int8", 2), "BFLOAT16": ("uint16", 16),
    "FLOAT8_E4M3FN": ("uint8", 8), "FLOAT8_E5M2": ("uint8", 8),
    "STRING": ("object", 8), "RESOURCE": ("object", 0), "VARIANT": ("object", 0),
}

_ELEMENTWISE = frozenset({
    "ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "POW", "FLOOR_DIV",
    "FLOOR_MOD", "ATAN2", "ADD_N", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU",
    "PRELU", "LOGISTIC", "TANH", "HARD_SWISH", "ELU", "GELU", "EXP", "LOG", "SQRT", "RSQRT", "ABS",
    "NEG", "SQUARE", "SIN", "COS", "SIGN", "FLOOR", "CEIL", "ROUND", "QUANTIZE", "DEQUANTIZE", "CAST",
    "SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "EQUAL", "NOT_EQUAL",
    "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT",
    "SELECT", "SELECT_V2", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"
})
_POOLING = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"})
_REDUCTIONS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY",
                         "REDUCE_ALL", "ARG_MAX", "ARG_MIN", "CUMSUM"})
_DATA_MOVEMENT = frozenset({
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "PAD", "PADV2", "MIRROR_PAD", "TRANSPOSE",
    "STRIDED_SLICE", "SLICE", "GATHER", "GATHER_ND", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "SHAPE",
    "TILE", "BROADCAST_TO", "BROADCAST_ARGS", "FILL", "ZEROS_LIKE", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
    "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "REVERSE_V2", "RANGE",
    # resource-variable plumbing: reading or initializing weights, no arithmetic
    "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE",
})
# Input positions at which the compute ops take their weights and biases.
_WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "CONV_2D": (1, 2), "CONV_3D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3), "BATCH_MATMUL": (0, 1),
}


@dataclass
class _Graph:
    """The parts of the main subgraph the analysis needs, in plain Python types."""

    op_names: list[str]
    op_inputs: list[list[int]]
    op_outputs: list[list[int]]
    op_options: list[Any]
    shapes: list[tuple[int, ...]]
    types: list[str]
    constant: list[bool]
    variable: list[bool]
    quantized: list[bool]
    graph_inputs: list[int]
    graph_outputs: list[int]
    specs: list[TensorSpec]


def _elements(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _nbytes(graph: _Graph, tensor: int) -> int:
    bits = _TYPES.get(graph.types[tensor], ("", 8))[1]
    return (_elements(graph.shapes[tensor]) * bits + 7) // 8


def _name_tables() -> tuple[dict[int, str], dict[int, str]]:
    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return ops, types


def _parse(data: bytes, label: str) -> _Graph:
    if schema is None:
        raise ModelError("analysing .tflite files needs the 'ai-edge-litert' package (its flatbuffer schema); "
                         "install it in this environment")
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise ModelError(f"{label} is not a TFLite model (no 'TFL3' flatbuffer identifier); check that the "
                         f"file is a complete .tflite export and not a SavedModel, Keras or ONNX file")
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # a truncated flatbuffer fails anywhere inside the generated code
        raise ModelError(f"{label} has a TFL3 header but its flatbuffer is corrupt ({type(exc).__name__}: "
                         f"{exc}); re-export or re-download the model") from exc
    if not model.subgraphs:
        raise ModelError(f"{label} has no subgraphs; re-export the model")
    op_table, type_table = _name_tables()
    sub = model.subgraphs[0]
    buffers = model.buffers or []

    def op_name(index: int) -> str:
        code = model.operatorCodes[index]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = op_table.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            return f"CUSTOM:{custom}"
        return name

    tensors = sub.tensors or []
    shapes, types, constant, variable, quantized, specs = [], [], [], [], [], []
    for tensor in tensors:
        shape = tuple(max(int(d), 1) for d in (tensor.shape if tensor.shape is not None else ()))
        type_name = type_table.get(int(tensor.type), f"TYPE_{tensor.type}")
        buf = buffers[tensor.buffer] if 0 < tensor.buffer < len(buffers) else None
        has_data = buf is not None and ((buf.data is not None and len(buf.data) > 0) or (buf.offset or 0) > 1)
        q = tensor.quantization
        scales = [] if q is None or q.scale is None else list(q.scale)
        zero_points = [] if q is None or q.zeroPoint is None else list(q.zeroPoint)
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        shapes.append(shape)
        types.append(type_name)
        constant.append(has_data)
        variable.append(bool(tensor.isVariable))
        quantized.append(bool(scales))
        # I/O tensors carry one (per-tensor) scale; per-channel ones keep the first for the spec.
        specs.append(TensorSpec(name=name, shape=shape, dtype=np.dtype(_TYPES.get(type_name, ("uint8", 8))[0]),
                                scale=float(scales[0]) if scales else 0.0,
                                zero_point=int(zero_points[0]) if zero_points else 0))
    operators = sub.operators or []
    return _Graph(
        op_names=[op_name(op.opcodeIndex) for op in operators],
        op_inputs=[[int(i) for i in (op.inputs if op.inputs is not None else [])] for op in operators],
        op_outputs=[[int(i) for i in (op.outputs if op.outputs is not None else [])] for op in operators],
        op_options=[op.builtinOptions for op in operators],
        shapes=shapes, types=types, constant=constant, variable=variable, quantized=quantized,
        graph_inputs=[int(i) for i in (sub.inputs if sub.inputs is not None else [])],
        graph_outputs=[int(i) for i in (sub.outputs if sub.outputs is not None else [])],
        specs=specs,
    )


def _shape(graph: _Graph, ins: list[int], position: int) -> tuple[int, ...] | None:
    if position < len(ins) and ins[position] >= 0:
        return graph.shapes[ins[position]]
    return None


def _op_macs(graph: _Graph, op: int) -> int | None:
    """MACs of one operator, or None when the op is not one this module knows how to count."""
    name, ins, outs = graph.op_names[op], graph.op_inputs[op], graph.op_outputs[op]
    out_elems = _elements(graph.shapes[outs[0]]) if outs and outs[0] >= 0 else 0
    weights = _shape(graph, ins, 1)
    rule: dict[str, Callable[[], int]] = {
        # filter [C_out, K_h, K_w, C_in/groups]
        "CONV_2D": lambda: out_elems * _elements(weights[1:]) if weights else 0,
        # filter [K_d, K_h, K_w, C_in, C_out]
        "CONV_3D": lambda: out_elems * _elements(weights[:-1]) if weights else 0,
        # filter [1, K_h, K_w, C_out]
        "DEPTHWISE_CONV_2D": lambda: out_elems * _elements(weights[1:3]) if weights else 0,
        # weights [out, in]
        "FULLY_CONNECTED": lambda: out_elems * weights[-1] if weights else 0,
    }
    if name in rule:
        return rule[name]()
    if name == "TRANSPOSE_CONV":  # inputs: output_shape, filter [C_out, K_h, K_w, C_in], input, (bias)
        filt, data = _shape(graph, ins, 1), _shape(graph, ins, 2)
        return _elements(data) * _elements(filt[:3]) if filt and data else 0
    if name == "BATCH_MATMUL":
        lhs = _shape(graph, ins, 0)
        adj_x = bool(getattr(graph.op_options[op], "adjX", False))
        return out_elems * (lhs[-2] if adj_x else lhs[-1]) if lhs and len(lhs) >= 2 else 0
    if name in _POOLING:
        opts = graph.op_options[op]
        return out_elems * int(getattr(opts, "filterHeight", 1) or 1) * int(getattr(opts, "filterWidth", 1) or 1)
    if name in _REDUCTIONS:
        first = _shape(graph, ins, 0)
        return _elements(first) if first is not None else 0
    if name == "ADD_N":
        return out_elems * max(len(ins) - 1, 1)
    if name in _ELEMENTWISE:
        return out_elems
    if name in _DATA_MOVEMENT:
        return 0
    return None


def _constant_derived(graph: _Graph) -> set[int]:
    """Constants plus outputs of DEQUANTIZE applied to a constant (float16/int8-compressed weights)."""
    derived = {t for t, c in enumerate(graph.constant) if c}
    for op, name in enumerate(graph.op_names):
        if name == "DEQUANTIZE" and graph.op_inputs[op] and graph.op_inputs[op][0] in derived:
            derived.update(t for t in graph.op_outputs[op] if t >= 0)
    return derived


def _parameters_and_weight_dtype(graph: _Graph) -> tuple[int, str]:
    """Elements of constant weights/biases, and the dtype holding most weight elements."""
    weight_slots: set[int] = set()
    for op, name in enumerate(graph.op_names):
        for position in _WEIGHT_INPUTS.get(name, ()):
            ins = graph.op_inputs[op]
            if position < len(ins) and ins[position] >= 0:
                weight_slots.add(ins[position])
    # A weight stored compressed reaches its op through DEQUANTIZE: credit the stored constant.
    source = {out: graph.op_inputs[op][0] for op, name in enumerate(graph.op_names) if name == "DEQUANTIZE"
              and graph.op_inputs[op] for out in graph.op_outputs[op]}
    weight_slots = {source.get(t, t) for t in weight_slots}
    params: set[int] = set()
    for t, is_const in enumerate(graph.constant):
        if not is_const:
            continue
        # Shape/index operands (RESHAPE's shape, PAD's paddings) are int32 without quantization: not learned.
        learned = graph.types[t].startswith(("FLOAT", "BFLOAT")) or graph.quantized[t]
        if t in weight_slots or learned:
            params.add(t)
    # Weights kept as resource variables (a conversion that did not freeze them) are read each inference.
    params.update(t for op, name in enumerate(graph.op_names) if name == "READ_VARIABLE"
                  for t in graph.op_outputs[op] if t >= 0)
    dtype_elements: Counter[str] = Counter()
    for t in weight_slots:
        # Matrices and filters only (rank >= 2): biases are int32 in int8 models and do not set the dtype.
        if 0 <= t < len(graph.constant) and (graph.constant[t] or t in params) and len(graph.shapes[t]) >= 2:
            dtype_elements[graph.types[t].lower()] += _elements(graph.shapes[t])
    weight_dtype = dtype_elements.most_common(1)[0][0] if dtype_elements else "none"
    return sum(_elements(graph.shapes[t]) for t in params), weight_dtype


def _peak_activation_bytes(graph: _Graph, excluded: set[int]) -> int:
    n_ops = len(graph.op_names)
    if n_ops == 0:
        return sum(_nbytes(graph, t) for t in set(graph.graph_inputs) | set(graph.graph_outputs)
                   if t >= 0 and t not in excluded)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in graph.graph_inputs:
        first[t] = 0
    for op in range(n_ops):
        for t in graph.op_outputs[op]:
            first.setdefault(t, op)
            last[t] = max(last.get(t, op), op)
        for t in graph.op_inputs[op]:
            first.setdefault(t, op)  # read but never written: live from its first use
            last[t] = max(last.get(t, op), op)
    for t in graph.graph_outputs:
        first.setdefault(t, 0)
        last[t] = n_ops - 1
    for t, is_var in enumerate(graph.variable):
        if is_var:  # state (e.g. RNN) persists across the whole inference
            first[t], last[t] = 0, n_ops - 1
    delta = [0] * (n_ops + 1)
    for t, start in first.items():
        if t < 0 or t in excluded:
            continue
        size = _nbytes(graph, t)
        delta[start] += size
        delta[last.get(t, start) + 1] -= size
    live = peak = 0
    for op in range(n_ops):
        live += delta[op]
        peak = max(peak, live)
    return peak


def _analyze(data: bytes, sha256: str, label: str) -> ModelInfo:
    graph = _parse(data, label)
    op_counts: Counter[str] = Counter(graph.op_names)
    macs_by_op: Counter[str] = Counter()
    unknown: set[str] = set()
    constants = _constant_derived(graph)
    for op, name in enumerate(graph.op_names):
        # LiteRT dequantizes constant weights once, at the first invoke: no per-inference cost.
        weights_only = name == "DEQUANTIZE" and all(t in constants for t in graph.op_inputs[op] if t >= 0)
        macs = 0 if weights_only else _op_macs(graph, op)
        if macs is None:
            unknown.add(name)
        else:
            macs_by_op[name] += int(macs)
    parameters, weight_dtype = _parameters_and_weight_dtype(graph)
    return ModelInfo(
        name=label, size_bytes=len(data), sha256=sha256, parameters=parameters,
        macs=sum(macs_by_op.values()), peak_activation_bytes=_peak_activation_bytes(graph, constants),
        inputs=tuple(graph.specs[t] for t in graph.graph_inputs),
        outputs=tuple(graph.specs[t] for t in graph.graph_outputs),
        op_counts=dict(sorted(op_counts.items())), macs_by_op=dict(sorted(macs_by_op.items())),
        weight_dtype=weight_dtype, unknown_ops=tuple(sorted(unknown)),
    )


_CACHE: OrderedDict[str, ModelInfo] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


def analyze_model(model: bytes | bytearray | str | Path, name: str | None = None) -> ModelInfo:
    """Analyse a .tflite file (path) or its bytes. Results are cached by content hash (sha256).

    `name` defaults to the file's stem, or `model-<sha256 prefix>` for bytes.
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, label = bytes(model), None
    else:
        path = Path(model)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}; check the path") from exc
        label = str(path)
    sha256 = hashlib.sha256(data).hexdigest()
    display = name or (Path(label).stem if label else f"model-{sha256[:12]}")
    with _CACHE_LOCK:
        cached = _CACHE.get(sha256)
        if cached is not None:
            _CACHE.move_to_end(sha256)
    if cached is None:
        try:
            cached = _analyze(data, sha256, label or display)
        except (IndexError, KeyError, TypeError, ValueError, AttributeError) as exc:
            # Header and tables parse, but indices point nowhere: a hand-edited or damaged file.
            raise ModelError(f"{label or display} is a malformed TFLite model ({type(exc).__name__}: {exc}); "
                             f"re-export it, or check it with LiteRT's Interpreter") from exc
        with _CACHE_LOCK:
            _CACHE[sha256] = cached
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    # Fresh dicts so that a caller mutating its copy cannot alter the cached analysis.
    return replace(cached, name=display, op_counts=dict(cached.op_counts), macs_by_op=dict(cached.macs_by_op))
