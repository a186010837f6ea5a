"""Model files are data to check: sizes in Python ints, absurd shapes refused, damaged files a ModelError.

Hand-edited models are written with the flatbuffer object API of LiteRT's own schema, so every file here
is a well-formed flatbuffer whose numbers lie — what a bit flip in a shape or a buggy exporter produces.
"""

from __future__ import annotations

import time
from pathlib import Path

import flatbuffers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_edgehil.errors import ModelError
from pytest_edgehil.model.graph import MAX_TENSOR_ELEMENTS
from pytest_edgehil.model.info import ModelInfo, analyze_model

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

DATA = Path(__file__).resolve().parent / "data"
CONV = (DATA / "conv_int8.tflite").read_bytes()  # x int8[1,32,32,8] -> CONV_2D 3x3 (16 ch) -> y int8[1,32,32,16]
SHIPPED = (DATA / "cases" / "int8-float-io" / "qsegment_float_io.tflite").read_bytes()


def edited(data: bytes, edit) -> bytes:
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    edit(model.subgraphs[0], model)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tensor_index(model_bytes: bytes, role: str) -> tuple[int, str]:
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    sub = model.subgraphs[0]
    (op,) = sub.operators
    index = {"input": op.inputs[0], "filter": op.inputs[1], "output": op.outputs[0]}[role]
    return index, sub.tensors[index].name.decode()


def with_shape(role: str, shape: list[int]) -> tuple[bytes, str]:
    index, name = tensor_index(CONV, role)

    def edit(sub, _model) -> None:
        sub.tensors[index].shape = shape
    return edited(CONV, edit), name


@pytest.mark.parametrize("shape", [
    [2**16, 2**16, 2**16, 2**15],  # 2^63 elements: an int64 product is -2^63 (the "-9.22e+06 T")
    [2**16, 2**16, 2**16, 2**16],  # 2^64: an int64 product wraps to exactly 0
    [2**31 - 1, 2**31 - 1, 2**31 - 1, 2**31 - 1],  # dims at the int32 limit: 2^124, far past int64
    [1, 2**21, 2**20, 1],  # 2^41: no wrap, still no edge model's tensor
])
@pytest.mark.parametrize("role", ["input", "output"])
def test_absurd_activation_shape_is_a_model_error_naming_the_tensor(role: str, shape: list[int]) -> None:
    data, name = with_shape(role, shape)
    with pytest.raises(ModelError, match="corrupt or hand-edited") as caught:
        analyze_model(data, name="huge")
    assert repr(name) in str(caught.value) and str(shape).replace(" ", "") in str(caught.value).replace(" ", "")


def test_large_but_possible_activation_is_counted_exactly_not_wrapped() -> None:
    # A 2048 x 2048 input (the output shape to match: LiteRT sizes it so anyway): 4.8e9 MACs, past 2^32,
    # below the cap, so it is analysed, with exact ints.
    (x, _), (y, _) = tensor_index(CONV, "input"), tensor_index(CONV, "output")

    def edit(sub, _model) -> None:
        sub.tensors[x].shape, sub.tensors[y].shape = [1, 2048, 2048, 8], [1, 2048, 2048, 16]
    info = analyze_model(edited(CONV, edit), name="big")
    assert info.peak_activation_bytes == 2048 * 2048 * 8 + 2048 * 2048 * 16
    assert info.macs == 2048 * 2048 * 16 * 3 * 3 * 8 > 2**32
    assert all(isinstance(v, int) and v >= 0 for v in (info.macs, info.peak_activation_bytes, info.parameters))
    assert info.notes == ()  # every shape as LiteRT computes it


def test_constant_whose_shape_outgrows_its_buffer_is_refused() -> None:
    # The filter claims 2^32 x 3 x 8 int8 weights but stores 1,152 bytes: a bit flip in a shape.
    data, name = with_shape("filter", [2**16, 2**16, 3, 8])
    with pytest.raises(ModelError, match=r"declares shape .* but its buffer holds 1,152 bytes") as caught:
        analyze_model(data, name="lying-filter")
    assert repr(name) in str(caught.value)
    assert MAX_TENSOR_ELEMENTS > 2**32 * 3 * 8  # so it is the buffer check that caught it, not the cap


def test_negative_dims_are_placeholders_refused_not_counted_as_1() -> None:
    # LiteRT refuses the file ("invalidly specified"), so nothing sizes the output: its 1x1 placeholder
    # figures (1,152 MACs for the 32x32 conv's 147,456) must not come out.
    data, name = with_shape("output", [1, -1, -1, 16])
    with pytest.raises(ModelError, match=rf"tensor {name!r} has placeholder dims.*re-export"):
        analyze_model(data, name="neg")


def _analysis_or_model_error(data: bytes) -> ModelInfo | None:
    try:
        info = analyze_model(data, name="damaged")
    except ModelError:
        return None
    # Whatever survives is a sane analysis: non-negative Python ints, bounded by the cap.
    if info.resolved:
        assert 0 <= info.macs and 0 <= info.peak_activation_bytes <= 64 * MAX_TENSOR_ELEMENTS * 16
    assert 0 <= info.parameters
    return info


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(SHIPPED) - 1))
def test_any_truncation_of_a_shipped_model_is_a_model_error(cut: int) -> None:
    start = time.monotonic()
    assert _analysis_or_model_error(SHIPPED[:cut]) is None or cut > len(SHIPPED) // 2
    assert time.monotonic() - start < 5.0  # bounded: a damaged file never hangs the analysis


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(SHIPPED) - 1), st.integers(0, 7)), min_size=1, max_size=4))
def test_any_bit_flips_in_a_shipped_model_give_an_analysis_or_a_model_error(flips) -> None:
    damaged = bytearray(SHIPPED)
    for offset, bit in flips:
        damaged[offset] ^= 1 << bit
    start = time.monotonic()
    _analysis_or_model_error(bytes(damaged))
    assert time.monotonic() - start < 5.0
