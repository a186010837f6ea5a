"""Build the tiny .tflite models the framework's own tests analyse and run (tests/data/*.tflite).

Each model is small enough (a few KB) to commit, and shaped so that its MACs, parameter count and
peak activation memory have a closed form the tests compute by hand. Needs TensorFlow, which the
package itself does not (install the `models` extra); the tests only read the committed files.

    python scripts/build_test_models.py            # writes tests/data/*.tflite
    python scripts/build_test_models.py --out DIR  # somewhere else

Models:
  conv_int8        int8 in/out, CONV_2D 3x3, 8->16 channels, 32x32, 'same' padding
  depthwise_int8   int8 in/out, DEPTHWISE_CONV_2D 3x3 on 16x16x8, 'same'
  dense_int8       int8 in/out, FULLY_CONNECTED 64->10
  dense_float      float32 everywhere, FULLY_CONNECTED 64->10 (the unquantized path)
  dense_fp16       float16 weights, float32 compute: DEQUANTIZE(constant) -> FULLY_CONNECTED 64->10
  skip_int8        int8 in/out: A = conv1x1(x), B = conv3x3(A), C = conv3x3(B), out = A + C
                   (A stays live across B and C: the lifetime test)
  mixed_float_io   float32 in/out, int8 inside: QUANTIZE, TRANSPOSE_CONV, AVERAGE_POOL_2D,
                   MAX_POOL_2D, DEQUANTIZE
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "data"
SEED = 1234


def conv_model() -> tf.keras.Model:
    x = tf.keras.Input((32, 32, 8), batch_size=1)
    y = tf.keras.layers.Conv2D(16, 3, padding="same")(x)
    return tf.keras.Model(x, y)


def depthwise_model() -> tf.keras.Model:
    x = tf.keras.Input((16, 16, 8), batch_size=1)
    y = tf.keras.layers.DepthwiseConv2D(3, padding="same")(x)
    return tf.keras.Model(x, y)


def dense_model() -> tf.keras.Model:
    x = tf.keras.Input((64,), batch_size=1)
    y = tf.keras.layers.Dense(10)(x)
    return tf.keras.Model(x, y)


def skip_model() -> tf.keras.Model:
    x = tf.keras.Input((16, 16, 4), batch_size=1)
    a = tf.keras.layers.Conv2D(8, 1, padding="same")(x)
    b = tf.keras.layers.Conv2D(16, 3, padding="same")(a)
    c = tf.keras.layers.Conv2D(8, 3, padding="same")(b)
    y = tf.keras.layers.Add()([a, c])
    return tf.keras.Model(x, y)


def mixed_model() -> tf.keras.Model:
    x = tf.keras.Input((8, 8, 4), batch_size=1)
    y = tf.keras.layers.Conv2DTranspose(6, 3, strides=2, padding="same")(x)
    y = tf.keras.layers.AveragePooling2D(2)(y)
    y = tf.keras.layers.MaxPooling2D(2)(y)
    return tf.keras.Model(x, y)


def _randomize(model: tf.keras.Model, rng: np.random.Generator) -> None:
    # Non-zero biases, so a bias that the converter dropped or mis-quantized would show up in outputs.
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in weights])


def convert(model: tf.keras.Model, *, quantize: bool | str, int8_io: bool) -> bytes:
    rng = np.random.default_rng(SEED)
    _randomize(model, rng)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize:
        shape = [int(d) for d in model.inputs[0].shape]

        def representative() -> Iterator[list[np.ndarray]]:
            for _ in range(32):
                yield [rng.uniform(-1.0, 1.0, shape).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return bytes(converter.convert())


MODELS: dict[str, tuple[Callable[[], tf.keras.Model], bool | str, bool]] = {
    # name: (builder, quantize (True: full int8, "float16": fp16 weights), int8 in/out)
    "conv_int8": (conv_model, True, True),
    "depthwise_int8": (depthwise_model, True, True),
    "dense_int8": (dense_model, True, True),
    "dense_float": (dense_model, False, False),
    "dense_fp16": (dense_model, "float16", False),
    "skip_int8": (skip_model, True, True),
    "mixed_float_io": (mixed_model, True, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default tests/data)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(SEED)
    for name, (builder, quantize, int8_io) in MODELS.items():
        data = convert(builder(), quantize=quantize, int8_io=int8_io)
        path = args.out / f"{name}.tflite"
        path.write_bytes(data)
        print(f"{path.name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
