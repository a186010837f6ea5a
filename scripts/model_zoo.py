"""The Keras architectures of the shipped reference models, and how their cost is counted for the cards.

Used by `build_models.py` (split out of it to keep one concept per file). TensorFlow is imported inside the
functions, so the script's data and card phases run without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

QSEGMENT_WIDTHS = (6, 12, 24)  # channels at 128, 64 and 32 px: about 9.8 M MACs
QSEGMENT_WIDE_WIDTHS = (10, 20, 40)  # about 2x the MACs: the "too heavy for its budget" variant
HEAD_LAYERS = ("upsampling_head", "lowres_logits")  # lowres_seg's layers after the shared encoder
HEADS = {  # how each lowres_seg variant turns the 64 px features into 256 px probabilities (for the cards)
    "lowres_seg": "Conv2DTranspose(1, kernel 4x4, stride 4) + sigmoid",
    "lowres_seg_base": "Conv2D(1, 1x1) at 64 px + bilinear 4x resize (no parameters) + sigmoid",
}


def build_keras(name: str, seed: int) -> Any:
    """The untrained keras.Model of shipped model `name`, weights initialised from `seed` (TensorFlow is
    imported only here, when training)."""
    import tensorflow as tf
    from tensorflow import keras
    layers = keras.layers

    def unit(h: Any, kind: str, filters: int, name: str, **kwargs: Any) -> Any:
        """conv -> batch norm -> ReLU; the converter folds the norm into the conv, so it costs no MACs."""
        if kind == "separable":
            h = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name, **kwargs)(h)
        else:
            size = 1 if kind == "pointwise" else 3
            h = layers.Conv2D(filters, size, padding="same", use_bias=False, name=name, **kwargs)(h)
        h = layers.BatchNormalization(name=f"{name}_bn")(h)
        return layers.ReLU(name=f"{name}_relu")(h)

    def qsegment(widths: tuple[int, int, int], model_name: str) -> keras.Model:
        c1, c2, c3 = widths
        x = keras.Input((128, 128, 3), name="image")
        e1 = unit(x, "conv", c1, "enc1")
        e2 = unit(layers.MaxPooling2D(2, name="down1")(e1), "separable", c2, "enc2a")
        e2 = unit(e2, "separable", c2, "enc2b")
        b = unit(layers.MaxPooling2D(2, name="down2")(e2), "separable", c3, "bottleneck_a")
        b = unit(b, "separable", c3, "bottleneck_b")
        b = unit(b, "pointwise", c2, "bottleneck_reduce")  # narrow before upsampling: decoder MACs stay low
        d2 = layers.Concatenate(name="skip2")([layers.UpSampling2D(2, name="up2")(b), e2])
        d2 = unit(d2, "separable", c2, "dec2")
        d2 = unit(d2, "pointwise", c1, "dec2_reduce")
        d1 = layers.Concatenate(name="skip1")([layers.UpSampling2D(2, name="up1")(d2), e1])
        y = layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="vessel_probability")(d1)
        return keras.Model(x, y, name=model_name)

    def tinytracker() -> keras.Model:
        x = keras.Input((96, 96, 1), name="face")
        h = unit(x, "conv", 16, "stem", strides=2)
        h = unit(h, "conv", 32, "stage1")
        h = unit(layers.MaxPooling2D(2, name="pool1")(h), "conv", 64, "stage2a")
        h = unit(h, "conv", 64, "stage2b")
        h = unit(layers.MaxPooling2D(2, name="pool2")(h), "conv", 96, "stage3")
        h = layers.Flatten(name="flatten")(layers.MaxPooling2D(2, name="pool3")(h))
        h = layers.Dense(144, activation="relu", name="fc1")(h)  # the dense layers carry most parameters
        y = layers.Dense(2, name="gaze_cm")(h)
        return keras.Model(x, y, name="tinytracker")

    def lowres_seg(head: bool, model_name: str) -> keras.Model:
        x = keras.Input((64, 64, 3), name="image_lowres")
        h = unit(x, "conv", 16, "enc1")
        h = unit(h, "conv", 16, "enc2", dilation_rate=2)  # dilations widen the context at low resolution
        h = unit(h, "conv", 16, "enc3", dilation_rate=4)
        h = unit(h, "conv", 8, "enc4")
        if head:
            # The learned upsampling head: each low-res feature vector paints its own 4x4 block (129 params).
            y = layers.Conv2DTranspose(1, 4, strides=4, padding="same", activation="sigmoid",
                                       name="upsampling_head")(h)
        else:
            # The base the paper starts from: predict at the input's resolution (a 1x1 conv, 9 params) and
            # resize the logits 4x bilinearly (no parameters), so both variants have the same output contract.
            logits = layers.Conv2D(1, 1, name="lowres_logits")(h)
            logits = layers.UpSampling2D(4, interpolation="bilinear", name="upsample_bilinear")(logits)
            y = layers.Activation("sigmoid", name="probability")(logits)
        return keras.Model(x, y, name=model_name)

    tf.keras.utils.set_random_seed(seed)
    builders: dict[str, Callable[[], keras.Model]] = {
        "qsegment": lambda: qsegment(QSEGMENT_WIDTHS, "qsegment"),
        "variants/qsegment_wide": lambda: qsegment(QSEGMENT_WIDE_WIDTHS, "qsegment_wide"),
        "tinytracker": tinytracker,
        "lowres_seg": lambda: lowres_seg(True, "lowres_seg"),
        "variants/lowres_seg_base": lambda: lowres_seg(False, "lowres_seg_base"),
    }
    return builders[name]()


def deployed_parameters(model: Any) -> int:
    """Parameters of the converted graph: batch norms fold into their conv's kernel and a per-channel bias."""
    from tensorflow import keras
    total = int(model.count_params())
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = int(layer.gamma.shape[0])
            total += channels - int(layer.count_params())  # 4 statistics per channel become 1 bias
    return total


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one inference, counted from the Keras layers (batch 1).

    conv: H_out*W_out*K*K*C_in*C_out; depthwise: H_out*W_out*K*K*C_in; separable: depthwise + 1x1
    pointwise; transposed conv: H_in*W_in*K*K*C_in*C_out; dense: in*out. Pooling, resizing,
    concatenation and activations count zero.
    """
    from tensorflow import keras
    layers = keras.layers
    total = 0
    for layer in model.layers:
        out_shape = layer.output.shape
        if isinstance(layer, layers.SeparableConv2D):
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            h, w = out_shape[1], out_shape[2]
            total += h * w * kh * kw * c_in * layer.depth_multiplier
            total += h * w * c_in * layer.depth_multiplier * layer.filters
        elif isinstance(layer, layers.DepthwiseConv2D):
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += out_shape[1] * out_shape[2] * kh * kw * c_in * layer.depth_multiplier
        elif isinstance(layer, layers.Conv2DTranspose):
            in_shape = layer.input.shape
            kh, kw = layer.kernel_size
            total += in_shape[1] * in_shape[2] * kh * kw * in_shape[-1] * layer.filters
        elif isinstance(layer, layers.Conv2D):
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += out_shape[1] * out_shape[2] * kh * kw * (c_in // layer.groups) * layer.filters
        elif isinstance(layer, layers.Dense):
            total += int(np.prod(layer.input.shape[1:])) * layer.units
    return int(total)


def head_parameters(model: Any) -> int:
    """Parameters of the layers after the shared encoder: the learned head, or the base's 1x1 predictor."""
    names = {layer.name for layer in model.layers}
    return sum(int(model.get_layer(name).count_params()) for name in HEAD_LAYERS if name in names)
