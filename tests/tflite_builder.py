"""Hand-written .tflite files for footprint tests: several subgraphs, shared buffers, quantization, sparsity.

Built with the flatbuffer schema LiteRT ships (no TensorFlow). A subgraph is a list of tensors and operators
in execution order; `build` packs subgraphs into one model, subgraph 0 first (the main graph). Expected
figures in the tests are computed from the shapes written here, never read from the analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")

BYTES = {"FLOAT32": 4, "FLOAT16": 2, "INT8": 1, "UINT8": 1, "INT16": 2, "INT32": 4, "INT64": 8, "BOOL": 1}


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...] | None  # None: no shape vector in the file at all (unknown rank)
    dtype: str = "FLOAT32"
    data: bytes | None = None  # constant contents; None: an activation (or a shared buffer, see `same_buffer_as`)
    scales: list[float] | None = None  # quantization, one scale per channel (or one per tensor)
    same_buffer_as: str | None = None  # reuse another constant's buffer (what the converter does for equal data)
    sparsity: Any = None  # schema.SparsityParametersT: `data` then holds only the stored values
    signature: tuple[int, ...] | None = None  # shape_signature (-1: a dimension the model leaves open)


@dataclass
class Subgraph:
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[tuple[str, list[str], list[str], Any]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def tensor(self, name: str, shape: tuple[int, ...] | None, dtype: str = "FLOAT32", *, const: bool = False,
               data: bytes | None = None, **extra: Any) -> str:
        """Add a tensor; `const=True` without `data` fills it with ones (a zero bias means 'no bias').
        `shape=None` writes no shape at all (unknown rank); `signature=` writes a shape_signature."""
        if const and data is None and extra.get("same_buffer_as") is None:
            data = _ones(dtype, math.prod(shape or ()))
        self.tensors.append(Tensor(name, None if shape is None else tuple(shape), dtype, data, **extra))
        return name

    def op(self, name: str, ins: list[str], outs: list[str], options: Any = None) -> None:
        """`ins` may hold "" for an omitted optional input (index -1); "CUSTOM:Name" is a custom op."""
        self.ops.append((name, ins, outs, options))


def _ones(dtype: str, count: int) -> bytes:
    import numpy as np

    numpy_type = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8, "UINT8": np.uint8,
                  "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_}[dtype]
    return np.ones(count, dtype=numpy_type).tobytes()


def options(kind: str, **values: Any) -> Any:
    opts = getattr(schema, f"{kind}OptionsT")()
    for key, value in values.items():
        setattr(opts, key, value)
    return opts


def build(*subgraphs: Subgraph) -> bytes:
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    model.subgraphs = []
    codes: list[str] = []
    for graph in subgraphs:
        index = {t.name: i for i, t in enumerate(graph.tensors)}
        buffer_of: dict[str, int] = {}
        sub = schema.SubGraphT()
        sub.tensors = []
        for t in graph.tensors:
            tensor = schema.TensorT()
            tensor.name, tensor.type = t.name, getattr(schema.TensorType, t.dtype)
            tensor.shape = None if t.shape is None else list(t.shape)
            tensor.shapeSignature = None if t.signature is None else list(t.signature)
            tensor.buffer = 0
            if t.same_buffer_as is not None:
                tensor.buffer = buffer_of[t.same_buffer_as]
            elif t.data is not None:
                buffer = schema.BufferT()
                buffer.data = list(t.data)
                model.buffers.append(buffer)
                tensor.buffer = len(model.buffers) - 1
            buffer_of[t.name] = tensor.buffer
            if t.scales is not None:
                quant = schema.QuantizationParametersT()
                quant.scale, quant.zeroPoint = list(t.scales), [0] * len(t.scales)
                tensor.quantization = quant
            tensor.sparsity = t.sparsity
            sub.tensors.append(tensor)
        sub.operators = []
        for name, ins, outs, opts in graph.ops:
            if name not in codes:
                codes.append(name)
            operator = schema.OperatorT()
            operator.opcodeIndex = codes.index(name)
            operator.inputs = [index[t] if t else -1 for t in ins]
            operator.outputs = [index[t] for t in outs]
            if opts is not None:
                operator.builtinOptionsType = getattr(schema.BuiltinOptions, type(opts).__name__[:-1])
                operator.builtinOptions = opts
            sub.operators.append(operator)
        sub.inputs, sub.outputs = [index[t] for t in graph.inputs], [index[t] for t in graph.outputs]
        model.subgraphs.append(sub)
    model.operatorCodes = []
    for name in codes:
        code = schema.OperatorCodeT()
        builtin = getattr(schema.BuiltinOperator, name.split(":", 1)[0])
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        if name.startswith("CUSTOM:"):
            code.customCode = name.split(":", 1)[1]
        model.operatorCodes.append(code)
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
