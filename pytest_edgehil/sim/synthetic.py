"""Seeded synthetic datasets standing in for the papers' data (numpy only, so tests and CI can use them).

Three generators, one per shipped reference model:

- `vessel_images`: fundus-like photographs with branching vessels and their pixel masks (Q-Segment's
  CHASE_DB1 task). Thin vessels are blurred, low-contrast and noisy on purpose, so a small CNN lands
  well below a perfect score, as on real retinal images.
- `gaze_images`: grayscale face patches whose iris positions encode the gaze point on a screen in cm
  (TinyTracker's GazeCapture task), with head shifts, lighting, noise and eyelids as nuisances.
- `lowres_seg_pairs`: low-resolution scenes and their 4x-finer masks (the Jetson Nano "low-resolution
  input, high-resolution output" segmentation idea).

Every image is drawn from its own generator, `default_rng([seed, index])`, so a set is a pure function of
its seed and the first k images of a set of n are the set of k. The shipped evaluation sets
(`fixtures/data/*.npz`) are `EVAL_SETS`, rebuilt by `make_eval_set`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_edgehil.errors import DatasetError

FloatArray = np.ndarray
GAZE_X_RANGE_CM = (-10.0, 10.0)  # horizontal gaze on the screen, camera at x = 0
GAZE_Y_RANGE_CM = (-15.0, 0.0)  # vertical gaze, camera at y = 0 above the screen (GazeCapture convention)
FIXATION_ERROR_CM = 0.8  # per-axis standard deviation of where the eyes point around the labelled target


# ---------------------------------------------------------------------------------------------- helpers


def _image_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index)])


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> FloatArray:
    """Zero-mean, unit-ish low-frequency noise: a `cells`x`cells` random grid, bilinearly upsampled."""
    grid = rng.normal(0.0, 1.0, (cells + 1, cells + 1))
    coords = np.linspace(0.0, cells, size)
    rows = np.stack([np.interp(coords, np.arange(cells + 1), grid[:, j]) for j in range(cells + 1)], axis=1)
    return np.stack([np.interp(coords, np.arange(cells + 1), row) for row in rows], axis=0)


def _blur3(img: FloatArray, weight: float) -> FloatArray:
    """Blend with a 3x3 box blur (edge-replicated): a camera's point-spread function, `weight` in [0, 1]."""
    pad = np.pad(img, [(1, 1), (1, 1)] + [(0, 0)] * (img.ndim - 2), mode="edge")
    h, w = img.shape[:2]
    box = sum(pad[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0
    return (1.0 - weight) * img + weight * box


def _disc_alpha(yy: FloatArray, xx: FloatArray, cy: float, cx: float, radius: float) -> FloatArray:
    """Anti-aliased coverage of a disc (one-pixel linear edge)."""
    return np.clip(radius - np.hypot(yy - cy, xx - cx) + 0.5, 0.0, 1.0)


def _ellipse_alpha(yy: FloatArray, xx: FloatArray, cy: float, cx: float, ry: float, rx: float) -> FloatArray:
    """Anti-aliased coverage of an axis-aligned ellipse (edge distance approximated by the radial scale)."""
    rho = np.hypot((yy - cy) / ry, (xx - cx) / rx)
    return np.clip((1.0 - rho) * min(ry, rx) + 0.5, 0.0, 1.0)


def _to_uint8(img: FloatArray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


@dataclass
class _StrokeCanvas:
    """Distance-to-stroke fields for tapered line segments, stamped one segment at a time.

    `edge_px` is the signed distance to the nearest stroke's edge (negative inside); it gives the
    anti-aliased coverage. `label_edge_px` is the same with radii floored at half a pixel, so a stroke
    thinner than a pixel still labels the pixel line it passes through. `contrast` is the contrast of the
    stroke nearest each pixel.
    """

    size: int
    edge_px: FloatArray = field(init=False)
    label_edge_px: FloatArray = field(init=False)
    contrast: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        self.edge_px = np.full((self.size, self.size), np.inf)
        self.label_edge_px = np.full((self.size, self.size), np.inf)
        self.contrast = np.zeros((self.size, self.size))

    def stamp(self, p0: tuple[float, float], p1: tuple[float, float], r0: float, r1: float,
              contrast: float = 1.0) -> None:
        (y0, x0), (y1, x1) = p0, p1
        reach = max(r0, r1, 0.5) + 2.0
        top, bottom = max(int(min(y0, y1) - reach), 0), min(int(max(y0, y1) + reach) + 1, self.size)
        left, right = max(int(min(x0, x1) - reach), 0), min(int(max(x0, x1) + reach) + 1, self.size)
        if top >= bottom or left >= right:
            return
        yy, xx = np.mgrid[top:bottom, left:right].astype(np.float64)
        dy, dx = y1 - y0, x1 - x0
        length2 = dy * dy + dx * dx
        t = np.zeros_like(yy) if length2 == 0 else np.clip(((yy - y0) * dy + (xx - x0) * dx) / length2, 0, 1)
        dist = np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx))
        radius = r0 + t * (r1 - r0)
        window = (slice(top, bottom), slice(left, right))
        edge = dist - radius
        nearer = edge < self.edge_px[window]
        self.edge_px[window] = np.where(nearer, edge, self.edge_px[window])
        self.contrast[window] = np.where(nearer, contrast, self.contrast[window])
        self.label_edge_px[window] = np.minimum(self.label_edge_px[window], dist - np.maximum(radius, 0.5))

    @property
    def coverage(self) -> FloatArray:
        return np.clip(0.5 - self.edge_px, 0.0, 1.0)

    @property
    def label(self) -> np.ndarray:
        return self.label_edge_px <= 0.0


# ---------------------------------------------------------------------------------------------- vessels


def _grow_vessel_tree(rng: np.random.Generator, canvas: _StrokeCanvas, start: tuple[float, float],
                      heading: float, width_px: float, fov_center: tuple[float, float], fov_radius: float,
                      scale: float) -> None:
    """Random-walk a tapering vessel from `start`, branching into thinner children, onto `canvas`."""
    stack = [(start, heading, width_px, 0)]
    step_px = 1.6 * scale
    segments = 0
    while stack and segments < 4000:
        (y, x), heading, width, depth = stack.pop()
        turn_rate = rng.normal(0.0, 0.04)  # a slow bend gives the arcade-like curvature of real vessels
        while width >= 0.55 * scale and segments < 4000:
            heading += turn_rate + rng.normal(0.0, 0.10)
            ny, nx = y + step_px * np.sin(heading), x + step_px * np.cos(heading)
            if np.hypot(ny - fov_center[0], nx - fov_center[1]) > 0.97 * fov_radius:
                break
            new_width = width * 0.988
            # thin vessels fade: contrast falls with calibre, as in real fundus photographs
            contrast = 0.34 * float(np.clip(width / (3.0 * scale), 0.18, 1.0)) ** 0.9
            canvas.stamp((y, x), (ny, nx), width / 2, new_width / 2, contrast)
            segments += 1
            y, x, width = ny, nx, new_width
            if depth < 5 and rng.random() < 0.07:
                side = rng.choice([-1.0, 1.0])
                child_width = width * rng.uniform(0.5, 0.8)
                stack.append(((y, x), heading + side * rng.uniform(0.5, 1.1), child_width, depth + 1))
                width *= 0.9


def _one_fundus(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    scale = size / 128.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = size / 2 + rng.normal(0, 0.015 * size, 2)
    fov_radius = size * rng.uniform(0.44, 0.49)
    r = np.hypot(yy - cy, xx - cx) / fov_radius
    fov = np.clip((1.0 - r) * fov_radius + 0.5, 0.0, 1.0)

    base = np.array([rng.uniform(0.70, 0.88), rng.uniform(0.27, 0.40), rng.uniform(0.07, 0.15)])
    shade = 1.0 - rng.uniform(0.30, 0.50) * r**2  # vignetting
    angle = rng.uniform(0, 2 * np.pi)
    shade = shade * (1.0 + rng.uniform(0.05, 0.20) * ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle))
                     / fov_radius)
    shade = shade * (1.0 + 0.05 * _smooth_noise(rng, size, 6))  # choroidal mottling
    img = shade[..., None] * base

    disc_angle = rng.uniform(0, 2 * np.pi)
    disc_dist = rng.uniform(0.25, 0.42) * fov_radius
    dy, dx = cy + disc_dist * np.sin(disc_angle), cx + disc_dist * np.cos(disc_angle)
    disc_radius = rng.uniform(0.07, 0.10) * size
    disc = np.exp(-((yy - dy) ** 2 + (xx - dx) ** 2) / (2 * disc_radius**2))
    img = img + disc[..., None] * np.array([0.22, 0.30, 0.16]) * rng.uniform(0.8, 1.2)
    my, mx = cy - 0.8 * disc_dist * np.sin(disc_angle), cx - 0.8 * disc_dist * np.cos(disc_angle)
    macula = np.exp(-((yy - my) ** 2 + (xx - mx) ** 2) / (2 * (1.4 * disc_radius) ** 2))
    img = img * (1.0 - 0.18 * macula)[..., None]

    canvas = _StrokeCanvas(size)
    n_trunks = int(rng.integers(4, 7))
    for k in range(n_trunks):
        heading = disc_angle + np.pi + 2 * np.pi * (k + rng.uniform(-0.3, 0.3)) / n_trunks
        start = (dy + 0.3 * disc_radius * np.sin(heading), dx + 0.3 * disc_radius * np.cos(heading))
        _grow_vessel_tree(rng, canvas, start, heading, rng.uniform(2.4, 3.4) * scale, (cy, cx), fov_radius,
                          scale)
    # vessels absorb most in green, least in red: they read as a darker, deeper red
    darkening = (canvas.contrast * canvas.coverage)[..., None] * np.array([0.55, 1.0, 0.8])
    img = img * (1.0 - darkening)

    img = _blur3(img, rng.uniform(0.3, 0.6))
    img = img + rng.normal(0.0, rng.uniform(0.015, 0.035), img.shape)
    img = img * fov[..., None] + 0.02 * (1.0 - fov[..., None])
    mask = canvas.label & (r <= 1.0)
    return _to_uint8(img), mask.astype(np.uint8)


def vessel_images(n: int, size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` fundus-like RGB images and their vessel masks.

    Returns (images uint8 [n, size, size, 3], masks uint8 {0, 1} [n, size, size]).
    """
    _check_count(n, size, "vessel_images")
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    for i in range(n):
        images[i], masks[i] = _one_fundus(_image_rng(seed, i), size)
    return images, masks


# ------------------------------------------------------------------------------------------------- gaze


def _one_face(rng: np.random.Generator, size: int, gaze_x_cm: float, gaze_y_cm: float) -> np.ndarray:
    s = size / 96.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    head_y, head_x = np.clip(rng.normal(0, 2.5 * s, 2), -5 * s, 5 * s)
    zoom = rng.uniform(0.92, 1.08) * s

    img = rng.uniform(0.15, 0.45) + 0.05 * _smooth_noise(rng, size, 4)
    face_cy, face_cx = 50 * s + head_y, 48 * s + head_x
    skin = rng.uniform(0.50, 0.72)
    face = _ellipse_alpha(yy, xx, face_cy, face_cx, 44 * zoom, 34 * zoom)
    img = img * (1 - face) + face * skin * (1.0 + 0.08 * (yy - face_cy) / (44 * zoom))

    mouth = _ellipse_alpha(yy, xx, face_cy + 25 * zoom, face_cx, 2.5 * zoom, 9 * zoom)
    img = img * (1 - 0.35 * mouth)
    nose = _ellipse_alpha(yy, xx, face_cy + 8 * zoom, face_cx, 7 * zoom, 2.5 * zoom)
    img = img * (1 - 0.12 * nose)

    # Iris offset inside the eye opening encodes gaze; looking down also lowers the upper lid. A person
    # never fixates the target exactly: the eyes point at the label plus a fixation error of about 1 cm
    # (as in GazeCapture, whose labels are the dot positions), which no model can recover.
    fixation_x_cm, fixation_y_cm = rng.normal(0.0, FIXATION_ERROR_CM, 2)
    iris_dx = (gaze_x_cm + fixation_x_cm) / 10.0 * 5.5 * zoom
    down = (-(gaze_y_cm + fixation_y_cm) - 7.5) / 7.5  # -1 (top of screen) .. +1 (bottom)
    iris_dy = down * 2.8 * zoom
    eye_ry, eye_rx = 5.5 * zoom, 11.0 * zoom
    sclera = min(skin + rng.uniform(0.15, 0.25), 0.95)
    iris_value, pupil_value = rng.uniform(0.12, 0.32), 0.04
    lid_drop = rng.uniform(0.0, 0.35) + 0.2 * max(down, 0.0)
    for side in (-1.0, 1.0):
        ecy, ecx = face_cy - 8 * zoom, face_cx + side * 17 * zoom
        brow = _ellipse_alpha(yy, xx, ecy - 10 * zoom, ecx, 1.8 * zoom, 10 * zoom)
        img = img * (1 - 0.45 * brow)
        opening = _ellipse_alpha(yy, xx, ecy, ecx, eye_ry, eye_rx)
        lid_line = ecy - eye_ry + 2 * eye_ry * lid_drop
        opening = opening * np.clip(yy - lid_line + 0.5, 0.0, 1.0)
        jitter_y, jitter_x = rng.normal(0.0, 0.12 * s, 2)  # the two eyes' small disagreement
        icy, icx = ecy + iris_dy + jitter_y, ecx + iris_dx + jitter_x
        iris = _disc_alpha(yy, xx, icy, icx, 4.6 * zoom)
        pupil = _disc_alpha(yy, xx, icy, icx, 1.8 * zoom)
        eye = sclera * (1 - iris) + iris * (iris_value * (1 - pupil) + pupil_value * pupil)
        glint = _disc_alpha(yy, xx, icy - 1.5 * zoom, icx + 1.2 * zoom, 0.8 * zoom)
        eye = eye * (1 - glint) + glint * 0.95
        img = img * (1 - opening) + opening * eye

    gain = rng.uniform(0.7, 1.25)
    light = 1.0 + rng.uniform(-0.2, 0.2) * (xx - size / 2) / (size / 2)
    img = np.clip(img * gain * light, 0.0, None) ** rng.uniform(0.85, 1.15)
    img = _blur3(img, rng.uniform(0.0, 0.5))
    img = img + rng.normal(0.0, rng.uniform(0.01, 0.04), img.shape)
    return _to_uint8(img)


def gaze_images(n: int, size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` grayscale face patches and the gaze point each looks at.

    Returns (images uint8 [n, size, size, 1], gaze_cm float32 [n, 2] as (x, y) on the screen, camera at
    the origin, x in GAZE_X_RANGE_CM and y in GAZE_Y_RANGE_CM).
    """
    _check_count(n, size, "gaze_images")
    images = np.empty((n, size, size, 1), np.uint8)
    gaze_cm = np.empty((n, 2), np.float32)
    for i in range(n):
        rng = _image_rng(seed, i)
        gx, gy = rng.uniform(*GAZE_X_RANGE_CM), rng.uniform(*GAZE_Y_RANGE_CM)
        images[i, :, :, 0] = _one_face(rng, size, gx, gy)
        gaze_cm[i] = (gx, gy)
    return images, gaze_cm


# ------------------------------------------------------------------------------------ low-res / high-res


def _road_points(rng: np.random.Generator, high: int) -> list[tuple[float, float]]:
    """A smooth road centre line entering and leaving through the image borders (quadratic Bezier)."""
    def border_point() -> tuple[float, float]:
        t = rng.uniform(0.1, 0.9) * high
        return [(0.0, t), (high - 1.0, t), (t, 0.0), (t, high - 1.0)][int(rng.integers(4))]

    a, b = border_point(), border_point()
    ctrl = tuple(rng.uniform(0.2, 0.8, 2) * high)
    ts = np.linspace(0, 1, 40)[:, None]
    curve = (1 - ts) ** 2 * np.array(a) + 2 * (1 - ts) * ts * np.array(ctrl) + ts**2 * np.array(b)
    return [(float(p[0]), float(p[1])) for p in curve]


def _one_scene(rng: np.random.Generator, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    factor = high // low
    yy, xx = np.mgrid[0:high, 0:high].astype(np.float64)
    field_ = np.zeros((high, high))
    for _ in range(int(rng.integers(2, 6))):
        by, bx = rng.uniform(0, high, 2)
        sy, sx = rng.uniform(0.06, 0.16, 2) * high
        field_ += np.exp(-0.5 * (((yy - by) / sy) ** 2 + ((xx - bx) / sx) ** 2))
    # The blob boundary is the 0.5 level set; its slope gives an anti-aliased coverage of about a pixel.
    gy, gx = np.gradient(field_)
    blob_cover = np.clip((field_ - 0.5) / np.maximum(np.hypot(gy, gx), 1e-3) + 0.5, 0.0, 1.0)

    canvas = _StrokeCanvas(high)
    for _ in range(int(rng.integers(0, 3))):
        points = _road_points(rng, high)
        half_width = rng.uniform(0.02, 0.06) * high
        for p0, p1 in itertools.pairwise(points):
            canvas.stamp(p0, p1, half_width, half_width)
    cover = np.maximum(blob_cover, canvas.coverage)
    mask = (cover >= 0.5).astype(np.uint8)

    # Foreground (road, water, pavement) is a bluish grey, background (vegetation, soil) green to brown:
    # the class follows from the colour family, and the hard part is where the 4x-finer boundary runs.
    grey = rng.uniform(0.35, 0.75)
    fg = grey + np.array([-0.03, 0.0, rng.uniform(0.02, 0.10)])
    bg = np.array([rng.uniform(0.20, 0.50), rng.uniform(0.35, 0.65), rng.uniform(0.08, 0.25)])
    texture = 0.06 * _smooth_noise(rng, high, 16)[..., None]
    img_high = cover[..., None] * fg + (1 - cover[..., None]) * bg + texture
    light = 1.0 + rng.uniform(-0.15, 0.15) * (xx - high / 2)[..., None] / high
    img_high = img_high * light
    img_low = img_high.reshape(low, factor, low, factor, 3).mean(axis=(1, 3))  # sensor binning
    img_low = img_low + rng.normal(0.0, rng.uniform(0.01, 0.03), img_low.shape)
    return _to_uint8(img_low), mask


def lowres_seg_pairs(n: int, low: int = 64, high: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` low-resolution RGB scenes and their high-resolution foreground masks.

    Returns (images uint8 [n, low, low, 3], masks uint8 {0, 1} [n, high, high]); `high` must be a
    multiple of `low` (the low-res image is the high-res scene binned by high // low).
    """
    _check_count(n, low, "lowres_seg_pairs")
    if high % low or high < low:
        raise DatasetError(f"lowres_seg_pairs: high={high} must be a multiple of low={low}; "
                           f"use e.g. low=64, high=256")
    images = np.empty((n, low, low, 3), np.uint8)
    masks = np.empty((n, high, high), np.uint8)
    for i in range(n):
        images[i], masks[i] = _one_scene(_image_rng(seed, i), low, high)
    return images, masks


def _check_count(n: int, size: int, what: str) -> None:
    if n < 0 or size < 16:
        raise DatasetError(f"{what}: need n >= 0 and size >= 16, got n={n}, size={size}")


# ---------------------------------------------------------------------------------- shipped eval sets


@dataclass(frozen=True)
class EvalSetSpec:
    """How a shipped evaluation set (`fixtures/data/<file_name>`) is generated."""

    file_name: str
    generator: str  # a function of this module
    n: int
    seed: int
    keys: tuple[str, str]  # the npz keys of the generator's two outputs
    kwargs: dict[str, Any] = field(default_factory=dict)


GENERATORS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "vessel_images": vessel_images,
    "gaze_images": gaze_images,
    "lowres_seg_pairs": lowres_seg_pairs,
}

# Evaluation seeds are far from the training seeds used by scripts/build_models.py (0..99).
EVAL_SETS: dict[str, EvalSetSpec] = {
    "vessels_eval.npz": EvalSetSpec("vessels_eval.npz", "vessel_images", 24, 9001, ("images", "masks")),
    "gaze_eval.npz": EvalSetSpec("gaze_eval.npz", "gaze_images", 200, 9002, ("images", "gaze_cm")),
    "lowres_eval.npz": EvalSetSpec("lowres_eval.npz", "lowres_seg_pairs", 24, 9003, ("images", "masks")),
}


def make_eval_set(file_name: str) -> dict[str, np.ndarray]:
    """The arrays of a shipped evaluation set, regenerated from its recorded seed."""
    try:
        spec = EVAL_SETS[file_name]
    except KeyError:
        raise DatasetError(f"no evaluation set named {file_name!r}; known: {', '.join(EVAL_SETS)}") from None
    first, second = GENERATORS[spec.generator](spec.n, seed=spec.seed, **spec.kwargs)
    return {spec.keys[0]: first, spec.keys[1]: second}
