"""A small data set laid out as the public CHASE_DB1 release, written as real JPEG and PNG files, and
an independent scorer for it (the retinal-vessel literature's definitions, in numpy, sharing no code
with `pytest_edgehil.measure`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# All 28 stems of the release, in the order the literature numbers them: subject 01..14, left then right.
STEMS = tuple(f"Image_{subject:02d}{eye}" for subject in range(1, 15) for eye in "LR")
# The split most deep-learning papers use on CHASE_DB1 (first 20 images train, last 8 test).
TEST_STEMS = STEMS[20:]
WIDTH, HEIGHT = 100, 96  # small, and not square, like the release's 999 x 960


def write_chase_db1(root: Path, stems: tuple[str, ...] = STEMS) -> None:
    """One fundus-like JPEG per stem (a reddish disc on black, dark vessel lines), its first observer's mask
    (those lines, 8-bit 0/255 PNG) and a second observer's mask that differs (every line one pixel wider)."""
    root.mkdir(parents=True, exist_ok=True)
    for index, stem in enumerate(stems):
        rng = np.random.default_rng(1000 + STEMS.index(stem))
        image = Image.new("RGB", (WIDTH, HEIGHT))
        ImageDraw.Draw(image).ellipse((4, 2, WIDTH - 4, HEIGHT - 2), fill=(170 + index, 80, 40))
        first = Image.new("L", (WIDTH, HEIGHT))
        second = Image.new("L", (WIDTH, HEIGHT))
        draw_image, draw_first, draw_second = ImageDraw.Draw(image), ImageDraw.Draw(first), ImageDraw.Draw(second)
        for _ in range(6):
            x0, y0, x1, y1 = (int(v) for v in rng.integers(8, 88, 4))
            width = int(rng.integers(2, 5))
            # Some vessels are faint: the model's output must not be trivially perfect.
            shade = (60, 30, 20) if rng.random() < 0.7 else (150, 70, 35)
            draw_image.line((x0, y0, x1, y1), fill=shade, width=width)
            draw_first.line((x0, y0, x1, y1), fill=255, width=width)
            draw_second.line((x0, y0, x1, y1), fill=255, width=width + 2)
        image.save(root / f"{stem}.jpg", quality=92)
        first.save(root / f"{stem}_1stHO.png")
        second.save(root / f"{stem}_2ndHO.png")


def mann_whitney_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic over pooled pixels: (sum of the positives' mid-ranks minus
    n_pos (n_pos + 1) / 2) / (n_pos n_neg); ties share their mean rank, i.e. count one half."""
    s, t = np.asarray(scores, np.float64).reshape(-1), np.asarray(truth).reshape(-1).astype(bool)
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # Mid-ranks: each run of equal scores gets the mean of the ranks it spans (1-based).
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    mid = (starts + 1 + ends) / 2.0
    ranks = np.empty(s.size)
    ranks[order] = np.repeat(mid, ends - starts)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pixel_accuracy(prob: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of pooled pixels where (prob > threshold) equals the annotation (Keras' binary accuracy)."""
    return float(np.mean((np.asarray(prob) > threshold) == np.asarray(truth).astype(bool)))


def litert_probabilities(model_path: Path, images: list[np.ndarray]) -> np.ndarray:
    """The model's output for each 8-bit RGB image: pixels p / 255, quantized with the input tensor's own
    scale and zero point, output dequantized with its own (ai_edge_litert directly, one image at a time)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for image in images:
        x = image.astype(np.float32) / 255.0
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.rint(x / scale) + zero, -128, 127)
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]).reshape(inp["shape"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"]).astype(np.float64)
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        results.append(y.reshape(image.shape[:2]))
    return np.stack(results)
