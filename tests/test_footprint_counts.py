"""Parameters and peak activation memory of models the main-graph-only analysis used to get wrong.

Every expected figure is computed here from the shapes the test writes (or, for the shipped models, from
the Keras layers by scripts/build_models.py, recorded in their cards), never read from the analysis. Peak
activation memory follows TFLM's planner (`micro_allocation_info.cc`): a subgraph input lives from the
start of its subgraph, an output to its end, other tensors from their producer to their last consumer; the
subgraphs a control-flow op invokes are planned inside that op's scope, while the op's own inputs and
outputs stay live, each invoked subgraph in its own scope.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.model.info import analyze_model
from pytest_edgehil.model.runtime import ModelRunner

from .tflite_builder import Subgraph, build, options, schema

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "fixtures" / "models"
F32 = 4  # bytes per float32 element


# --- parameters as papers and Keras count them ------------------------------------------------------

@pytest.mark.parametrize("card_path", sorted(MODELS.rglob("*.json")), ids=lambda p: p.stem)
def test_parameters_agree_with_the_keras_count_on_the_card(card_path: Path) -> None:
    """The cards count parameters from the Keras layers (batch norms folded: scripts/model_zoo.py), which is
    what docs/models.md publishes. qsegment's separable convs reach the file with converter-made zero biases
    on their depthwise halves, two pairs of them in one shared buffer: neither is a parameter."""
    card = json.loads(card_path.read_text(encoding="utf-8"))
    assert analyze_model(card_path.with_suffix(".tflite")).parameters == card["parameters"]


def test_a_buffer_shared_by_two_weight_tensors_is_counted_once() -> None:
    """The converter stores equal constants once and points several tensors at that buffer."""
    g = Subgraph()
    g.tensor("x", (1, 8, 8, 4))
    g.tensor("w", (4, 3, 3, 4), const=True)
    g.tensor("b", (4,), const=True)
    g.tensor("w_again", (4, 3, 3, 4), same_buffer_as="w")
    g.tensor("b_again", (4,), same_buffer_as="b")
    g.tensor("y1", (1, 8, 8, 4))
    g.tensor("y2", (1, 8, 8, 4))
    conv = options("Conv2D", padding=0, strideH=1, strideW=1)
    g.op("CONV_2D", ["x", "w", "b"], ["y1"], conv)
    g.op("CONV_2D", ["y1", "w_again", "b_again"], ["y2"], conv)
    g.inputs, g.outputs = ["x"], ["y2"]
    info = analyze_model(build(g))
    assert info.parameters == 4 * 3 * 3 * 4 + 4  # one filter, one bias: stored once
    assert info.macs == 2 * 8 * 8 * 4 * 3 * 3 * 4  # but applied twice


def test_a_zero_bias_the_converter_adds_is_not_a_parameter() -> None:
    """Keras' SeparableConv2D(8, 3) on 4 channels: depthwise kernel 3·3·4, pointwise kernel 4·8 and one
    bias of 8 = 76 parameters. The converter gives its DEPTHWISE_CONV_2D a bias of zeros."""
    g = Subgraph()
    g.tensor("x", (1, 8, 8, 4))
    g.tensor("dw", (1, 3, 3, 4), const=True)
    g.tensor("dw_bias", (4,), const=True, data=bytes(4 * 4))  # zeros: the converter's fill
    g.tensor("pw", (8, 1, 1, 4), const=True)
    g.tensor("pw_bias", (8,), const=True)
    g.tensor("d", (1, 8, 8, 4))
    g.tensor("y", (1, 8, 8, 8))
    g.op("DEPTHWISE_CONV_2D", ["x", "dw", "dw_bias"], ["d"],
         options("DepthwiseConv2D", padding=0, strideH=1, strideW=1, depthMultiplier=1))
    g.op("CONV_2D", ["d", "pw", "pw_bias"], ["y"], options("Conv2D", padding=0, strideH=1, strideW=1))
    g.inputs, g.outputs = ["x"], ["y"]
    assert analyze_model(build(g)).parameters == 3 * 3 * 4 + 4 * 8 + 8


# --- models with several subgraphs (WHILE, IF) --------------------------------------------------------

def while_model() -> bytes:
    """main: (i, x) -> WHILE -> (i', y); cond: i < 3; body: i + 1, FULLY_CONNECTED 16 -> 16 (the weights)."""
    main = Subgraph()
    main.tensor("i0", (), "INT32", const=True, data=struct.pack("<i", 0))
    main.tensor("x", (1, 16))
    main.tensor("i_out", (), "INT32")
    main.tensor("y", (1, 16))
    main.op("WHILE", ["i0", "x"], ["i_out", "y"], options("While", condSubgraphIndex=1, bodySubgraphIndex=2))
    main.inputs, main.outputs = ["x"], ["y"]
    cond = Subgraph()
    cond.tensor("i", (), "INT32")
    cond.tensor("v", (1, 16))
    cond.tensor("n", (), "INT32", const=True, data=struct.pack("<i", 3))
    cond.tensor("c", (), "BOOL")
    cond.op("LESS", ["i", "n"], ["c"])
    cond.inputs, cond.outputs = ["i", "v"], ["c"]
    body = Subgraph()
    body.tensor("i", (), "INT32")
    body.tensor("v", (1, 16))
    body.tensor("one", (), "INT32", const=True, data=struct.pack("<i", 1))
    body.tensor("w", (16, 16), const=True, data=(np.eye(16, dtype=np.float32) / 2).tobytes())
    body.tensor("b", (16,), const=True)
    body.tensor("i_next", (), "INT32")
    body.tensor("v_next", (1, 16))
    body.op("ADD", ["i", "one"], ["i_next"])
    body.op("FULLY_CONNECTED", ["v", "w", "b"], ["v_next"])
    body.inputs, body.outputs = ["i", "v"], ["i_next", "v_next"]
    return build(main, cond, body)


def test_while_model_is_one_litert_runs() -> None:
    """The hand-written loop is a real model: three passes of v -> v/2 + 1 from 0 give 1.75."""
    (y,) = ModelRunner(while_model(), name="while").run_raw([np.zeros((1, 16), dtype=np.float32)])
    assert np.allclose(y, 1.75)


def test_weights_inside_a_while_body_are_parameters() -> None:
    info = analyze_model(while_model())
    assert info.parameters == 16 * 16 + 16
    assert info.weight_dtype == "float32"
    assert info.unknown_ops == ("WHILE",)  # its MACs depend on the trip count: listed, not guessed


def test_peak_activation_includes_the_while_subgraphs() -> None:
    # main, live during the WHILE: x, i_out, y.
    main_live = 16 * F32 + 4 + 16 * F32
    # cond: its inputs i, v and its output c live through its one op.
    cond_peak = 4 + 16 * F32 + 1
    # body: ADD: i, v, i_next; FULLY_CONNECTED: v, i_next, v_next (i died after the ADD).
    body_peak = max(4 + 16 * F32 + 4, 16 * F32 + 4 + 16 * F32)
    assert analyze_model(while_model()).peak_activation_bytes == main_live + max(cond_peak, body_peak)


def if_model() -> bytes:
    """main: IF(flag, x) -> y; then: FC 16 -> 16; else: FC 16 -> 32 -> FC 32 -> 16."""
    main = Subgraph()
    main.tensor("flag", (1,), "BOOL")
    main.tensor("x", (1, 16))
    main.tensor("y", (1, 16))
    main.op("IF", ["flag", "x"], ["y"], options("If", thenSubgraphIndex=1, elseSubgraphIndex=2))
    main.inputs, main.outputs = ["flag", "x"], ["y"]
    then = Subgraph()
    then.tensor("v", (1, 16))
    then.tensor("w", (16, 16), const=True)
    then.tensor("b", (16,), const=True)
    then.tensor("out", (1, 16))
    then.op("FULLY_CONNECTED", ["v", "w", "b"], ["out"])
    then.inputs, then.outputs = ["v"], ["out"]
    other = Subgraph()
    other.tensor("v", (1, 16))
    other.tensor("w1", (32, 16), const=True)
    other.tensor("b1", (32,), const=True)
    other.tensor("h", (1, 32))
    other.tensor("w2", (16, 32), const=True)
    other.tensor("b2", (16,), const=True)
    other.tensor("out", (1, 16))
    other.op("FULLY_CONNECTED", ["v", "w1", "b1"], ["h"])
    other.op("FULLY_CONNECTED", ["h", "w2", "b2"], ["out"])
    other.inputs, other.outputs = ["v"], ["out"]
    return build(main, then, other)


def test_if_model_runs_each_branch_in_litert() -> None:
    runner = ModelRunner(if_model(), name="if")
    x = np.ones((1, 16), dtype=np.float32)
    (then_y,) = runner.run_raw([np.array([True]), x])
    (else_y,) = runner.run_raw([np.array([False]), x])
    assert np.allclose(then_y, 17.0) and np.allclose(else_y, 32 * (16 + 1) + 1)


def test_if_branches_count_their_parameters_and_the_larger_one_sets_the_peak() -> None:
    info = analyze_model(if_model())
    assert info.parameters == (16 * 16 + 16) + (32 * 16 + 32) + (16 * 32 + 16)
    main_live = 1 + 16 * F32 + 16 * F32  # flag, x, y
    then_peak = 16 * F32 + 16 * F32
    else_peak = max(16 * F32 + 32 * F32, 32 * F32 + 16 * F32)
    assert info.peak_activation_bytes == main_live + max(then_peak, else_peak)


def test_a_subgraph_that_calls_itself_is_a_model_error() -> None:
    from pytest_edgehil.errors import ModelError

    main = Subgraph()
    main.tensor("x", (1, 4))
    main.tensor("y", (1, 4))
    main.op("IF", ["x", "x"], ["y"], options("If", thenSubgraphIndex=0, elseSubgraphIndex=0))
    main.inputs, main.outputs = ["x"], ["y"]
    with pytest.raises(ModelError, match="subgraph 0.*calls itself"):
        _ = analyze_model(build(main)).peak_activation_bytes


# --- sparse weights ------------------------------------------------------------------------------------

def sparse_fc_model() -> bytes:
    """FULLY_CONNECTED 16 -> 8 whose [8, 16] weights are stored sparse (CSR along the inputs: two ones per
    row, 16 floats in the buffer instead of 128) and made dense by DENSIFY, once, when LiteRT prepares the
    graph: the form the converter's EXPERIMENTAL_SPARSITY writes."""
    sparsity = schema.SparsityParametersT()
    sparsity.traversalOrder = [0, 1]
    rows = schema.DimensionMetadataT()
    rows.format, rows.denseSize = schema.DimensionType.DENSE, 8
    cols = schema.DimensionMetadataT()
    cols.format = schema.DimensionType.SPARSE_CSR
    segments, indices = schema.Int32VectorT(), schema.Int32VectorT()
    segments.values, indices.values = list(range(0, 17, 2)), [0, 1] * 8
    cols.arraySegmentsType = cols.arrayIndicesType = schema.SparseIndexVector.Int32Vector
    cols.arraySegments, cols.arrayIndices = segments, indices
    sparsity.dimMetadata = [rows, cols]
    g = Subgraph()
    g.tensor("x", (1, 16))
    g.tensor("w_sparse", (8, 16), data=np.ones(16, dtype=np.float32).tobytes(), sparsity=sparsity)
    g.tensor("w", (8, 16))
    g.tensor("b", (8,), const=True)
    g.tensor("y", (1, 8))
    g.op("DENSIFY", ["w_sparse"], ["w"])
    g.op("FULLY_CONNECTED", ["x", "w", "b"], ["y"])
    g.inputs, g.outputs = ["x"], ["y"]
    return build(g)


def test_sparse_weights_are_analysed_not_called_corrupt() -> None:
    """LiteRT runs the model (x = 1: each output is its row's two ones, plus the bias 1 = 3)."""
    data = sparse_fc_model()
    (y,) = ModelRunner(data, name="sparse").run_raw([np.ones((1, 16), dtype=np.float32)])
    assert np.allclose(y, 3.0)
    info = analyze_model(data)
    assert info.unknown_ops == ()
    assert info.parameters == 8 * 16 + 8  # the declared (dense) weight shape, as the MACs
    assert info.macs == 8 * 16
    # The dense [8, 16] copy DENSIFY writes is in RAM (TFLM plans it from DENSIFY to the FC; LiteRT keeps it):
    # at the FC, x, the dense weights and y are live.
    assert info.peak_activation_bytes == (16 + 8 * 16 + 8) * F32


# --- data outside the flatbuffer ---------------------------------------------------------------------

def _fc_model_with_weights_at(place: str) -> bytes:
    """FULLY_CONNECTED 16 -> 8, its [8, 16] float weights (ones) stored `place`: "offset" after the flatbuffer
    (how files over 2 GB keep their buffers, Buffer.offset / size), or in an "external" weights file."""
    g = Subgraph()
    g.tensor("x", (1, 16))
    g.tensor("w", (8, 16))
    g.tensor("b", (8,), const=True)
    g.tensor("y", (1, 8))
    g.op("FULLY_CONNECTED", ["x", "w", "b"], ["y"])
    g.inputs, g.outputs = ["x"], ["y"]
    model = schema.ModelT.InitFromPackedBuf(build(g), 0)
    weights = np.ones(8 * 16, dtype=np.float32).tobytes()
    if place == "external":
        group, buffer = schema.ExternalBufferGroupT(), schema.ExternalBufferT()
        group.name = "weights.bin"
        buffer.id, buffer.group, buffer.offset, buffer.length = 1, 0, 0, len(weights)
        model.externalBufferGroups, model.externalBuffers = [group], [buffer]
        model.subgraphs[0].tensors[1].externalBuffer = 1
        return _pack(model)
    stored = schema.BufferT()
    stored.offset, stored.size = 1, len(weights)  # placeholder offset: the packed length is not known yet
    model.buffers.append(stored)
    model.subgraphs[0].tensors[1].buffer = len(model.buffers) - 1
    stored.offset = (len(_pack(model)) + 64 + 15) // 16 * 16  # past the flatbuffer (its length barely moves)
    packed = _pack(model)
    assert len(packed) <= stored.offset
    return packed + bytes(stored.offset - len(packed)) + weights


def _pack(model: object) -> bytes:
    from .tflite_builder import flatbuffers

    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")  # type: ignore[attr-defined]
    return bytes(builder.Output())


def test_weights_stored_after_the_flatbuffer_are_counted_as_weights() -> None:
    data = _fc_model_with_weights_at("offset")
    (y,) = ModelRunner(data, name="offset").run_raw([np.ones((1, 16), dtype=np.float32)])
    assert np.allclose(y, 16 + 1)  # LiteRT reads the weights where the buffer points
    info = analyze_model(data)
    assert info.parameters == 8 * 16 + 8 and info.weight_dtype == "float32"
    assert info.peak_activation_bytes == (16 + 8) * F32
    assert info.size_bytes == len(data)


def test_weights_in_an_external_file_are_refused_naming_the_tensor_and_the_file() -> None:
    from pytest_edgehil.errors import ModelError

    data = _fc_model_with_weights_at("external")
    with pytest.raises(ModelError, match="lacks data"):  # LiteRT cannot run the file alone
        ModelRunner(data, name="external").run_raw([np.ones((1, 16), dtype=np.float32)])
    with pytest.raises(ModelError, match=r"tensor 'w' .*external buffer \(file 'weights.bin', 512 bytes\)"):
        analyze_model(data)


# --- the MAC convention on strided, dilated and per-channel convs, shapes checked by LiteRT ------------

def _conv_case(kind: str) -> tuple[bytes, tuple[int, ...], int]:
    """One op on a 9x9 input; returns (model, the output shape written, MACs by the paper formula)."""
    g = Subgraph()
    int8 = kind == "conv_per_channel_int8"
    dtype = "INT8" if int8 else "FLOAT32"
    g.tensor("x", (1, 9, 9, 2), dtype, scales=[0.1] if int8 else None)
    if kind == "depthwise_mult3_stride2_valid":
        # out = floor((9 - 3) / 2) + 1 = 4; C·mult = 6 channels: H_out·W_out·C·mult·K_h·K_w
        out, macs = (1, 4, 4, 6), 4 * 4 * 6 * 3 * 3
        g.tensor("w", (1, 3, 3, 6), const=True)
        g.tensor("b", (6,), const=True)
        opts = options("DepthwiseConv2D", padding=1, strideH=2, strideW=2, depthMultiplier=3,
                       dilationHFactor=1, dilationWFactor=1)
        op = "DEPTHWISE_CONV_2D"
    else:
        if kind == "conv_stride2_same":  # out = ceil(9 / 2) = 5
            out, padding, stride, dilation = (1, 5, 5, 4), 0, 2, 1
        elif kind == "conv_dilation2_valid":  # effective kernel 5: out = 9 - 5 + 1 = 5
            out, padding, stride, dilation = (1, 5, 5, 4), 1, 1, 2
        else:  # per-channel int8, 'same', stride 1
            out, padding, stride, dilation = (1, 9, 9, 4), 0, 1, 1
        macs = out[1] * out[2] * 4 * 3 * 3 * 2  # H_out·W_out·C_out·K_h·K_w·C_in: taps, not dilated span
        g.tensor("w", (4, 3, 3, 2), "INT8" if int8 else "FLOAT32", const=True,
                 scales=[0.01, 0.02, 0.03, 0.04] if int8 else None)
        g.tensor("b", (4,), "INT32" if int8 else "FLOAT32", const=True,
                 scales=[0.001, 0.002, 0.003, 0.004] if int8 else None)
        opts = options("Conv2D", padding=padding, strideH=stride, strideW=stride, dilationHFactor=dilation,
                       dilationWFactor=dilation)
        op = "CONV_2D"
    g.tensor("y", out, dtype, scales=[0.2] if int8 else None)
    g.op(op, ["x", "w", "b"], ["y"], opts)
    g.inputs, g.outputs = ["x"], ["y"]
    return build(g), out, macs


@pytest.mark.parametrize("kind", ["conv_stride2_same", "conv_dilation2_valid", "depthwise_mult3_stride2_valid",
                                  "conv_per_channel_int8"])
def test_macs_of_strided_dilated_and_per_channel_convs(kind: str) -> None:
    data, out, macs = _conv_case(kind)
    runner = ModelRunner(data, name=kind)
    (y,) = runner.run_raw([np.zeros((1, 9, 9, 2), dtype=runner.inputs[0].dtype)])
    assert y.shape == out  # LiteRT computes the output shape the formula uses
    info = analyze_model(data)
    assert info.macs == macs
    weights = 3 * 3 * (6 if kind.startswith("depthwise") else 4 * 2)
    assert info.parameters == weights + (6 if kind.startswith("depthwise") else 4)
    assert info.compute_dtype == ("int8" if kind.endswith("int8") else "float32")


def test_inspect_says_the_macs_of_a_model_with_unknown_ops_are_a_lower_bound(tmp_path: Path, capsys) -> None:
    from pytest_edgehil.cli import main

    path = tmp_path / "loop.tflite"
    path.write_bytes(while_model())
    assert main(["inspect", str(path)]) == 0
    (mac_line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("MACs/inference")]
    assert "lower bound" in mac_line and "WHILE" in mac_line
