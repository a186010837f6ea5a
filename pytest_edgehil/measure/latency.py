"""Running a model on a device under test: host-side quantization, one inference, many timings."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from pytest_edgehil.bench import DeviceUnderTest
from pytest_edgehil.config.catalog import CatalogModel
from pytest_edgehil.errors import InvalidPayload, ModelError
from pytest_edgehil.link.framing import MAX_PAYLOAD
from pytest_edgehil.link.messages import TIMINGS_PER_RUN, Result, StageTiming, batch_size, pipeline_depth
from pytest_edgehil.link.payload import TIMING_BYTES
from pytest_edgehil.link.pipeline import evaluate
from pytest_edgehil.measure.timer_resolution import STAGES, check_timer_resolves
from pytest_edgehil.model.runtime import TensorSpec


def to_model_input(model: CatalogModel, image: np.ndarray) -> np.ndarray:
    """An 8-bit image as the raw tensor the model's first input takes (scaled to the card's range).

    A uint8 image goes through a 256-entry table of that same conversion (`_uint8_table`): each pixel
    value maps to one raw value, so the table gives the very bytes the arithmetic does, in one gather
    instead of five passes over the image (a seventh of an accuracy evaluation's host time).
    Raises ModelError for a model with several inputs, an image whose shape is not the input's (size-1
    dimensions aside) and for NaN in a float image (`TensorSpec.quantize`)."""
    return model_input(model)(image)


def model_input(model: CatalogModel) -> Callable[[np.ndarray], np.ndarray]:
    """`to_model_input` for `model` as a function of the image: what depends on the model alone (one input,
    its card's range fits it, the uint8 table) is checked and computed once, here, and each image's own
    checks (its shape, NaN) run per image. Raises ModelError as `to_model_input` for the model's part.

    Why: an evaluation converts every image of a set for one model; re-reading the card and the specs per
    image was a third of the conversion's time."""
    inputs = model.info.inputs
    # One image per sample fills input 0 only; a device runs the other inputs at whatever they hold (zeros
    # after a load, the previous test's tensors later), so their outputs would be scored as the model's.
    if len(inputs) != 1:
        listed = ", ".join(f"{spec.name!r} {spec.describe()}" for spec in inputs)
        raise ModelError(f"model {model.name!r} ({model.path}) has {len(inputs)} inputs ({listed}); an evaluation "
                         "set gives one image per sample, so only single-input models can be scored. Export a "
                         "single-input model to score (fold fixed inputs into it as constants)")
    spec = inputs[0]
    lo, hi = model.input_range
    stated = model.input_range_stated
    problem = _scaling_problem(spec, float(lo), float(hi), stated)
    if problem is not None:
        said = "its card's `input.range`" if stated else "the default [0, 1] (its card gives no `input.range`)"
        raise ModelError(f"model {model.name!r} ({model.path}): {problem}. The range is {said}: give the range "
                         f"the model takes as `input.range` in its card {model.card_path} (docs/config-files.md); "
                         "the images were not scored")
    shape, squeezed = spec.shape, _squeezed(spec.shape)
    table, offset = _uint8_table(spec, float(lo), float(hi))
    add = np.uint8(offset) if offset is not None else None  # the table is "pixel + offset" in bytes: one add

    def convert(image: np.ndarray) -> np.ndarray:
        pixels = np.asarray(image)
        # Reshaped blindly, an image of another shape with as many pixels (48x192 for 96x96) would run as a
        # scrambled image and give a plausible output.
        if pixels.shape != shape and _squeezed(pixels.shape) != squeezed:
            raise ModelError(f"model {model.name!r}: an image of shape {list(pixels.shape)} does not fit its input "
                             f"{spec.describe()} (its shape, with or without the size-1 dimensions); resize or "
                             "convert the images to the model's input size")
        if pixels.dtype != np.uint8:
            _check_pixels(model, pixels)
        if pixels.dtype == np.uint8:
            if add is not None:  # int8 [0, 1] inputs: -128 in bytes
                return (pixels + add).view(table.dtype).reshape(shape)
            return table[pixels].reshape(shape)
        return _convert(spec, lo, hi, pixels).reshape(shape)

    return convert


def _check_pixels(model: CatalogModel, pixels: np.ndarray) -> None:
    """ModelError for an image in a dtype other than uint8 whose values are not 8-bit pixel values: NaN or
    infinite, outside 0…255 (already-quantized int8, a [-1, 1] normalization), or fractions within [0, 1]
    (an image already divided by 255). Scaled to the card's range as if they were pixels, each would run
    as another image (nearly black, shifted) and give a plausible wrong score. Fractional values over a
    wider range (a float image from a bilinear resize) are pixels and pass; so does an all-0/1 image."""
    if pixels.size == 0:
        return
    if pixels.dtype.kind == "f" and not np.all(np.isfinite(pixels)):
        seen = "NaN or infinite values"
    else:
        low, high = float(np.min(pixels)), float(np.max(pixels))
        fractions = pixels.dtype.kind == "f" and high <= 1.0 and not np.all(pixels == np.rint(pixels))
        if 0 <= low and high <= 255 and not fractions:
            return
        seen = f"values in [{low:g}, {high:g}]" + (" (an image scaled to [0, 1]?)" if fractions else "")
    raise ModelError(f"model {model.name!r}: an image of {pixels.dtype} holds {seen}, not 8-bit pixel values "
                     "0…255: images are fed as a camera delivers them and the card's `input.range` maps them to "
                     "the model's input. Pass the pixels (as uint8; an image scaled to [0, 1]: np.rint(x * 255)"
                     ".astype(np.uint8)); nothing was sent to the device")


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _convert(spec: TensorSpec, lo: float, hi: float, pixels: np.ndarray) -> np.ndarray:
    scaled = lo + np.asarray(pixels, dtype=np.float32) / 255.0 * (hi - lo)
    if spec.quantized:
        return spec.quantize(scaled)
    # An integer input without quantization takes whole numbers (`_scaling_problem`): rounded, not truncated.
    return (np.rint(scaled) if np.dtype(spec.dtype).kind in "iu" else scaled).astype(spec.dtype)


# A card range and a quantized input disagree when more of the pixel range saturates, or fewer of the
# input's codes are used, than this: [-1, 1] pixels into a [0, 1] input saturate 50 %, [0, 1] pixels into a
# [-1, 1] input use 50 % of its codes, while calibration on real images leaves a few % either way.
_MAX_SATURATED = 0.25
_MIN_CODES_USED = 0.6


@functools.lru_cache(maxsize=64)
def _scaling_problem(spec: TensorSpec, lo: float, hi: float, stated: bool = False) -> str | None:
    """Why pixels mapped to [lo, hi] are not what the integer input `spec` takes (None when they are, and
    for a float input, which takes any range): an unquantized integer input takes whole numbers in its
    dtype's range; a quantized one represents scale * ([qmin, qmax] - zero_point), which the range must
    mostly stay inside (`_MAX_SATURATED`) and, unless the card states it (`stated`), mostly fill
    (`_MIN_CODES_USED`). Why a stated range may fill less: a symmetric int8 input (zero point 0, as ONNX
    QDQ and Vitis AI quantize) represents [-1, 1] for [0, 1] images; only the card can say so, while the
    default [0, 1] into an input quantized for [-1, 1] is the usual missing card."""
    dtype = np.dtype(spec.dtype)
    if dtype.kind not in "iu":
        return None
    info = np.iinfo(dtype)
    where = f"input {spec.name!r} {spec.describe()}"
    if not spec.quantized:
        values = lo + np.arange(256, dtype=np.float32) / 255.0 * (hi - lo)  # as `_convert` computes them
        if np.max(np.abs(values - np.rint(values))) > 1e-3:
            return (f"pixels map to [{lo:g}, {hi:g}] (p = 1 gives {values[1]:.6g}), not whole numbers, but {where} "
                    "has no quantization: it takes integers as they are (raw 8-bit pixels: [0, 255])")
        if lo < info.min or hi > info.max:
            return f"pixels map to [{lo:g}, {hi:g}] but {where} has no quantization and {dtype.name} holds " \
                   f"[{info.min}, {info.max}]"
        return None
    rmin, rmax = spec.scale * (info.min - spec.zero_point), spec.scale * (info.max - spec.zero_point)
    overlap = max(0.0, min(hi, rmax) - max(lo, rmin))
    if dtype == np.int16 and spec.zero_point == 0 and (lo >= 0.0 or hi <= 0.0):
        # TFLite's 16x8 mode quantizes int16 activations symmetrically (zero point 0 always): an input
        # calibrated on [0, 1] images represents [-1, 1], so a one-signed range can fill only its half.
        rmin, rmax = (0.0, rmax) if lo >= 0.0 else (rmin, 0.0)
    saturated, used = 1.0 - overlap / (hi - lo), overlap / (rmax - rmin)
    mapped = f"pixels map to [{lo:g}, {hi:g}] but {where} represents [{rmin:.4g}, {rmax:.4g}]"
    if saturated > _MAX_SATURATED:
        return f"{mapped}: {100 * saturated:.0f} % of the pixel range would saturate"
    if used < _MIN_CODES_USED and not stated:
        return f"{mapped}: the images would use only {100 * used:.0f} % of its codes"
    return None


@functools.lru_cache(maxsize=64)
def _uint8_table(spec: TensorSpec, lo: float, hi: float) -> tuple[np.ndarray, int | None]:
    """The raw input value of each of the 256 pixel values (read-only: shared between calls), and, for a
    one-byte raw type, the offset k when every raw byte is (pixel + k) mod 256 (None otherwise)."""
    table = _convert(spec, lo, hi, np.arange(256, dtype=np.uint8))
    table.setflags(write=False)
    offset = None
    if table.itemsize == 1:
        k = int(table.view(np.uint8)[0])
        if np.array_equal(table.view(np.uint8), (np.arange(256) + k).astype(np.uint8)):
            offset = k
    return table, offset


def check_outputs(dut: DeviceUnderTest, model: CatalogModel, result: Result, what: str) -> Result:
    """`result` (of one inference of `model`, `what` names it: "run(1)", "image 7") if its outputs are the
    model's: as many, each of its output spec's dtype and shape, float ones finite. InvalidPayload naming the
    device, port, output, what came and what the model has otherwise.

    Why: a CRC proves the bytes arrived as sent, not that the firmware packed the model's outputs. An int8
    output labelled uint8 dequantizes 256 x scale off wherever it is negative; a dropped element shifts
    every later value. Both would be scored as plausible numbers."""
    specs = model.info.outputs
    c = dut.client
    problem = ""
    if len(result.outputs) != len(specs):
        problem = f"{len(result.outputs)} outputs; the model has {len(specs)}"
    else:
        for index, (spec, output) in enumerate(zip(specs, result.outputs)):
            raw = np.asarray(output)
            if raw.dtype != spec.dtype or tuple(raw.shape) != tuple(spec.shape):
                problem = (f"output {index} is {raw.dtype.name}{list(raw.shape)}; the model's output {index} "
                           f"({spec.name!r}) is {np.dtype(spec.dtype).name}{list(spec.shape)}")
                break
            if raw.dtype.kind == "f" and not np.all(finite := np.isfinite(raw)):
                # No score: a firmware fault (an unset buffer, a zero scale); a metric would refuse it too,
                # without naming the board that sent it.
                first = raw.flat[int(np.argmin(finite.ravel()))]
                problem = (f"output {index} ({spec.name!r}) holding {int(raw.size - finite.sum())} of {raw.size} "
                           f"elements NaN or infinite (first: {float(first)!r}); compare with the model on the "
                           "host (LiteRT) on the same input")
                break
    if problem:
        raise InvalidPayload(
            f"device {c.name!r} on {c.port}: {what} of model {model.name!r} answered with {problem}. The "
            "outputs were not dequantized or recorded. Check the firmware's output packing (type code, shape, "
            "order) against docs/protocol.md and that it runs this model, then rerun.")
    return result


def infer(dut: DeviceUnderTest, model: CatalogModel, image: np.ndarray) -> np.ndarray:
    """One inference on the device; the scored output (`CatalogModel.scored_output`: the only one, or the
    card's `output.name`), dequantized to float. InvalidPayload for outputs that are not the model's
    (`check_outputs`); ModelError for several outputs and no name."""
    index = model.scored_output
    dut.client.set_input(0, to_model_input(model, image))
    result = check_outputs(dut, model, dut.client.run(1, timed=False), "run(1)")
    spec = model.info.outputs[index]
    raw = np.asarray(result.outputs[index])
    return spec.dequantize(raw) if spec.quantized else raw.astype(np.float32)


def infer_many(dut: DeviceUnderTest, model: CatalogModel, images: Iterable[np.ndarray]) -> np.ndarray:
    """The scored output (`CatalogModel.scored_output`) of one inference per image, dequantized, stacked:
    shape (n_images, *output shape) (no image: an empty array of that shape, no request sent).

    A device that offers EVAL (HELLO capability `eval`) gets pipelined requests with as many in flight as
    it offers (`link.pipeline`): EVAL_BATCH requests of as many images as it takes (`batch=N`), else one
    EVAL per image; another gets SET_INPUT + RUN 1 per image. All give the same outputs, each checked
    against the model's output specs (`check_outputs`: InvalidPayload). Raises what `DeviceClient.run` raises.
    """
    index = model.scored_output
    spec = model.info.outputs[index]
    depth = pipeline_depth(dut.hello.capabilities)
    if depth == 0:
        values = [infer(dut, model, image) for image in images]
        return np.stack(values) if values else np.empty((0, *spec.shape), np.float32)
    reply_bytes = sum(spec.size_bytes for spec in model.info.outputs)
    results = evaluate(dut.client, _model_inputs(model, images), depth=depth,
                       batch=batch_size(dut.hello.capabilities), reply_bytes=reply_bytes)
    if not results:  # no image: np.stack refuses an empty list
        return np.empty((0, *spec.shape), np.float32)
    if not _outputs_sound(model, results):  # the check image by image names the first one at fault
        for n, result in enumerate(results, start=1):
            check_outputs(dut, model, result, f"evaluate (image {n})")
    raws = np.stack([np.asarray(result.outputs[index]) for result in results])
    return spec.dequantize(raws) if spec.quantized else raws.astype(np.float32)  # elementwise: all at once


def _model_inputs(model: CatalogModel, images: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray]]:
    """Each image as the model's input tensors (`model_input`), the model's part checked at the first image
    (an evaluation of no image refuses nothing, as before)."""
    convert: Callable[[np.ndarray], np.ndarray] | None = None
    for image in images:
        if convert is None:
            convert = model_input(model)
        yield (convert(image),)


def _outputs_sound(model: CatalogModel, results: list[Result]) -> bool:
    """Whether every result passes `check_outputs`: as many outputs as the model has, each of its spec's dtype
    and shape, float ones finite; the finiteness checked once per output over all results. False for any
    fault (the caller then checks result by result, naming the first)."""
    specs = [(np.dtype(spec.dtype), tuple(spec.shape)) for spec in model.info.outputs]
    for result in results:
        if len(result.outputs) != len(specs):
            return False
        for (dtype, shape), output in zip(specs, result.outputs):
            raw = np.asarray(output)
            if raw.dtype != dtype or raw.shape != shape:
                return False
    return all(np.isfinite(np.stack([np.asarray(result.outputs[j]) for result in results])).all()
               for j, (dtype, _) in enumerate(specs) if dtype.kind == "f")


def stage_timings(dut: DeviceUnderTest, count: int, stages: Sequence[str] = STAGES, *,
                  output_bytes: int | None = None) -> tuple[StageTiming, ...]:
    """`count` back-to-back inferences of the active model and input, with per-stage device timings; over
    what one RESULT frame carries, in RUNs of at most that many (their timings in order): `TIMINGS_PER_RUN`,
    or with `output_bytes` (the model's outputs, which each RESULT carries too) what the rest of the frame
    holds. A long latency run loses nothing by being split: each inference's stage times are its own, the
    host's gap between two RUNs is in none of them. TimerTooCoarse where the device's timer is too coarse for
    one of `stages`, those the caller takes a figure of ("readout", "inference", "retrieval", "end-to-end";
    `timer_resolution`)."""
    per_run = TIMINGS_PER_RUN
    if output_bytes is not None:  # 1 KiB for the RESULT's own fields and the outputs' headers
        per_run = max(1, min(per_run, (MAX_PAYLOAD - 1024 - output_bytes) // TIMING_BYTES))
    timings: list[StageTiming] = []
    while len(timings) < count:
        timings.extend(dut.client.run(min(per_run, count - len(timings))).timings)
    # Behind a timer coarser than a stage, its median reading is a tick away from the truth (0 ms for 0.23 ms).
    check_timer_resolves(timings, device=dut.name, port=dut.port, stages=stages)
    return tuple(timings)


def timing_arrays_ms(timings: Iterable[StageTiming]) -> dict[str, np.ndarray]:
    ts = list(timings)
    return {
        "readout_ms": np.array([t.readout_us for t in ts]) / 1e3,
        "inference_ms": np.array([t.inference_us for t in ts]) / 1e3,
        "retrieval_ms": np.array([t.retrieval_us for t in ts]) / 1e3,
        "end_to_end_ms": np.array([t.readout_us + t.inference_us + t.retrieval_us for t in ts]) / 1e3,
    }
