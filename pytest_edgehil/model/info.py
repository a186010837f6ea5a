"""Static analysis of a .tflite model, without running it: size, parameters, MACs, peak activation memory,
and the dtype its convolutions and matmuls compute in.

The file is read into checked `graph.Graph`s, one per subgraph (sizes bounded, products in Python ints).
Parameters and peak activation memory cover every subgraph (`footprint.py`: WHILE / IF bodies hold weights
and activations too). The work figures cover the main graph (index 0): bodies of control-flow ops (WHILE,
IF) run an unknown number of times, so those ops are reported as unknown rather than guessed.

Two work figures per inference, kept apart (the rules, and their sources, are in `ops.py`'s docstring):
  MACs               multiply-accumulates of CONV_2D, CONV_3D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
                     TRANSPOSE_CONV, CONV_3D_TRANSPOSE, BATCH_MATMUL and MediaPipe's custom
                     Convolution2DTransposeBias, counted as papers count them (one MAC = one
                     multiply-accumulate; conv H_out·W_out·C_out·K_h·K_w·C_in/groups, ...)
  elementwise ops    elements touched by everything else: activations, ADD/MUL/SUB, pooling (output ·
                     window), resizes, softmax, QUANTIZE/DEQUANTIZE, reductions, concatenation and copies;
                     views (RESHAPE, SQUEEZE, ...) touch 0. Not MACs: never added into `macs`.
DEQUANTIZE and DENSIFY of constant weights count 0 in both (LiteRT does them once, not per inference). Any
other op counts 0 and is listed in `ModelInfo.unknown_ops`; analysis never fails on an op.

Parameters: weights and biases as Keras counts them, batch norms folded (`footprint.py`): a buffer several
tensors share counts once, and a bias of zeros (the converter's fill for an op without one) not at all.

Peak activation memory simulates the operator order with tensor lifetimes, as TFLM's planner marks them:
a non-constant tensor is live from the op that produces it (or the start, for graph inputs) to its last
consumer (or the end, for graph outputs); a control-flow op adds the peak of the subgraphs it invokes; the
peak is the largest sum of live tensor bytes at any op. It is what must fit the device's RAM, and a lower
bound on the tensor arena TFLM's planner needs (the planner adds alignment, fragmentation, scratch buffers
and per-op persistent data).

Compute dtype: the dtype of the activations (and weights) entering the conv / depthwise / fully connected /
transpose conv / batch matmul ops, weighted by their MACs — not the model's input dtype. The TFLite
converter keeps float32 I/O around an int8 graph by default (QUANTIZE in front, DEQUANTIZE behind); such a
model computes in int8.

Shapes (`shapes.py`): the shape-dependent figures use the tensor shapes LiteRT's kernels compute, so a
shape the file leaves open or states wrongly is sized as the runtime sizes it (and `notes` says so); where
LiteRT cannot load the model, an open shape is a ModelError naming the tensor. A model whose inputs leave
dimensions open (shape_signature -1) has no single cost: without `input_shapes` its shape-dependent figures
(`macs`, `macs_by_op`, `peak_activation_bytes`) are not computed and reading them raises ModelError naming
the open dimensions, except a lone open batch, analysed at batch 1 (a note says so); with `input_shapes`,
LiteRT resizes the inputs and the analysis uses every tensor shape it propagates.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_edgehil.errors import ModelError
from pytest_edgehil.model.footprint import (
    constant_derived,
    parameters_and_weight_dtype,
    peak_activation_bytes,
)
from pytest_edgehil.model.graph import Graph, parse_model
from pytest_edgehil.model.ops import CONSTANT_EXPANDERS, OpCost, compute_dtype, op_cost
from pytest_edgehil.model.runtime import TensorSpec
from pytest_edgehil.model.shapes import batch_one, sized_graphs

# Compute dtypes the twins time at the int8 rate; anything else (float32, float16, hybrid) is float compute.
INTEGER_COMPUTE = frozenset({"int8", "uint8", "int16"})


@dataclass(frozen=True)
class ShapeCost:
    """The figures that depend on the input's shape, per inference: MACs and elementwise ops (total and by
    op name; every counted op name appears in both, with 0 where it has none), and peak activation bytes."""

    macs: int
    macs_by_op: dict[str, int]
    peak_activation_bytes: int
    elementwise_ops: int = 0
    elementwise_by_op: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """What a model costs, read from its file. MACs and elementwise ops are per inference; bytes are bytes.

    `macs` counts multiply-accumulates only (conv, depthwise, fully connected, transpose conv, batch matmul);
    `elementwise_ops` counts the elements touched by every other op (activations, adds, pooling, resizes,
    quantize, copies). The two are separate figures, never summed here.

    `macs`, `macs_by_op`, `elementwise_ops`, `elementwise_by_op` and `peak_activation_bytes` raise ModelError when the model has dynamic input
    dimensions (`dynamic_inputs`) and was analysed without `input_shapes`: a placeholder 1x1 figure must
    never pass for the model's cost.
    """

    name: str
    size_bytes: int
    sha256: str
    parameters: int
    inputs: tuple[TensorSpec, ...]  # shapes as analysed (the file's placeholders when unresolved)
    outputs: tuple[TensorSpec, ...]
    op_counts: dict[str, int] = field(default_factory=dict)
    weight_dtype: str = "none"  # dtype holding most weight elements: "int8", "float32", "float16", ...
    compute_dtype: str = "none"  # dtype the conv/matmul ops compute in: "int8", "float32", "hybrid-int8", ...
    unknown_ops: tuple[str, ...] = ()  # op names the MAC count does not know (they count 0)
    dynamic_inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> shape_signature
    dynamic_outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # (sizes follow the inputs)
    cost: ShapeCost | None = None  # None: dynamic inputs and no input_shapes given
    # What a reader of the figures must know: a batch taken as 1, shapes taken from LiteRT (`shapes.py`).
    notes: tuple[str, ...] = ()

    @property
    def resolved(self) -> bool:
        """Whether the shape-dependent figures exist (static model, or input_shapes given)."""
        return self.cost is not None

    @property
    def integer_compute(self) -> bool:
        """Whether the conv/matmul work runs in integer arithmetic (int8 rate on an accelerator)."""
        return self.compute_dtype in INTEGER_COMPUTE

    @property
    def float_arithmetic(self) -> bool:
        """Whether the model computes in float: its conv/matmul ops' dtype, or, for a model without such ops
        (pooling, resizing alone), its input's dtype, as nothing else says what its arithmetic is. What a
        twin times at the float rate and what a board without a float path refuses."""
        if self.compute_dtype != "none":
            return not self.integer_compute
        return bool(self.inputs) and bool(np.issubdtype(np.dtype(self.inputs[0].dtype), np.floating))

    def _cost(self, what: str) -> ShapeCost:
        if self.cost is None:
            raise ModelError(f"model {self.name}: {what} depends on the input size, and {self.dynamic_text()}; "
                             "analyse it at the shape you feed (edgehil inspect --input-shape 1,H,W,C, or "
                             "analyze_model(..., input_shapes=[...]))")
        return self.cost

    def dynamic_text(self) -> str:
        """e.g. "input 'x' has open dims 1, 2 (shape_signature [1, -1, -1, 8])"."""
        parts = [f"input {name!r} has open dims {', '.join(str(a) for a, d in enumerate(sig) if d < 0)} "
                 f"(shape_signature {list(sig)})" for name, sig in self.dynamic_inputs.items()]
        return "; ".join(parts) or "no input is dynamic"

    @property
    def macs(self) -> int:
        return self._cost("MACs").macs

    @property
    def macs_by_op(self) -> dict[str, int]:
        return dict(self._cost("MACs").macs_by_op)

    @property
    def elementwise_ops(self) -> int:
        return self._cost("elementwise ops").elementwise_ops

    @property
    def elementwise_by_op(self) -> dict[str, int]:
        return dict(self._cost("elementwise ops").elementwise_by_op)

    @property
    def peak_activation_bytes(self) -> int:
        return self._cost("peak activation memory").peak_activation_bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (dtypes as names, shapes as lists); shape-dependent figures null when unresolved."""
        return {
            "name": self.name, "size_bytes": self.size_bytes, "sha256": self.sha256, "parameters": self.parameters,
            "macs": self.cost.macs if self.cost else None,
            "elementwise_ops": self.cost.elementwise_ops if self.cost else None,
            "peak_activation_bytes": self.cost.peak_activation_bytes if self.cost else None,
            "inputs": [_spec_dict(s) for s in self.inputs], "outputs": [_spec_dict(s) for s in self.outputs],
            "op_counts": dict(self.op_counts), "macs_by_op": dict(self.cost.macs_by_op) if self.cost else None,
            "elementwise_by_op": dict(self.cost.elementwise_by_op) if self.cost else None,
            "weight_dtype": self.weight_dtype, "compute_dtype": self.compute_dtype,
            "unknown_ops": list(self.unknown_ops),
            "dynamic_inputs": {name: list(sig) for name, sig in self.dynamic_inputs.items()},
            "dynamic_outputs": {name: list(sig) for name, sig in self.dynamic_outputs.items()},
            "notes": list(self.notes),
        }


def _spec_dict(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": np.dtype(spec.dtype).name,
            "scale": spec.scale, "zero_point": spec.zero_point, "quantized": spec.quantized}


def _shape_cost(graphs: list[Graph]) -> tuple[ShapeCost, list[int], set[str]]:
    """MACs and elementwise ops of the main graph (total, by op name), MACs per op index, peak activation
    bytes (every subgraph it invokes included), unknown ops."""
    graph = graphs[0]
    macs_by_op: Counter[str] = Counter()
    elementwise_by_op: Counter[str] = Counter()
    per_op: list[int] = []
    unknown: set[str] = set()
    constants = constant_derived(graph)
    for op, name in enumerate(graph.op_names):
        # LiteRT dequantizes (densifies) constant weights once, at the first invoke: no per-inference cost.
        weights_only = name in CONSTANT_EXPANDERS and all(t in constants for t in graph.op_inputs[op] if t >= 0)
        cost = OpCost() if weights_only else op_cost(graph, op)
        if cost is None:
            unknown.add(name)
            per_op.append(0)
            continue
        macs_by_op[name] += int(cost.macs)
        elementwise_by_op[name] += int(cost.elementwise_ops)
        per_op.append(int(cost.macs))
    cost_total = ShapeCost(macs=sum(macs_by_op.values()), macs_by_op=dict(sorted(macs_by_op.items())),
                           peak_activation_bytes=peak_activation_bytes(graphs),
                           elementwise_ops=sum(elementwise_by_op.values()),
                           elementwise_by_op=dict(sorted(elementwise_by_op.items())))
    return cost_total, per_op, unknown


def _sized(graphs: list[Graph], data: bytes, input_shapes: tuple[tuple[int, ...], ...] | None,
           dynamic: bool) -> tuple[list[Graph], tuple[str, ...], bool]:
    """The graphs with LiteRT's tensor shapes (`shapes.py`), the notes, and whether the shape-dependent
    figures exist: a dynamic model needs `input_shapes`, or only its batch open (then batch 1)."""
    if input_shapes is None and dynamic:
        batch = batch_one(graphs[0])
        if batch is None:
            return graphs, (), False
        try:
            sized, notes = sized_graphs(graphs, data, batch.shapes)
        except ModelError:  # LiteRT cannot run it (a custom op): no size to count at, as for other open dims
            return graphs, (), False
        return sized, batch.notes + notes, True
    sized, notes = sized_graphs(graphs, data, input_shapes)
    return sized, notes, True


def _analyze(data: bytes, sha256: str, label: str, input_shapes: tuple[tuple[int, ...], ...] | None) -> ModelInfo:
    graphs = parse_model(data, label)
    graph = graphs[0]
    dynamic = {graph.names[t]: graph.signatures[t] or () for t in graph.graph_inputs if graph.dynamic_dims(t)}
    dynamic_out = {graph.names[t]: graph.signatures[t] or () for t in graph.graph_outputs if graph.dynamic_dims(t)}
    graphs, notes, resolved = _sized(graphs, data, input_shapes, bool(dynamic))
    graph = graphs[0]
    cost, per_op, unknown = _shape_cost(graphs)
    parameters, weight_dtype = parameters_and_weight_dtype(graphs)
    return ModelInfo(
        name=label, size_bytes=len(data), sha256=sha256, parameters=parameters,
        inputs=tuple(graph.specs[t] for t in graph.graph_inputs),
        outputs=tuple(graph.specs[t] for t in graph.graph_outputs),
        op_counts=dict(sorted(Counter(graph.op_names).items())), weight_dtype=weight_dtype,
        compute_dtype=compute_dtype(graph, per_op), unknown_ops=tuple(sorted(unknown)),
        dynamic_inputs=dynamic, dynamic_outputs=dynamic_out, cost=cost if resolved else None, notes=notes,
    )


_CACHE: OrderedDict[tuple[str, tuple[tuple[int, ...], ...] | None], ModelInfo] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


def analyze_model(model: bytes | bytearray | str | Path, name: str | None = None, *,
                  input_shapes: Sequence[Sequence[int]] | None = None) -> ModelInfo:
    """Analyse a .tflite file (path) or its bytes. Results are cached by content hash (sha256) and shapes.

    `name` defaults to the file's stem, or `model-<sha256 prefix>` for bytes. `input_shapes` (one shape
    per input, e.g. [(1, 32, 32, 8)]) analyses the model at that size: required for the cost figures of a
    model with dynamic dimensions, checked against each input's shape_signature. Raises ModelError for an
    unreadable, corrupt or absurd file, or a shape the model cannot take.
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
    shapes = None if input_shapes is None else tuple(tuple(int(d) for d in shape) for shape in input_shapes)
    key = (sha256, shapes)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
    if cached is None:
        try:
            cached = _analyze(data, sha256, label or display, shapes)
        except (IndexError, KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            # Header and tables parse, but indices point nowhere: a hand-edited or damaged file.
            raise ModelError(f"{label or display} is a malformed TFLite model ({type(exc).__name__}: {exc}); "
                             f"re-export it, or check it with LiteRT's Interpreter") from exc
        with _CACHE_LOCK:
            _CACHE[key] = cached
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    # Fresh dicts so that a caller mutating its copy cannot alter the cached analysis.
    return replace(cached, name=display, op_counts=dict(cached.op_counts),
                   dynamic_inputs=dict(cached.dynamic_inputs), dynamic_outputs=dict(cached.dynamic_outputs))
