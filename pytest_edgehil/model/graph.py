"""A .tflite file's subgraphs as plain Python data, every size checked: the input of `info.py`.

The flatbuffer is parsed with the schema bindings shipped in LiteRT (`ai_edge_litert.schema_py_generated`).
Nothing read from the file is trusted: shapes are multiplied with Python ints (a 64-bit product wraps,
and a wrapped product once let a 2^63-byte activation pass a footprint budget), every tensor is bounded
by `MAX_TENSOR_ELEMENTS`, and a constant whose shape needs more bytes than its buffer holds is refused
(unless it is stored sparse: then the buffer holds only its non-zero values, for DENSIFY to expand).
Every failure is a ModelError naming the file and the tensor.

Dynamic dimensions: a model converted with a dynamic height/width stores `shape` [1, 1, 1, C] and
`shape_signature` [1, -1, -1, C]. The 1s are placeholders, not the model's size, so the graph keeps the
signature (`Graph.signatures`) and `Graph.with_shapes` substitutes the shapes LiteRT computes (`shapes.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_edgehil.errors import ModelError
from pytest_edgehil.model.runtime import TensorSpec

try:
    from ai_edge_litert import schema_py_generated as schema
except ImportError:  # pragma: no cover - depends on the environment
    schema = None

# 2^40 elements (1 Ti): far above any tensor an edge model has (a 4K RGB frame is 2^25), far below
# where products of 32-bit dims stop meaning anything. A larger tensor is a corrupt or hand-edited file.
MAX_TENSOR_ELEMENTS = 1 << 40

# TensorType name -> (numpy dtype used for TensorSpec, bits per element in memory).
TYPES: dict[str, tuple[str, int]] = {
    "FLOAT32": ("float32", 32), "FLOAT16": ("float16", 16), "FLOAT64": ("float64", 64),
    "INT8": ("int8", 8), "UINT8": ("uint8", 8), "INT16": ("int16", 16), "UINT16": ("uint16", 16),
    "INT32": ("int32", 32), "UINT32": ("uint32", 32), "INT64": ("int64", 64), "UINT64": ("uint64", 64),
    "BOOL": ("bool", 8), "COMPLEX64": ("complex64", 64), "COMPLEX128": ("complex128", 128),
    # No numpy equivalent: stored in the nearest container, counted at their true width.
    "INT4": ("int8", 4), "UINT4": ("uint8", 4), "INT2": ("int8", 2), "BFLOAT16": ("uint16", 16),
    "FLOAT8_E4M3FN": ("uint8", 8), "FLOAT8_E5M2": ("uint8", 8),
    "STRING": ("object", 8), "RESOURCE": ("object", 0), "VARIANT": ("object", 0),
}


@dataclass
class Graph:
    """The parts of one subgraph the analysis needs, in plain Python types (shapes as int tuples)."""

    label: str
    op_names: list[str]
    op_inputs: list[list[int]]
    op_outputs: list[list[int]]
    op_options: list[Any]
    names: list[str]
    shapes: list[tuple[int, ...]]
    signatures: list[tuple[int, ...] | None]  # shape_signature where the file has one (-1 = dynamic)
    types: list[str]
    constant: list[bool]
    variable: list[bool]
    quantized: list[bool]
    graph_inputs: list[int]
    graph_outputs: list[int]
    specs: list[TensorSpec]
    index: int = 0  # which subgraph of the file (0: the main graph)
    # Per tensor: the buffer holding a constant's data (0: none). The converter stores equal constants once
    # and points every tensor that has them at one buffer.
    buffers: list[int] = field(default_factory=list)
    zero: list[bool] = field(default_factory=list)  # a constant whose stored bytes are all zero
    calls: list[tuple[int, ...]] = field(default_factory=list)  # per op: the subgraphs it invokes
    # Per tensor: whether the file states its shape: False for no shape vector at all (unknown rank, read as
    # a scalar as LiteRT reads it) or a dimension <= 0 (a placeholder, read as 1), until LiteRT's kernels size
    # it (`shapes.py`).
    shape_stated: list[bool] = field(default_factory=list)

    def elements(self, tensor: int) -> int:
        """Element count of a tensor (Python int, bounded when the graph was built)."""
        return math.prod(self.shapes[tensor])

    def nbytes(self, tensor: int) -> int:
        bits = TYPES.get(self.types[tensor], ("", 8))[1]
        return (self.elements(tensor) * bits + 7) // 8

    def dynamic_dims(self, tensor: int) -> tuple[int, ...]:
        """Axes whose size the file leaves open (-1 in shape_signature)."""
        signature = self.signatures[tensor]
        return tuple(axis for axis, d in enumerate(signature or ()) if d < 0)

    def with_shapes(self, shapes: Mapping[int, tuple[int, ...]]) -> Graph:
        """A copy with the given tensors' shapes replaced (e.g. those LiteRT computed for a concrete input);
        each new shape is checked like the file's own."""
        new_shapes = list(self.shapes)
        specs = list(self.specs)
        for tensor, shape in shapes.items():
            if 0 <= tensor < len(new_shapes):
                new_shapes[tensor] = checked_shape(shape, self.label, self.names[tensor])
                specs[tensor] = replace(specs[tensor], shape=new_shapes[tensor])
        return replace(self, shapes=new_shapes, specs=specs)


def checked_shape(dims: Any, label: str, tensor: str) -> tuple[int, ...]:
    """A shape as Python ints, placeholders (<= 0, e.g. -1) read as 1, the product bounded."""
    shape = tuple(max(int(d), 1) for d in (dims if dims is not None else ()))
    count = math.prod(shape)
    if count > MAX_TENSOR_ELEMENTS:
        raise ModelError(f"{label}: tensor {tensor!r} declares shape {list(shape)} = {count:.3g} elements, more "
                         f"than the {MAX_TENSOR_ELEMENTS:.3g} any edge model can hold; the file is corrupt or "
                         "hand-edited: re-export or re-download the model")
    return shape


def _name_tables() -> tuple[dict[int, str], dict[int, str]]:
    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return ops, types


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _buffer_bytes(buf: Any) -> int:
    """Bytes a buffer holds: inline data, or `size` for data stored after the flatbuffer (offset > 1)."""
    if buf is None:
        return 0
    if buf.data is not None and len(buf.data) > 0:
        return len(buf.data)
    return int(buf.size or 0) if (buf.offset or 0) > 1 else 0


def _all_zero(buf: Any, data: bytes) -> bool:
    """Whether a buffer's stored bytes are all zero (inline, or after the flatbuffer at `offset`)."""
    if buf.data is not None and len(buf.data) > 0:
        return not np.any(np.asarray(buf.data))
    offset, size = int(buf.offset or 0), int(buf.size or 0)
    return not any(data[offset:offset + size])


def _called_subgraphs(op: Any) -> tuple[int, ...]:
    """Subgraphs an operator invokes: WHILE's cond and body, IF's branches, CALL_ONCE's init, and the
    StableHLO ops' bodies (every `...SubgraphIndex` / `branchSubgraphIndices` field of its options)."""
    called: list[int] = []
    for opts in (op.builtinOptions, op.builtinOptions2):
        for key, value in getattr(opts, "__dict__", {}).items():
            if key.endswith("SubgraphIndex") or (key == "subgraph" and isinstance(value, int)):
                called.append(int(value))
            elif key == "branchSubgraphIndices" and value is not None:
                called.extend(int(v) for v in value)
    return tuple(called)


def parse_model(data: bytes, label: str) -> list[Graph]:
    """Every subgraph of `data`, the main one (index 0) first; ModelError naming `label` for anything that is
    not a sound TFLite file."""
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

    def op_name(index: int) -> str:
        code = model.operatorCodes[index]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = op_table.get(builtin, f"BUILTIN_{builtin}")
        return f"CUSTOM:{_text(code.customCode)}" if name == "CUSTOM" else name

    _refuse_external_buffers(model, label)
    return [_parse_subgraph(sub, index, model.buffers or [], data, label, type_table, op_name)
            for index, sub in enumerate(model.subgraphs)]


def _refuse_external_buffers(model: Any, label: str) -> None:
    """A tensor whose data lives in another file (`Tensor.external_buffer`, schema v3b): the .tflite alone is
    not the model. Its size would leave those weights out, its parameters miss them and its activations
    count them, and LiteRT here cannot load them ("Input tensor lacks data"): refused, naming the tensor."""
    groups = [_text(g.name) for g in (model.externalBufferGroups or [])]
    external = {int(b.id): b for b in (model.externalBuffers or [])}
    for index, sub in enumerate(model.subgraphs):
        for tensor in sub.tensors or []:
            if not tensor.externalBuffer:
                continue
            buf = external.get(int(tensor.externalBuffer))
            group = int(buf.group) if buf is not None else -1
            where = f"file {groups[group]!r}" if 0 <= group < len(groups) else "a file the model does not name"
            size = f", {int(buf.length):,} bytes" if buf is not None else ""
            raise ModelError(f"{label}: tensor {_text(tensor.name)!r} (subgraph {index}) keeps its data in an "
                             f"external buffer ({where}{size}): the .tflite alone is not the model, so its size, "
                             "parameters and activation memory cannot be read from it, and LiteRT cannot load it; "
                             "export the model with its weights inside the file")


def _parse_subgraph(sub: Any, index: int, buffers: list[Any], data: bytes, label: str, type_table: dict[int, str],
                    op_name: Any) -> Graph:
    where = label if index == 0 else f"{label} (subgraph {index})"
    names: list[str] = []
    shapes: list[tuple[int, ...]] = []
    signatures: list[tuple[int, ...] | None] = []
    types, constant, variable, quantized, specs, buffer_ids, zero, shape_stated = [], [], [], [], [], [], [], []
    for tensor in sub.tensors or []:
        name = _text(tensor.name)
        shape = checked_shape(tensor.shape, where, name)
        signature = tensor.shapeSignature
        type_name = type_table.get(int(tensor.type), f"TYPE_{tensor.type}")
        buf = buffers[tensor.buffer] if 0 < tensor.buffer < len(buffers) else None
        stored = _buffer_bytes(buf)
        bits = TYPES.get(type_name, ("", 0))[1]
        needed = (math.prod(shape) * bits + 7) // 8
        # A sparse constant (tensor.sparsity) stores only its non-zero values: fewer bytes than its shape.
        if stored and type_name != "STRING" and tensor.sparsity is None and needed > stored:
            raise ModelError(f"{where}: constant tensor {name!r} declares shape {list(shape)} ({needed:,} bytes of "
                             f"{type_name}) but its buffer holds {stored:,} bytes; the file is corrupt or "
                             "hand-edited: re-export or re-download the model")
        q = tensor.quantization
        scales = [] if q is None or q.scale is None else list(q.scale)
        zero_points = [] if q is None or q.zeroPoint is None else list(q.zeroPoint)
        names.append(name)
        shapes.append(shape)
        shape_stated.append(tensor.shape is not None and all(int(d) >= 1 for d in tensor.shape))
        signatures.append(None if signature is None or len(signature) == 0 else tuple(int(d) for d in signature))
        types.append(type_name)
        constant.append(stored > 0)
        buffer_ids.append(int(tensor.buffer) if stored else 0)
        zero.append(bool(stored) and _all_zero(buf, data))
        variable.append(bool(tensor.isVariable))
        quantized.append(bool(scales))
        # I/O tensors carry one (per-tensor) scale; per-channel ones keep the first for the spec.
        specs.append(TensorSpec(name=name, shape=shape, dtype=np.dtype(TYPES.get(type_name, ("uint8", 8))[0]),
                                scale=float(scales[0]) if scales else 0.0,
                                zero_point=int(zero_points[0]) if zero_points else 0))
    operators = sub.operators or []
    return Graph(
        label=label,
        op_names=[op_name(op.opcodeIndex) for op in operators],
        op_inputs=[[int(i) for i in (op.inputs if op.inputs is not None else [])] for op in operators],
        op_outputs=[[int(i) for i in (op.outputs if op.outputs is not None else [])] for op in operators],
        op_options=[op.builtinOptions for op in operators],
        names=names, shapes=shapes, signatures=signatures, types=types, constant=constant, variable=variable,
        quantized=quantized,
        graph_inputs=[int(i) for i in (sub.inputs if sub.inputs is not None else [])],
        graph_outputs=[int(i) for i in (sub.outputs if sub.outputs is not None else [])],
        specs=specs, index=index, buffers=buffer_ids, zero=zero,
        calls=[_called_subgraphs(op) for op in operators], shape_stated=shape_stated,
    )
