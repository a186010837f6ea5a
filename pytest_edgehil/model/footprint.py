"""Memory footprint of a parsed model: its parameters (and the dtype holding them) and its peak activation
memory, over every subgraph of the file.

Parameters are counted as Keras counts a model's weights and biases (batch norms folded by the converter):
learned weights. Those are the constants at the weight/bias inputs of the MAC ops and at a PReLU's alpha, and
any other float or quantized constant of more than one element (a batch norm the converter could not fold,
a layer norm's scale); not integer shape/index operands, and not a single number broadcast over a tensor
(Rescaling's 1/255 and offset, hard-swish's 3 and 1/6, an epsilon), which is a layer's setting that Keras
does not count. Further:
* a buffer several tensors share counts once: the converter stores equal constants once and points every
  tensor holding them at that buffer, and a weight a graph reuses is one set of parameters;
* a bias of zeros is no bias: the converter gives a MAC op that has none (the depthwise half of a
  separable conv) a bias of zeros, which Keras never counted;
* weights inside the subgraphs of WHILE / IF bodies are parameters like the main graph's;
* a weight stored compressed (float16, int8 for DEQUANTIZE; sparse for DENSIFY) counts its declared, dense
  elements, as the MAC count does.

Peak activation memory follows TFLM's planner (`micro_allocation_info.cc`): in each subgraph a tensor that
is not constant lives from the op producing it (from the start, for a subgraph input) to its last consumer
(to the end, for an output); variable (state) tensors live throughout. A control-flow op plans the
subgraphs it invokes inside its own scope, each in turn, while the op's inputs and outputs stay live: the
peak at that op is what is live in the calling graph plus the largest peak of the subgraphs it invokes.
Weights a DEQUANTIZE (float16 or int8 weights dequantized at run time) or DENSIFY (sparse weights) expands
from a constant are in RAM too: TFLM's planner places them in the arena like any tensor an op writes (from
that op to its last reader; it runs the DEQUANTIZE every inference), so they count over that lifetime.
LiteRT keeps its copies for the interpreter's life, so it needs at least this much.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pytest_edgehil.errors import ModelError
from pytest_edgehil.model.graph import Graph
from pytest_edgehil.model.ops import BIAS_INPUT, CONSTANT_EXPANDERS, WEIGHT_INPUTS


def constant_derived(graph: Graph) -> set[int]:
    """Constants plus the outputs of DEQUANTIZE / DENSIFY applied to a constant (float16, int8-compressed or
    sparse weights, expanded once when the interpreter prepares the graph)."""
    derived = {t for t, c in enumerate(graph.constant) if c}
    for op, name in enumerate(graph.op_names):
        if name in CONSTANT_EXPANDERS and graph.op_inputs[op] and graph.op_inputs[op][0] in derived:
            derived.update(t for t in graph.op_outputs[op] if t >= 0)
    return derived


# Inputs of non-MAC ops that hold a trained weight whatever its size (Keras's PReLU: one alpha per channel,
# or a single one shared over every axis).
LEARNED_INPUTS: dict[str, tuple[int, ...]] = {"PRELU": (1,)}


def _weight_slots(graph: Graph) -> tuple[set[int], set[int], set[int]]:
    """Constant tensors at the weight/bias inputs of MAC ops (a compressed weight credited to its stored
    constant), those among them used as nothing but a bias, and the constants at `LEARNED_INPUTS`."""
    source = {out: graph.op_inputs[op][0] for op, name in enumerate(graph.op_names)
              if name in CONSTANT_EXPANDERS and graph.op_inputs[op] for out in graph.op_outputs[op]}
    slots: set[int] = set()
    learned: set[int] = set()
    bias_uses: Counter[int] = Counter()
    for op, name in enumerate(graph.op_names):
        ins = graph.op_inputs[op]
        for position in WEIGHT_INPUTS.get(name, ()):
            if position < len(ins) and ins[position] >= 0:
                tensor = source.get(ins[position], ins[position])
                slots.add(tensor)
                bias_uses[tensor] += position == BIAS_INPUT.get(name)
        learned.update(source.get(ins[p], ins[p]) for p in LEARNED_INPUTS.get(name, ()) if p < len(ins) and ins[p] >= 0)
    uses = Counter(source.get(t, t) for ins in graph.op_inputs for t in ins if t >= 0)
    only_bias = {t for t, n in bias_uses.items() if n and n == uses[t]}
    return slots, only_bias, learned


def parameters_and_weight_dtype(graphs: Sequence[Graph]) -> tuple[int, str]:
    """Parameter elements over every subgraph (see the module docstring), and the dtype holding most weight
    elements ("none" without weights)."""
    stored: dict[object, int] = {}  # buffer (or read variable) -> elements, each counted once
    dtype_elements: Counter[str] = Counter()
    for graph in graphs:
        slots, only_bias, learned_slots = _weight_slots(graph)
        for t, is_const in enumerate(graph.constant):
            if not is_const or (t in only_bias and graph.zero[t]):
                continue
            if t not in slots and t not in learned_slots:
                # Shape/index operands (RESHAPE's shape, PAD's paddings) are int32 without quantization, and a
                # single number broadcast over a tensor (a scale, an offset) is a setting: neither is learned.
                numeric = graph.types[t].startswith(("FLOAT", "BFLOAT")) or graph.quantized[t]
                if not numeric or graph.elements(t) == 1:
                    continue
            key = ("buffer", graph.buffers[t])
            if key in stored:
                continue
            stored[key] = graph.elements(t)
            # Matrices and filters only (rank >= 2): biases are int32 in int8 models and do not set the dtype.
            if t in slots and len(graph.shapes[t]) >= 2:
                dtype_elements[graph.types[t].lower()] += graph.elements(t)
        # Weights kept as resource variables (a conversion that did not freeze them) are read each inference.
        for op, name in enumerate(graph.op_names):
            if name == "READ_VARIABLE":
                for t in graph.op_outputs[op]:
                    if t >= 0:
                        stored[("variable", graph.index, t)] = graph.elements(t)
                        if t in slots and len(graph.shapes[t]) >= 2:
                            dtype_elements[graph.types[t].lower()] += graph.elements(t)
    weight_dtype = dtype_elements.most_common(1)[0][0] if dtype_elements else "none"
    return sum(stored.values()), weight_dtype


def _live_bytes_per_op(graph: Graph) -> list[int]:
    """Bytes of the non-constant tensors live at each op of one subgraph (TFLM's lifetimes)."""
    n_ops = len(graph.op_names)
    # Constants stay in flash; weights a DEQUANTIZE / DENSIFY expands from them are written to the arena.
    excluded = {t for t, c in enumerate(graph.constant) if c}
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
        size = graph.nbytes(t)
        delta[start] += size
        delta[last.get(t, start) + 1] -= size
    live, per_op = 0, []
    for op in range(n_ops):
        live += delta[op]
        per_op.append(live)
    return per_op


def peak_activation_bytes(graphs: Sequence[Graph], index: int = 0, calling: tuple[int, ...] = ()) -> int:
    """Peak activation bytes of subgraph `index`, the subgraphs its ops invoke included. ModelError for a
    subgraph index that does not exist or a subgraph that calls itself (TFLite runs neither)."""
    graph = graphs[index]
    if not graph.op_names:
        return sum(graph.nbytes(t) for t in set(graph.graph_inputs) | set(graph.graph_outputs)
                   if t >= 0 and not graph.constant[t])
    peak = 0
    for op, live in enumerate(_live_bytes_per_op(graph)):
        inner = 0
        for called in graph.calls[op]:
            if not 0 <= called < len(graphs):
                raise ModelError(f"{graph.label}: op {op} ({graph.op_names[op]}) of subgraph {index} invokes "
                                 f"subgraph {called}, but the file has {len(graphs)}; the file is corrupt or "
                                 "hand-edited: re-export the model")
            if called in (*calling, index):
                chain = " -> ".join(str(i) for i in (*calling, index, called))
                raise ModelError(f"{graph.label}: subgraph {called} calls itself ({chain}), which no TFLite "
                                 "interpreter runs; the file is corrupt or hand-edited: re-export the model")
            inner = max(inner, peak_activation_bytes(graphs, called, (*calling, index)))
        peak = max(peak, live + inner)
    return peak
