"""Which shape each tensor of a model has, for the shape-dependent figures (MACs, elementwise ops, peak
activation memory): the file's where it states one, LiteRT's where the file leaves it open or states it
wrongly, and batch 1 for a model whose only open dimension is the batch.

Why LiteRT: a converter writes every tensor's shape, but a file can lack one (no shape vector: unknown
rank, read as a scalar), carry placeholders (1s where `shape_signature` says -1) or state a shape its op
cannot produce. Counted from the file, a conv whose output is stored as [] gives 1 output element's MACs
(36 for 13,824). LiteRT's kernels compute every output's shape from their inputs when the interpreter is
prepared (`allocate_tensors`), so the analysis takes the shapes from there; the file has by then passed
`graph.parse_model`'s checks (every size bounded, buffers the size their shapes need), as it has before the
twins hand a model to LiteRT. Shapes taken from LiteRT that the file states otherwise, and are not the
placeholders of an input size being resolved, are listed in a note: TFLM sizes its tensors from the file's
shapes, so such a file must be re-exported before it runs on a microcontroller.

Where LiteRT cannot load the model (a custom op it lacks), the file's shapes stand, unless a tensor's shape
is open there (no shape vector, dims <= 0 or -1 in shape_signature, a conv/matmul output stored as a
scalar): then ModelError names the tensor, as a figure counted from it would be wrong.

A lone open batch ([-1, H, W, C], Keras's default signature, on inputs of rank >= 2) is analysed at batch 1,
the batch TFLM and the boards run, and a note says so; any other open dimension needs a shape given.

Not caught: a tensor whose size depends on the input's values (WHERE, a RESHAPE to a computed shape) is
sized by LiteRT only while running; it is counted at the size the file states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_edgehil.errors import ModelError
from pytest_edgehil.model.graph import Graph
from pytest_edgehil.model.ops import WEIGHT_INPUTS
from pytest_edgehil.model.runtime import ModelRunner, only_batch_open

_NOTE_NAMES = 3  # tensors named in a note; the rest are counted


@dataclass(frozen=True)
class BatchOne:
    """Input shapes at batch 1 for a model whose only open dimensions are leading batches, and the notes."""

    shapes: tuple[tuple[int, ...], ...]
    notes: tuple[str, ...]


def batch_one(graph: Graph) -> BatchOne | None:
    """Batch-1 input shapes when every open input dimension is the batch (axis 0 of an input of rank >= 2),
    None otherwise (a static model, or another open dimension: those need a shape given)."""
    open_inputs = [t for t in graph.graph_inputs if graph.dynamic_dims(t)]
    if not open_inputs or not all(only_batch_open(graph.signatures[t] or ()) for t in open_inputs):
        return None
    shapes = tuple(tuple(1 if d < 0 else d for d in (graph.signatures[t] or graph.shapes[t]))
                   for t in graph.graph_inputs)
    notes = tuple(f"input {graph.names[t]!r} leaves its batch open (shape_signature {list(graph.signatures[t] or ())}): "
                  "analysed at batch 1, the batch TFLM and the boards run it at (give --input-shape, or `input.shape` "
                  "in its card, for another)" for t in open_inputs)
    return BatchOne(shapes, notes)


def sized_graphs(graphs: list[Graph], data: bytes,
                 input_shapes: Sequence[Sequence[int]] | None) -> tuple[list[Graph], tuple[str, ...]]:
    """Every subgraph with the tensor shapes LiteRT computes (at `input_shapes`, else the file's input
    shapes), and the notes on shapes the file states otherwise. ModelError when LiteRT cannot take
    `input_shapes`, or cannot load the model while a tensor's shape is open in the file (naming it)."""
    label = graphs[0].label
    try:
        runner = ModelRunner(data, name=label, default_delegates=False)
    except ModelError as exc:
        if input_shapes is not None:
            raise
        _refuse_open_shapes(graphs, exc)
        return graphs, ()
    if input_shapes is not None:
        runner.resize_inputs(input_shapes)
    resized = input_shapes is not None
    sized: list[Graph] = []
    stated_otherwise: list[str] = []
    for graph in graphs:
        litert = runner.tensor_shapes(graph.index)
        new = {t: shape for t, shape in litert.items()
               if t < len(graph.shapes) and not graph.constant[t] and shape != graph.shapes[t]}
        stated_otherwise += [f"{graph.names[t]!r} {_stored(graph, t)} -> {list(new[t])}" for t in sorted(new)
                             if not (resized and _placeholder_of_open_dims(graph, t, new[t]))]
        sized.append(graph.with_shapes(new) if new else graph)
    if not stated_otherwise:
        return sized, ()
    more = len(stated_otherwise) - _NOTE_NAMES
    listed = "; ".join(stated_otherwise[:_NOTE_NAMES]) + (f"; and {more} more" if more > 0 else "")
    note = (f"{len(stated_otherwise)} tensor shape(s) the file leaves open or states otherwise were taken from "
            f"LiteRT, whose ops size their outputs: {listed}. TFLM sizes tensors from the file's shapes: re-export "
            "the model with static shapes before deploying it with TFLM")
    return sized, (note,)


def _stored(graph: Graph, tensor: int) -> str:
    if not graph.shape_stated[tensor]:
        return "(no shape)" if not graph.shapes[tensor] else f"{list(graph.shapes[tensor])} (placeholder dims)"
    signature = graph.signatures[tensor]
    return f"{list(graph.shapes[tensor])}" + (f" (shape_signature {list(signature)})" if signature else "")


def _placeholder_of_open_dims(graph: Graph, tensor: int, shape: tuple[int, ...]) -> bool:
    """Whether LiteRT's `shape` differs from the file's only where the signature leaves a dimension open:
    the placeholder of an input size being resolved, not a shape the file got wrong."""
    signature = graph.signatures[tensor]
    stored = graph.shapes[tensor]
    return (signature is not None and len(signature) == len(shape) == len(stored)
            and all(d < 0 or d == s for d, s in zip(signature, shape)))


def _refuse_open_shapes(graphs: list[Graph], cause: ModelError) -> None:
    """ModelError naming the first tensor the analysis uses whose shape the file leaves open, when LiteRT
    (`cause`) cannot compute it."""
    for graph in graphs:
        used = {t for ts in (*graph.op_inputs, *graph.op_outputs, graph.graph_inputs, graph.graph_outputs)
                for t in ts if t >= 0}
        mac_outputs = {t for op, name in enumerate(graph.op_names) if name in WEIGHT_INPUTS
                       for t in graph.op_outputs[op] if t >= 0}
        for t in sorted(used):
            if graph.constant[t]:
                continue
            signature = graph.signatures[t] or ()
            if not graph.shape_stated[t]:
                why = ("has no shape in the file (unknown rank)" if not graph.shapes[t] else
                       "has placeholder dims (<= 0) in its shape in the file")
            elif any(d < 0 for d in signature):
                why = f"has placeholder dims in the file (shape {list(graph.shapes[t])}, shape_signature {list(signature)})"
            elif t in mac_outputs and not graph.shapes[t]:
                why = "is stored as a scalar, though a conv/matmul outputs a tensor"
            else:
                continue
            where = graph.label if graph.index == 0 else f"{graph.label} (subgraph {graph.index})"
            reason = " ".join(str(cause).split())  # LiteRT's text spans lines: one line in a message
            raise ModelError(f"{where}: tensor {graph.names[t]!r} {why}, and LiteRT cannot load the model to compute "
                             f"its shape ({reason}); a MAC or memory figure counted from the file would be wrong: "
                             "re-export the model with static shapes") from cause
