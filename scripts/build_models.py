"""Build the shipped reference models, their evaluation sets and their model cards.

    python scripts/build_models.py            # everything (needs `pip install -e '.[models]'`)
    python scripts/build_models.py data       # fixtures/data/*.npz only (numpy)
    python scripts/build_models.py train      # train + convert to .tflite, write partial cards (TensorFlow)
    python scripts/build_models.py cards      # evaluate the .tflite files with LiteRT, finish the cards
    python scripts/build_models.py train --only qsegment,tinytracker

The phases are separate so that an environment with TensorFlow but without LiteRT / scikit-learn can
train, and the evaluation that goes into the cards always runs the shipped int8 files through
ai_edge_litert, exactly as the tests re-check them. Training runs on the CPU in a few minutes per model.
The models are small stand-ins trained on `pytest_edgehil.sim.synthetic` data, not the published networks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_edgehil.sim import synthetic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_zoo import HEADS, build_keras, count_macs, deployed_parameters, head_parameters

MODELS_DIR = REPO / "fixtures" / "models"
DATA_DIR = REPO / "fixtures" / "data"
TRAIN_SEED = 0  # generator seed of every training set; evaluation sets use synthetic.EVAL_SETS' seeds
CALIBRATION_SEED = 1  # generator seed of the post-training-quantization representative set
CALIBRATION_N = 128
BINARY_THRESHOLD = 0.5  # binary_accuracy counts a pixel positive when its probability is > this

REFERENCES = {
    "qsegment": "Q-Segment: Segmenting Images In-Sensor for Vessel-Based Medical Diagnosis "
                "(Sony IMX500 in-sensor inference, CHASE_DB1 retinal vessels)",
    "tinytracker": "TinyTracker: Ultra-Fast and Ultra-Low-Power Edge Vision In-Sensor for Gaze Estimation "
                   "(Sony IMX500, GazeCapture; 600 KB int8 model)",
    "lowres_seg": "Low-resolution input, high-resolution output semantic segmentation on the NVIDIA Jetson "
                  "Nano (a learned upsampling head of fewer than 200 parameters)",
}
STAND_IN_NOTE = ("This is a small stand-in trained on synthetic data from pytest_edgehil.sim.synthetic, with the "
                 "published model's task, input/output contract and relative cost; it is not the published "
                 "network and its metrics say nothing about the paper's.")


@dataclass(frozen=True)
class ModelSpec:
    """One shipped model: where it goes, what it learns from and how long it trains."""

    name: str  # file stem; may include a sub-directory ("variants/qsegment_wide")
    task: str
    reference_key: str
    generator: str
    train_n: int
    epochs: int
    batch_size: int
    learning_rate: float
    eval_set: str
    quantized: bool = True
    float_of: str | None = None  # a float32 export of another spec's trained network


SPECS: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("qsegment", "binary-segmentation", "qsegment", "vessel_images", 720, 30, 16, 3e-3,
              "vessels_eval.npz"),
    ModelSpec("variants/qsegment_wide", "binary-segmentation", "qsegment", "vessel_images", 720, 12, 16, 3e-3,
              "vessels_eval.npz"),
    ModelSpec("tinytracker", "gaze-regression", "tinytracker", "gaze_images", 6000, 14, 32, 1e-3,
              "gaze_eval.npz"),
    ModelSpec("tinytracker_float", "gaze-regression", "tinytracker", "gaze_images", 0, 0, 0, 0.0,
              "gaze_eval.npz", quantized=False, float_of="tinytracker"),
    ModelSpec("lowres_seg", "segmentation-upsampling", "lowres_seg", "lowres_seg_pairs", 1200, 16, 16, 3e-3,
              "lowres_eval.npz"),
    # The same network without the learned high-res head, trained the same way: the pair the paper compares.
    ModelSpec("variants/lowres_seg_base", "segmentation-upsampling", "lowres_seg", "lowres_seg_pairs", 1200, 16,
              16, 3e-3, "lowres_eval.npz"),
]}


# ------------------------------------------------------------------------------------------------ data


def build_data() -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for file_name in synthetic.EVAL_SETS:
        arrays = synthetic.make_eval_set(file_name)
        np.savez_compressed(DATA_DIR / file_name, **arrays)
        print(f"wrote {file_name}: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in arrays.items()))


@functools.lru_cache(maxsize=4)
def _generated(generator: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return synthetic.GENERATORS[generator](n, seed=seed)


def training_arrays(spec: ModelSpec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs as float32 in [0, 1] and training targets, from the spec's generator."""
    images, targets = _generated(spec.generator, n, seed)
    x = images.astype(np.float32) / 255.0
    if spec.task == "gaze-regression":
        return x, targets.astype(np.float32)
    return x, targets[..., None].astype(np.float32)


# ------------------------------------------------------------------------------------------- training


def train(spec: ModelSpec) -> tuple[Any, dict[str, Any]]:
    from tensorflow import keras

    x, y = training_arrays(spec, spec.train_n, TRAIN_SEED)
    model = build_keras(spec.name, TRAIN_SEED)
    # trained with a free batch dimension; `convert` traces the graph at batch 1
    schedule = keras.optimizers.schedules.CosineDecay(spec.learning_rate,
                                                      spec.epochs * (len(x) // spec.batch_size))
    if spec.task == "gaze-regression":
        model.compile(keras.optimizers.Adam(schedule), loss=keras.losses.Huber(delta=1.0), metrics=["mae"])
    else:
        model.compile(keras.optimizers.Adam(schedule), loss="binary_crossentropy", metrics=["auc"])
    started = time.perf_counter()
    history = model.fit(x, y, batch_size=spec.batch_size, epochs=spec.epochs, verbose=2, shuffle=True)
    train_s = time.perf_counter() - started
    return model, {
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "train_images": spec.train_n,
        "train_seed": TRAIN_SEED,
        "optimizer": f"Adam, cosine-decayed from {spec.learning_rate}",
        "final_train_loss": round(float(history.history["loss"][-1]), 5),
        "training_time_s": round(train_s, 1),
    }


def convert(model: Any, spec: ModelSpec, quantized: bool) -> bytes:
    import tensorflow as tf

    # Keras 3 models convert reliably through an exported SavedModel (a concrete function keeps
    # resource variables the calibrator cannot read); the signature fixes the batch at 1.
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, input_signature=[tf.TensorSpec([1, *model.input.shape[1:]], tf.float32)],
                     verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if quantized:
            calib_x, _ = training_arrays(spec, CALIBRATION_N, CALIBRATION_SEED)

            def representative() -> Any:
                for image in calib_x:
                    yield [image[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return bytes(converter.convert())


def partial_card(spec: ModelSpec, model: Any, training: dict[str, Any], quantized: bool) -> dict[str, Any]:
    import tensorflow as tf

    in_shape = [1, *model.input.shape[1:]]
    out_shape = [1, *model.output.shape[1:]]
    dtype = "int8" if quantized else "float32"
    eval_spec = synthetic.EVAL_SETS[spec.eval_set]
    inputs = {
        "binary-segmentation": "RGB fundus image",
        "gaze-regression": "grayscale face patch",
        "segmentation-upsampling": "low-resolution RGB scene",
    }
    outputs: dict[str, Any] = {
        "binary-segmentation": {"meaning": "vessel probability per pixel", "range": [0.0, 1.0]},
        "gaze-regression": {"meaning": "gaze point (x, y) on the screen in cm, camera at the origin",
                            "range": [list(synthetic.GAZE_X_RANGE_CM), list(synthetic.GAZE_Y_RANGE_CM)]},
        "segmentation-upsampling": {"meaning": "foreground probability per high-resolution pixel (4x the input)",
                                    "range": [0.0, 1.0]},
    }
    card: dict[str, Any] = {
        "name": Path(spec.name).name,
        "task": spec.task,
        "input": {
            "shape": in_shape, "dtype": dtype, "layout": "NHWC",
            "meaning": f"{inputs[spec.task]}, 8-bit pixel p mapped to p / 255",
            "range": [0.0, 1.0],
        },
        "output": {"shape": out_shape, "dtype": dtype, "layout": "NHWC" if len(out_shape) == 4 else "NC",
                   **outputs[spec.task]},
        "quantization": ("full-integer post-training quantization, int8 weights and activations, int8 input "
                         "and output (quantize with the tensor's scale / zero point); "
                         f"representative set: {CALIBRATION_N} images of {spec.generator}(seed="
                         f"{CALIBRATION_SEED})") if quantized else "none (float32)",
        "dataset": {
            "generator": f"pytest_edgehil.sim.synthetic.{spec.generator}",
            "train": {"n": spec.train_n or SPECS[spec.float_of or spec.name].train_n, "seed": TRAIN_SEED},
            "eval": {"file": f"fixtures/data/{spec.eval_set}", "n": eval_spec.n, "seed": eval_spec.seed,
                     "keys": list(eval_spec.keys)},
        },
        "provenance": {
            "built_by": "scripts/build_models.py",
            "tensorflow": tf.__version__,
            "date": dt.date.today().isoformat(),
            **training,
        },
        "parameters": deployed_parameters(model),
        "macs": count_macs(model),
        "reference": REFERENCES[spec.reference_key],
        "note": STAND_IN_NOTE,
    }
    if spec.task == "segmentation-upsampling":
        card["upsampling_head"] = {"layer": HEADS[Path(spec.name).name], "parameters": head_parameters(model)}
    if spec.float_of:
        card["float_of"] = spec.float_of
    return card


def build_models(names: list[str]) -> None:
    trained: dict[str, tuple[Any, dict[str, Any]]] = {}
    for name in names:
        spec = SPECS[name]
        source = spec.float_of or name
        if source not in trained:
            print(f"--- training {source}", flush=True)
            trained[source] = train(SPECS[source])
        model, training = trained[source]
        data = convert(model, spec, spec.quantized)
        path = MODELS_DIR / f"{name}.tflite"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        card = partial_card(spec, model, training, spec.quantized)
        path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}: {len(data)} bytes, {card['parameters']} params, "
              f"{card['macs'] / 1e6:.2f} M MACs", flush=True)


# ------------------------------------------------------------------------------------ evaluation/cards


def run_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    """Run a .tflite on uint8 images (mapped to [0, 1]) one at a time; returns dequantized float outputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for image in images:
        x = image.astype(np.float32)[None] / 255.0
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.rint(x / scale) + zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x.reshape(inp["shape"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y[0])
    return np.stack(results)


def evaluate(spec: ModelSpec, path: Path) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, roc_auc_score

    data = np.load(DATA_DIR / spec.eval_set)
    images, target = data[synthetic.EVAL_SETS[spec.eval_set].keys[0]], data[synthetic.EVAL_SETS[spec.eval_set].keys[1]]
    pred = run_tflite(path, images)
    if spec.task == "gaze-regression":
        metrics = {"gaze_error_cm": float(np.linalg.norm(pred - target, axis=1).mean())}
        if spec.quantized:
            float_path = MODELS_DIR / f"{spec.name}_float.tflite"
            if float_path.is_file():
                gap = np.linalg.norm(pred - run_tflite(float_path, images), axis=1).mean()
                metrics["quantization_gap_cm"] = float(gap)
        return {k: round(v, 5) for k, v in metrics.items()}
    prob, truth = pred.reshape(-1), target.reshape(-1)
    return {
        "roc_auc": round(float(roc_auc_score(truth, prob)), 5),
        "binary_accuracy": round(float(accuracy_score(truth, prob > BINARY_THRESHOLD)), 5),
    }


def finish_cards(names: list[str]) -> None:
    for name in names:
        spec = SPECS[name]
        path = MODELS_DIR / f"{name}.tflite"
        card_path = path.with_suffix(".json")
        card = json.loads(card_path.read_text(encoding="utf-8"))
        data = path.read_bytes()
        card["file_bytes"] = len(data)
        card["sha256"] = hashlib.sha256(data).hexdigest()
        card["metrics"] = evaluate(spec, path)
        card["metrics_how"] = (f"{'int8' if spec.quantized else 'float32'} .tflite run with ai_edge_litert on "
                               f"every sample of fixtures/data/{spec.eval_set}; input p / 255 quantized with the "
                               "input tensor's scale and zero point, output dequantized; "
                               + ("segmentation over all pixels: roc_auc = sklearn roc_auc_score, "
                                  f"binary_accuracy = sklearn accuracy_score of (prob > {BINARY_THRESHOLD})"
                                  if spec.task != "gaze-regression" else
                                  "gaze_error_cm = mean Euclidean distance to gaze_cm; quantization_gap_cm = "
                                  "mean Euclidean distance between int8 and float32 predictions"))
        card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"{name}: {card['metrics']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", nargs="?", default="all", choices=["all", "data", "train", "cards"])
    parser.add_argument("--only", default="", help="comma-separated model names (default: all)")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SPECS)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {', '.join(SPECS)}")
    if args.phase in ("all", "data"):
        build_data()
    if args.phase in ("all", "train"):
        build_models(names)
    if args.phase in ("all", "cards"):
        finish_cards(names)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
