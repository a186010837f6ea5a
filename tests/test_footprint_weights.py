"""Weights in the footprint: copies the runtime makes of compressed weights, and which constants are parameters.

* A DEQUANTIZE of a constant (float16 weights, int8 weights dequantized at run time) makes a float32 copy of
  the weights. TFLM's planner allocates it in the arena like any tensor an op writes (from that op to its
  last reader, every inference); LiteRT keeps it for the interpreter's life. The peak activation memory
  follows TFLM's planner, so the copy counts over its TFLM lifetime.
* Parameters are what Keras counts: learned weights. A single number broadcast over a tensor (Rescaling's
  1/255, an offset) is a layer's setting, not a weight; a PReLU's alpha is a weight whatever its size.

Every expected figure is computed here from the shapes the test writes, never read from the analysis.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.model.info import analyze_model
from pytest_edgehil.model.runtime import ModelRunner

from .tflite_builder import Subgraph, build, options

F32 = 4  # bytes per float32 element
CONV = {"padding": 0, "strideH": 1, "strideW": 1}  # 3x3 'same', stride 1


# --- weights a DEQUANTIZE expands: in the arena from the DEQUANTIZE to their last reader -------------------

def float16_two_conv_model() -> bytes:
    """x [1, 8, 8, 4] -> CONV (w1) -> y1 -> CONV (w2) -> y2; both filters [4, 3, 3, 4] stored float16 and
    dequantized by the two DEQUANTIZE ops the converter puts first (they read no activation)."""
    g = Subgraph()
    g.tensor("x", (1, 8, 8, 4))
    for k in ("1", "2"):
        g.tensor(f"w{k}_f16", (4, 3, 3, 4), "FLOAT16", const=True)
        g.tensor(f"w{k}", (4, 3, 3, 4))
        g.tensor(f"b{k}", (4,), const=True)
        g.tensor(f"y{k}", (1, 8, 8, 4))
    g.op("DEQUANTIZE", ["w1_f16"], ["w1"])
    g.op("DEQUANTIZE", ["w2_f16"], ["w2"])
    g.op("CONV_2D", ["x", "w1", "b1"], ["y1"], options("Conv2D", **CONV))
    g.op("CONV_2D", ["y1", "w2", "b2"], ["y2"], options("Conv2D", **CONV))
    g.inputs, g.outputs = ["x"], ["y2"]
    return build(g)


def test_float16_weights_the_runtime_dequantizes_count_in_the_peak() -> None:
    data = float16_two_conv_model()
    (y,) = ModelRunner(data, name="f16").run_raw([np.ones((1, 8, 8, 4), np.float32)])
    assert y.shape == (1, 8, 8, 4)  # LiteRT runs it
    x = y1 = y2 = 8 * 8 * 4 * F32
    w1 = w2 = 4 * 3 * 3 * 4 * F32  # the float32 copies
    live = [x + w1,                # DEQUANTIZE w1
            x + w1 + w2,           # DEQUANTIZE w2
            x + w1 + w2 + y1,      # CONV 1: x and w1 read for the last time
            w2 + y1 + y2]          # CONV 2
    info = analyze_model(data)
    assert info.peak_activation_bytes == max(live) == 3200
    assert info.parameters == 2 * (4 * 3 * 3 * 4 + 4) and info.weight_dtype == "float16"
    assert info.macs == 2 * 8 * 8 * 4 * 3 * 3 * 4  # the DEQUANTIZEs are no MACs


def test_int8_weights_dequantized_at_run_time_count_in_the_peak() -> None:
    g = Subgraph()
    g.tensor("x", (1, 8, 8, 4))
    g.tensor("w_int8", (6, 3, 3, 4), "INT8", const=True, scales=[0.5])
    g.tensor("w", (6, 3, 3, 4))
    g.tensor("b", (6,), const=True)
    g.tensor("y", (1, 8, 8, 6))
    g.op("DEQUANTIZE", ["w_int8"], ["w"])
    g.op("CONV_2D", ["x", "w", "b"], ["y"], options("Conv2D", **CONV))
    g.inputs, g.outputs = ["x"], ["y"]
    data = build(g)
    (y,) = ModelRunner(data, name="int8w").run_raw([np.ones((1, 8, 8, 4), np.float32)])
    assert np.allclose(y[0, 4, 4], 3 * 3 * 4 * 0.5 + 1)  # an inner pixel: 36 taps of 1 x 0.5, bias 1
    x, w, out = 8 * 8 * 4 * F32, 6 * 3 * 3 * 4 * F32, 8 * 8 * 6 * F32
    assert analyze_model(data).peak_activation_bytes == max(x + w, x + w + out) == 3424


# --- parameters: learned weights, not a layer's fixed numbers ------------------------------------------

def rescaled_conv_model() -> bytes:
    """Keras's Rescaling(scale=1/255, offset=-1) in front of a Conv2D(6, 3): MUL by a scalar, ADD a
    one-element offset, then the conv (filter [6, 3, 3, 4], bias [6])."""
    g = Subgraph()
    g.tensor("x", (1, 8, 8, 4))
    g.tensor("scale", (), const=True, data=np.float32(1 / 255).tobytes())
    g.tensor("offset", (1,), const=True, data=np.float32(-1).tobytes())
    g.tensor("scaled", (1, 8, 8, 4))
    g.tensor("shifted", (1, 8, 8, 4))
    g.tensor("w", (6, 3, 3, 4), const=True)
    g.tensor("b", (6,), const=True)
    g.tensor("y", (1, 8, 8, 6))
    g.op("MUL", ["x", "scale"], ["scaled"])
    g.op("ADD", ["scaled", "offset"], ["shifted"])
    g.op("CONV_2D", ["shifted", "w", "b"], ["y"], options("Conv2D", **CONV))
    g.inputs, g.outputs = ["x"], ["y"]
    return build(g)


def test_a_rescaling_constant_is_not_a_parameter() -> None:
    data = rescaled_conv_model()
    (y,) = ModelRunner(data, name="rescale").run_raw([np.full((1, 8, 8, 4), 255, np.float32)])
    assert np.allclose(y[0, 4, 4], 0 * 36 + 1)  # 255/255 - 1 = 0 on every tap: the bias alone
    assert analyze_model(data).parameters == 6 * 3 * 3 * 4 + 6  # Keras: Rescaling 0, Conv2D 222


@pytest.mark.parametrize("alpha_shape", [(1, 1, 4), (1, 1, 1)], ids=["per channel", "one shared alpha"])
def test_a_prelu_alpha_is_a_parameter_whatever_its_size(alpha_shape: tuple[int, ...]) -> None:
    """Keras's PReLU(shared_axes=[1, 2]) has one alpha per channel; shared over every axis, a single one:
    both are trained weights."""
    g = Subgraph()
    g.tensor("x", (1, 8, 8, 4))
    g.tensor("alpha", alpha_shape, const=True)
    g.tensor("y", (1, 8, 8, 4))
    g.op("PRELU", ["x", "alpha"], ["y"])
    g.inputs, g.outputs = ["x"], ["y"]
    assert analyze_model(build(g)).parameters == int(np.prod(alpha_shape))


def test_the_lowres_heads_extra_parameters_are_what_the_cards_count() -> None:
    """The paper's "< 200 extra parameters" counts the head's kernel and bias (Keras): lowres_seg's
    Conv2DTranspose head (4·4·8 + 1 = 129) against the base's 1x1 predictor (8 + 1 = 9), both on their cards."""
    import json

    from .conftest import REPO

    models = REPO / "fixtures" / "models"
    head = json.loads((models / "lowres_seg.json").read_text())["upsampling_head"]["parameters"]
    base = json.loads((models / "variants" / "lowres_seg_base.json").read_text())["upsampling_head"]["parameters"]
    assert (head, base) == (4 * 4 * 8 + 1, 8 + 1)
    extra = (analyze_model(models / "lowres_seg.tflite").parameters
             - analyze_model(models / "variants" / "lowres_seg_base.tflite").parameters)
    assert extra == head - base < 200
