"""Evaluation datasets: the shipped synthetic `.npz` sets, CHASE_DB1 and a gaze directory layout.

A dataset is a fixed, in-memory set of `(input_image, target)` pairs with a `name`, a `task` (the model
card's task string) and a `source` (the path it was read from, or `synthetic:<generator>:<seed>`).
Input images are 8-bit arrays `[H, W, C]`, as a camera would deliver them; scaling to the model's input
range is the device runner's job, not the dataset's.

CHASE_DB1 ships no field-of-view (FOV) masks, unlike DRIVE or STARE, so segmentation scores on it are
over all pixels, the dark border outside the fundus included (see `CHASE_DB1_FOV_NOTE`). Those
background pixels are easy true negatives, so all-pixel accuracy and AUC read higher than FOV-restricted
figures in papers that draw their own FOV masks; compare like with like.

The layouts are documented in docs/datasets.md.
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from pytest_edgehil.errors import DatasetError
from pytest_edgehil.measure.image_files import read_image, read_two_level_mask

TASK_BINARY_SEGMENTATION = "binary-segmentation"
TASK_GAZE_REGRESSION = "gaze-regression"
TASK_SEGMENTATION_UPSAMPLING = "segmentation-upsampling"

# Which arrays of a shipped `.npz` evaluation set hold the inputs and the targets, per model task.
NPZ_KEYS_BY_TASK: dict[str, tuple[str, str]] = {
    TASK_BINARY_SEGMENTATION: ("images", "masks"),
    TASK_GAZE_REGRESSION: ("images", "gaze_cm"),
    TASK_SEGMENTATION_UPSAMPLING: ("images", "masks"),
}
SEGMENTATION_TASKS = (TASK_BINARY_SEGMENTATION, TASK_SEGMENTATION_UPSAMPLING)
GENERATOR_TASKS: dict[str, str] = {  # synthetic generator -> the model task its data stands in for
    "vessel_images": TASK_BINARY_SEGMENTATION,
    "gaze_images": TASK_GAZE_REGRESSION,
    "lowres_seg_pairs": TASK_SEGMENTATION_UPSAMPLING,
}

CHASE_DB1_IMAGE_PATTERN = "Image_NNx.jpg (NN = 01..14, x = L or R)"
CHASE_DB1_MASK_PATTERN = "Image_NNx_1stHO.png"
CHASE_DB1_FOV_NOTE = ("CHASE_DB1 ships no FOV masks: segmentation scores are over all pixels, "
                      "the background outside the fundus included")
# Which subjects each split holds. The split most deep-learning papers use on CHASE_DB1: the first 20
# images (subjects 01-10) train, the last 8 (subjects 11-14, Image_11L..Image_14R) test. Published test
# figures (Q-Segment's AUC 96.97 %, accuracy 97.25 %) are compared with `test`: a model trained on the first
# 20 and scored on all 28 would be scored partly on its own training images. "all" is every image found.
CHASE_DB1_SPLITS: dict[str, tuple[int, ...] | None] = {
    "all": None,
    "train": tuple(range(1, 11)),
    "test": tuple(range(11, 15)),
}
_CHASE_IMAGE_RE = re.compile(r"^Image_(\d{2})([LR])\.jpg$", re.IGNORECASE)
_CHASE_MASK_RE = re.compile(r"^Image_(\d{2})([LR])_1stHO\.png$", re.IGNORECASE)
_CHASE_JPEG_MASK_RE = re.compile(r"^Image_(\d{2})([LR])_1stHO\.jpe?g$", re.IGNORECASE)

GAZE_LABELS_FILE = "labels.csv"
GAZE_COLUMNS = ("file", "x_cm", "y_cm")


class Sample(NamedTuple):
    """One evaluation pair; unpacks as `image, target`."""

    image: np.ndarray
    target: np.ndarray


@dataclass(frozen=True, eq=False)  # arrays inside: identity, not element-wise, equality
class Dataset:
    """Stacked inputs `[N, H, W, C]` (uint8) and targets `[N, ...]`, with where they came from."""

    name: str
    task: str
    source: str
    images: np.ndarray
    targets: np.ndarray
    ids: tuple[str, ...] = ()  # one name per sample (file stem, or "<file>[i]"); filled in if empty

    def __post_init__(self) -> None:
        if len(self.images) != len(self.targets):
            raise DatasetError(f"dataset {self.name!r} ({self.source}): {len(self.images)} images but "
                               f"{len(self.targets)} targets; every input needs exactly one target")
        if not self.ids:
            object.__setattr__(self, "ids", tuple(f"{self.name}[{i}]" for i in range(len(self.images))))
        elif len(self.ids) != len(self.images):
            raise DatasetError(f"dataset {self.name!r}: {len(self.ids)} ids for {len(self.images)} samples")

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[Sample]:
        for image, target in zip(self.images, self.targets):
            yield Sample(image, target)

    def __getitem__(self, index: int) -> Sample:
        return Sample(self.images[index], self.targets[index])


@dataclass(frozen=True, eq=False)
class SegmentationDataset(Dataset):
    """Targets are binary masks `[N, H', W']` with values in {0, 1} (H' may differ from H, e.g. 4x)."""

    # Pixels the scores should cover, if the dataset defines a field of view; None means all pixels.
    fov_masks: np.ndarray | None = field(default=None, repr=False)

    @property
    def masks(self) -> np.ndarray:
        return self.targets


@dataclass(frozen=True, eq=False)
class GazeDataset(Dataset):
    """Targets are gaze points on the screen `[N, 2]` (x_cm, y_cm), float32."""

    @property
    def gaze_cm(self) -> np.ndarray:
        return self.targets


# ------------------------------------------------------------------------------------------- npz sets


def load_npz_dataset(path: Path | str, task: str) -> Dataset:
    """A shipped evaluation set (`fixtures/data/*.npz`) for a model task; see `NPZ_KEYS_BY_TASK`."""
    path = Path(path)
    if task not in NPZ_KEYS_BY_TASK:
        raise DatasetError(f"no .npz layout for task {task!r} (file {path}); known tasks: "
                           f"{', '.join(NPZ_KEYS_BY_TASK)}")
    if not path.is_file():
        raise DatasetError(f"evaluation set {path} not found; rebuild the shipped sets with "
                           "`python scripts/build_models.py data` or pass the right path")
    image_key, target_key = NPZ_KEYS_BY_TASK[task]
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (image_key, target_key) if k not in archive.files]
            if missing:
                raise DatasetError(f"evaluation set {path} lacks key(s) {', '.join(map(repr, missing))} "
                                   f"needed for task {task!r}; it has {sorted(archive.files)}")
            images, targets = archive[image_key], archive[target_key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"evaluation set {path} is not a readable .npz archive ({exc}); rebuild it with "
                           "`python scripts/build_models.py data`") from exc
    if len(images) != len(targets):
        raise DatasetError(f"evaluation set {path}: {len(images)} {image_key!r} but {len(targets)} "
                           f"{target_key!r}; the arrays must have one entry per sample")
    ids = tuple(f"{path.name}[{i}]" for i in range(len(images)))
    return _typed_dataset(path.stem, task, str(path), images, targets, ids)


def synthetic_dataset(generator: str, n: int, seed: int = 0, **kwargs: int) -> Dataset:
    """A fresh set from `synthetic.GENERATORS[generator]`, with source `synthetic:<generator>:<seed>`."""
    if generator not in GENERATOR_TASKS:
        raise DatasetError(f"no synthetic generator {generator!r}; known: {', '.join(GENERATOR_TASKS)}")
    # The simulation is imported only when synthetic data is asked for (the hardware path never loads it).
    from pytest_edgehil.sim import synthetic

    images, targets = synthetic.GENERATORS[generator](n, seed=seed, **kwargs)
    return _typed_dataset(generator, GENERATOR_TASKS[generator], f"synthetic:{generator}:{seed}", images,
                          targets, ())


def _typed_dataset(name: str, task: str, source: str, images: np.ndarray, targets: np.ndarray,
                   ids: tuple[str, ...]) -> Dataset:
    """Check the arrays against the task's layout and wrap them in the task's dataset class."""
    _check_images(images, f"{source} images")
    if task in SEGMENTATION_TASKS:
        if targets.ndim != 3:
            raise DatasetError(f"{source} masks must be [N, H, W]; got shape {targets.shape}")
        return SegmentationDataset(name, task, source, images, _binary_mask_array(targets, f"{source} masks"),
                                   ids)
    gaze = np.asarray(targets, dtype=np.float32)
    if gaze.ndim != 2 or gaze.shape[1] != 2 or not np.all(np.isfinite(gaze)):
        raise DatasetError(f"{source} gaze targets must be finite [N, 2] (x_cm, y_cm); got shape {gaze.shape}")
    return GazeDataset(name, task, source, images, gaze, ids)


def _check_images(images: np.ndarray, what: str) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) == 0:
        raise DatasetError(f"{what} must be a non-empty uint8 array [N, H, W, C]; got {images.dtype} "
                           f"{images.shape}")


def _binary_mask_array(masks: np.ndarray, what: str) -> np.ndarray:
    values = np.unique(masks)
    if not np.all(np.isin(values, (0, 1))):
        raise DatasetError(f"{what} must hold binary masks (0/1); found values {values[:8].tolist()}")
    return masks.astype(np.uint8)


# ------------------------------------------------------------------------------------------- CHASE_DB1


def _chase_files(root: Path) -> dict[str, tuple[Path, Path]]:
    """(image, first-observer mask) pairs under `root` (flat or nested) by stem (`Image_01L`), sorted."""
    expected = f"expected {CHASE_DB1_IMAGE_PATTERN} with masks {CHASE_DB1_MASK_PATTERN}"
    if not root.is_dir():
        raise DatasetError(f"CHASE_DB1 root {root} does not exist or is not a directory; {expected}")
    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    jpeg_masks: dict[str, Path] = {}  # never read (lossy), but named when the PNG is missing
    for path in sorted(root.rglob("*")):
        if (jpeg := _CHASE_JPEG_MASK_RE.match(path.name)) is not None:
            jpeg_masks[f"Image_{jpeg.group(1)}{jpeg.group(2).upper()}"] = path
        image_match, mask_match = _CHASE_IMAGE_RE.match(path.name), _CHASE_MASK_RE.match(path.name)
        match, found = (image_match, images) if image_match else (mask_match, masks)
        if match is None or not path.is_file():
            continue  # second-observer masks (_2ndHO.png) and anything else are ignored
        key = f"Image_{match.group(1)}{match.group(2).upper()}"
        if key in found:
            raise DatasetError(f"CHASE_DB1 root {root} holds two copies of {path.name}: {found[key]} and "
                               f"{path}; keep one")
        found[key] = path
    if not images:
        raise DatasetError(f"CHASE_DB1 root {root} contains no images; {expected} (flat or in subfolders)")
    missing = [k for k in sorted(images) if k not in masks]
    if missing:
        first = missing[0]
        jpeg_note = (f"; found {jpeg_masks[first].name}, but JPEG is lossy (vessel edges blur into levels between "
                     "0 and 255): use the release's PNG mask" if first in jpeg_masks else "")
        raise DatasetError(f"CHASE_DB1 image {images[first]} has no first-observer mask "
                           f"{images[first].stem}_1stHO.png under {root}{jpeg_note}"
                           + (f" (and {len(missing) - 1} more images lack theirs)" if len(missing) > 1 else ""))
    return {k: (images[k], masks[k]) for k in sorted(images)}


def chase_db1_available(root: Path | str | None) -> bool:
    """True when `root` holds at least one CHASE_DB1 image and every image has its first-observer mask."""
    if root is None:
        return False
    try:
        _chase_files(Path(root))
    except DatasetError:
        return False
    return True


def chase_db1_split_stems(split: str) -> tuple[str, ...] | None:
    """The stems a split holds, in order (`Image_11L`, `Image_11R`, ...); None for "all" (every image found).

    Raises DatasetError for a split not in `CHASE_DB1_SPLITS`."""
    if split not in CHASE_DB1_SPLITS:
        raise DatasetError(f"CHASE_DB1 has no split {split!r}; known: {', '.join(sorted(CHASE_DB1_SPLITS))} "
                           "(test: the literature's last 8 images, Image_11L..Image_14R)")
    subjects = CHASE_DB1_SPLITS[split]
    return None if subjects is None else tuple(f"Image_{n:02d}{eye}" for n in subjects for eye in "LR")


def describe_chase_db1_split(split: str) -> str:
    """The split in words for a record's context: which images, and of how many."""
    stems = chase_db1_split_stems(split)
    if stems is None:
        return "all: every image found"
    return f"{split}: {stems[0]}..{stems[-1]} ({len(stems)} of the release's 28; the first 20 train, the last 8 test)"


def load_chase_db1(root: Path | str, size: int | None = None, split: str = "all") -> SegmentationDataset:
    """CHASE_DB1 images (uint8 RGB) with first-observer masks in {0, 1}, optionally resized to size x size.

    Images are resized bilinearly and masks by nearest neighbour (so they stay binary); the shipped
    segmentation model takes 128x128. Without `size`, all images must share one size (they do in the
    public release, 999x960). `split` picks the images (`CHASE_DB1_SPLITS`): "test" is the literature's
    last 8, which published figures are measured on; every image of a split must be there (DatasetError
    naming the missing ones otherwise: a figure on part of the test set is not the protocol's).
    """
    root = Path(root)
    if size is not None and size < 1:
        raise DatasetError(f"CHASE_DB1 resize target must be a positive pixel count, got size={size}")
    wanted = chase_db1_split_stems(split)
    found = _chase_files(root)
    pairs = list(found.values())
    if wanted is not None:
        missing = [stem for stem in wanted if stem not in found]
        if missing:
            raise DatasetError(f"CHASE_DB1 under {root}: the {split} split ({describe_chase_db1_split(split)}) lacks "
                               f"{', '.join(missing)}; a figure on part of it is not the protocol's. Add the "
                               "missing files, or pass split='all' to score every image found")
        pairs = [found[stem] for stem in wanted]
    images, masks = [], []
    for image_path, mask_path in pairs:
        image, mask = read_image(image_path, "RGB", colour=True), read_two_level_mask(mask_path)
        if image.size != mask.size:
            raise DatasetError(f"CHASE_DB1 image {image_path} is {image.size[0]}x{image.size[1]} but its mask "
                               f"{mask_path.name} is {mask.size[0]}x{mask.size[1]}; replace the mismatched file")
        if size is not None:
            image = image.resize((size, size), Image.Resampling.BILINEAR)
            mask = mask.resize((size, size), Image.Resampling.NEAREST)
        images.append(np.asarray(image, dtype=np.uint8))
        masks.append(np.asarray(mask, dtype=np.uint8))
    ids = tuple(image_path.stem for image_path, _ in pairs)
    stacked_images = _stack_same_size(images, ids, root, "CHASE_DB1")
    return SegmentationDataset("chase_db1", TASK_BINARY_SEGMENTATION, str(root), stacked_images,
                               np.stack(masks), ids)


def _stack_same_size(images: Sequence[np.ndarray], ids: Sequence[str], root: Path, what: str) -> np.ndarray:
    first = images[0].shape
    for image, sample_id in zip(images, ids):
        if image.shape != first:
            raise DatasetError(f"{what} under {root}: {sample_id} is {image.shape} but {ids[0]} is {first}; "
                               "pass size=N to resize all images to N x N")
    return np.stack(images)


# ------------------------------------------------------------------------------------------------ gaze


def load_gaze_dir(root: Path | str, size: int | None = 96) -> GazeDataset:
    """Grayscale images listed in `root/labels.csv` (columns file, x_cm, y_cm) as `[N, size, size, 1]`."""
    root = Path(root)
    labels = root / GAZE_LABELS_FILE
    if not root.is_dir():
        raise DatasetError(f"gaze dataset root {root} does not exist; expected a directory with "
                           f"{GAZE_LABELS_FILE} (columns {','.join(GAZE_COLUMNS)}) and the images it lists")
    if not labels.is_file():
        raise DatasetError(f"gaze dataset {root} has no {GAZE_LABELS_FILE}; add one with columns "
                           f"{','.join(GAZE_COLUMNS)}")
    if size is not None and size < 1:
        raise DatasetError(f"gaze resize target must be a positive pixel count, got size={size}")
    with labels.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in GAZE_COLUMNS if c not in columns]
        if missing:
            raise DatasetError(f"{labels} lacks column(s) {', '.join(missing)}; found {columns or 'none'}; "
                               f"the header must be {','.join(GAZE_COLUMNS)}")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    if not rows:
        raise DatasetError(f"{labels} lists no images; add one row per image ({','.join(GAZE_COLUMNS)})")
    images, gaze, ids = [], [], []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        image_path = root / row["file"]
        if not row["file"] or not image_path.is_file():
            raise DatasetError(f"{labels} line {line}: image {row['file']!r} not found under {root}")
        try:
            point = (float(row["x_cm"]), float(row["y_cm"]))
        except ValueError:
            raise DatasetError(f"{labels} line {line}: x_cm={row['x_cm']!r}, y_cm={row['y_cm']!r} are not "
                               "numbers (centimetres on the screen)") from None
        if not all(np.isfinite(point)):
            raise DatasetError(f"{labels} line {line}: gaze point {point} is not finite")
        image = read_image(image_path, "L")
        if size is not None:
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        images.append(np.asarray(image, dtype=np.uint8)[..., np.newaxis])
        gaze.append(point)
        ids.append(row["file"])
    stacked = _stack_same_size(images, ids, root, "gaze dataset")
    return GazeDataset(root.name or "gaze", TASK_GAZE_REGRESSION, str(root), stacked,
                       np.asarray(gaze, dtype=np.float32), tuple(ids))
