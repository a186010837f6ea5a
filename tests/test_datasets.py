"""Dataset loaders: CHASE_DB1 and gaze directories written as real JPEG/PNG files, and .npz sets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_edgehil.errors import DatasetError
from pytest_edgehil.measure.datasets import (
    GazeDataset,
    SegmentationDataset,
    chase_db1_available,
    load_chase_db1,
    load_gaze_dir,
    load_npz_dataset,
    synthetic_dataset,
)

SHIPPED_DATA = Path(__file__).resolve().parent.parent / "fixtures" / "data"
CHASE_W, CHASE_H = 40, 32  # small, and not square, like the real 999x960


def chase_image(number: int) -> np.ndarray:
    """An RGB image whose left half is red and right half blue, with a brightness unique to `number`."""
    img = np.zeros((CHASE_H, CHASE_W, 3), np.uint8)
    img[:, : CHASE_W // 2, 0] = 100 + 10 * number
    img[:, CHASE_W // 2:, 2] = 100 + 10 * number
    return img


def chase_mask(number: int) -> np.ndarray:
    """A vessel mask with one vertical band whose column identifies the image it belongs to."""
    mask = np.zeros((CHASE_H, CHASE_W), np.uint8)
    mask[:, 2 * number: 2 * number + 4] = 255
    return mask


def write_chase(root: Path, stems: list[str], nested: bool = False, one_bit: bool = False,
                skip_masks: tuple[str, ...] = ()) -> None:
    image_dir, mask_dir = (root / "images", root / "labels" / "1stHO") if nested else (root, root)
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        number = int(stem[6:8])
        Image.fromarray(chase_image(number)).save(image_dir / f"{stem}.jpg", quality=95)
        if stem not in skip_masks:
            mask = Image.fromarray(chase_mask(number))
            (mask.convert("1") if one_bit else mask).save(mask_dir / f"{stem}_1stHO.png")
        # The second observer's mask is all vessel: if it were picked up, the masks would be all ones.
        Image.fromarray(np.full((CHASE_H, CHASE_W), 255, np.uint8)).save(mask_dir / f"{stem}_2ndHO.png")


STEMS = ["Image_02L", "Image_01R", "Image_01L"]


# ------------------------------------------------------------------------------------------- CHASE_DB1


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("one_bit", [False, True])
def test_chase_db1_loads_pairs_by_stem(tmp_path, nested, one_bit):
    write_chase(tmp_path, STEMS, nested=nested, one_bit=one_bit)
    data = load_chase_db1(tmp_path)
    assert isinstance(data, SegmentationDataset)
    assert (data.name, data.task, data.source) == ("chase_db1", "binary-segmentation", str(tmp_path))
    assert data.ids == ("Image_01L", "Image_01R", "Image_02L")
    assert len(data) == 3
    assert data.images.shape == (3, CHASE_H, CHASE_W, 3) and data.images.dtype == np.uint8
    assert data.masks.shape == (3, CHASE_H, CHASE_W)
    for (image, mask), stem in zip(data, data.ids):
        number = int(stem[6:8])
        np.testing.assert_array_equal(mask, chase_mask(number) // 255)  # first observer's, binarized
        # JPEG is lossy: compare the colours with a tolerance, far below the 10-level step between images.
        assert abs(float(image[:, : CHASE_W // 4, 0].mean()) - (100 + 10 * number)) < 4
        assert float(image[:, : CHASE_W // 4, 2].mean()) < 4


def test_chase_db1_resizes_image_bilinear_and_mask_nearest(tmp_path):
    write_chase(tmp_path, ["Image_05L"])
    # One-pixel vessels at columns that a 40 -> 16 nearest-neighbour resize samples (floor((i + 0.5) * 2.5)):
    # nearest keeps them; a bilinear (area-weighted) resize would dilute them below the 50 % threshold.
    thin = np.zeros((CHASE_H, CHASE_W), np.uint8)
    thin[:, [6, 13, 21]] = 255
    Image.fromarray(thin).save(tmp_path / "Image_05L_1stHO.png")
    image, mask = load_chase_db1(tmp_path, size=16)[0]
    assert image.shape == (16, 16, 3)
    assert mask.shape == (16, 16)
    assert set(np.unique(mask)) == {0, 1}  # nearest keeps it binary and keeps thin vessels
    expected = np.asarray(Image.fromarray(thin).resize((16, 16), Image.Resampling.NEAREST)) // 255
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == 3 * 16
    # Bilinear blends across the red/blue edge: some column has both channels lit, which nearest can't do.
    both = (image[:, :, 0] > 20) & (image[:, :, 2] > 20)
    assert both.any()
    assert abs(float(image[:, 0, 0].mean()) - 150) < 5


def test_chase_db1_mask_stored_as_zero_one_is_binarized_with_zero_threshold(tmp_path):
    Image.fromarray(chase_image(3)).save(tmp_path / "Image_03R.jpg")
    Image.fromarray((chase_mask(3) // 255).astype(np.uint8)).save(tmp_path / "Image_03R_1stHO.png")
    np.testing.assert_array_equal(load_chase_db1(tmp_path).masks[0], chase_mask(3) // 255)


def test_chase_db1_missing_mask_names_the_image(tmp_path):
    write_chase(tmp_path, STEMS, skip_masks=("Image_01R",))
    with pytest.raises(DatasetError, match=r"Image_01R\.jpg has no first-observer mask Image_01R_1stHO\.png"):
        load_chase_db1(tmp_path)
    assert not chase_db1_available(tmp_path)


def test_chase_db1_empty_root_names_root_and_pattern(tmp_path):
    (tmp_path / "unrelated.txt").write_text("not an image")
    with pytest.raises(DatasetError, match=r"contains no images.*Image_NNx\.jpg.*Image_NNx_1stHO\.png") as info:
        load_chase_db1(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert not chase_db1_available(tmp_path)


def test_chase_db1_missing_root(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist.*Image_NNx\.jpg"):
        load_chase_db1(tmp_path / "nowhere")
    assert not chase_db1_available(tmp_path / "nowhere")
    assert not chase_db1_available(None)


def test_chase_db1_available(tmp_path):
    write_chase(tmp_path, STEMS, nested=True)
    assert chase_db1_available(tmp_path)
    assert chase_db1_available(str(tmp_path))


def test_chase_db1_duplicate_copies_are_refused(tmp_path):
    write_chase(tmp_path, ["Image_01L"])
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "Image_01L.jpg", tmp_path / "copy" / "Image_01L.jpg")
    with pytest.raises(DatasetError, match="two copies of Image_01L.jpg"):
        load_chase_db1(tmp_path)


def test_chase_db1_mismatched_sizes(tmp_path):
    write_chase(tmp_path, ["Image_01L", "Image_02L"])
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "Image_02L.jpg")
    with pytest.raises(DatasetError, match=r"Image_02L\.jpg is 20x20 but its mask"):
        load_chase_db1(tmp_path)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "Image_02L_1stHO.png")
    with pytest.raises(DatasetError, match="pass size=N"):
        load_chase_db1(tmp_path)
    assert load_chase_db1(tmp_path, size=8).images.shape == (2, 8, 8, 3)


def test_chase_db1_unreadable_image_is_named(tmp_path):
    write_chase(tmp_path, ["Image_01L"])
    (tmp_path / "Image_01L.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"cannot read image .*Image_01L\.jpg"):
        load_chase_db1(tmp_path)


# ------------------------------------------------------------------------------------------------ gaze


def write_gaze(root: Path, rows: list[tuple[str, str, str]], header: str = "file,x_cm,y_cm") -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i, (name, _, _) in enumerate(rows):
        if name:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((48, 64), 40 * i, np.uint8)).save(root / name)
    lines = [header] + [",".join(row) for row in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")


def test_gaze_dir_loads_images_and_labels(tmp_path):
    write_gaze(tmp_path, [("a.png", "1.5", "-2.0"), ("sub/b.png", "-3", "-14.25")])
    data = load_gaze_dir(tmp_path)
    assert isinstance(data, GazeDataset)
    assert (data.task, data.source, data.ids) == ("gaze-regression", str(tmp_path), ("a.png", "sub/b.png"))
    assert data.images.shape == (2, 96, 96, 1) and data.images.dtype == np.uint8
    np.testing.assert_allclose(data.gaze_cm, [[1.5, -2.0], [-3.0, -14.25]])
    assert data.gaze_cm.dtype == np.float32
    assert data.images[1].min() == data.images[1].max() == 40  # a flat image stays flat through bilinear
    assert load_gaze_dir(tmp_path, size=None).images.shape == (2, 48, 64, 1)


def test_gaze_dir_missing_column(tmp_path):
    write_gaze(tmp_path, [("a.png", "1", "2")], header="file,x,y_cm")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) x_cm; found \['file', 'x', 'y_cm'\]"):
        load_gaze_dir(tmp_path)


def test_gaze_dir_missing_file(tmp_path):
    write_gaze(tmp_path, [("a.png", "1", "2")])
    with (tmp_path / "labels.csv").open("a") as handle:
        handle.write("ghost.png,0,0\n")
    with pytest.raises(DatasetError, match=r"line 3: image 'ghost.png' not found"):
        load_gaze_dir(tmp_path)


def test_gaze_dir_bad_number(tmp_path):
    write_gaze(tmp_path, [("a.png", "1", "two")])
    with pytest.raises(DatasetError, match=r"line 2: .*'two'.* not numbers"):
        load_gaze_dir(tmp_path)


def test_gaze_dir_missing_labels_and_root(tmp_path):
    tmp_path.joinpath("g").mkdir()
    with pytest.raises(DatasetError, match="has no labels.csv"):
        load_gaze_dir(tmp_path / "g")
    with pytest.raises(DatasetError, match="does not exist"):
        load_gaze_dir(tmp_path / "nowhere")
    write_gaze(tmp_path / "empty", [])
    with pytest.raises(DatasetError, match="lists no images"):
        load_gaze_dir(tmp_path / "empty")


# ------------------------------------------------------------------------------------------------- npz


def test_npz_segmentation_set(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    masks = (rng.random((3, 32, 32)) < 0.3).astype(np.uint8)
    np.savez(tmp_path / "lowres.npz", images=images, masks=masks)
    data = load_npz_dataset(tmp_path / "lowres.npz", "segmentation-upsampling")
    assert isinstance(data, SegmentationDataset)
    assert (data.name, data.source, len(data)) == ("lowres", str(tmp_path / "lowres.npz"), 3)
    pairs = list(data)
    np.testing.assert_array_equal(np.stack([x for x, _ in pairs]), images)
    np.testing.assert_array_equal(np.stack([y for _, y in pairs]), masks)


def test_npz_gaze_set(tmp_path):
    gaze = np.array([[1.0, -2.0], [0.5, -7.5]], np.float32)
    np.savez(tmp_path / "g.npz", images=np.zeros((2, 6, 6, 1), np.uint8), gaze_cm=gaze)
    data = load_npz_dataset(tmp_path / "g.npz", "gaze-regression")
    assert isinstance(data, GazeDataset)
    np.testing.assert_array_equal(data.gaze_cm, gaze)
    image, target = data[1]
    assert image.shape == (6, 6, 1)
    np.testing.assert_array_equal(target, gaze[1])


def test_npz_missing_key_names_key_and_file(tmp_path):
    np.savez(tmp_path / "v.npz", images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DatasetError, match=r"v\.npz lacks key\(s\) 'masks' needed for task 'binary-segmentation'"):
        load_npz_dataset(tmp_path / "v.npz", "binary-segmentation")


@pytest.mark.parametrize(("arrays", "message"), [
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "masks": np.full((2, 4, 4), 255, np.uint8)}, "binary"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "masks": np.zeros((3, 4, 4), np.uint8)}, "one entry per"),
    ({"images": np.zeros((2, 4, 4, 3), np.float32), "masks": np.zeros((2, 4, 4), np.uint8)}, "uint8"),
])
def test_npz_bad_arrays(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        load_npz_dataset(tmp_path / "bad.npz", "binary-segmentation")


def test_npz_unknown_task_missing_or_corrupt_file(tmp_path):
    with pytest.raises(DatasetError, match="known tasks: binary-segmentation"):
        load_npz_dataset(tmp_path / "x.npz", "classification")
    with pytest.raises(DatasetError, match="not found"):
        load_npz_dataset(tmp_path / "x.npz", "gaze-regression")
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_npz_dataset(tmp_path / "x.npz", "gaze-regression")


def test_synthetic_dataset_records_generator_and_seed():
    data = synthetic_dataset("gaze_images", 3, seed=11)
    assert data.source == "synthetic:gaze_images:11"
    assert data.task == "gaze-regression"
    np.testing.assert_array_equal(data.images, synthetic_dataset("gaze_images", 3, seed=11).images)
    assert not np.array_equal(data.images, synthetic_dataset("gaze_images", 3, seed=12).images)
    with pytest.raises(DatasetError, match="no synthetic generator"):
        synthetic_dataset("faces", 1)


@pytest.mark.parametrize(("file_name", "task", "shape"), [
    ("vessels_eval.npz", "binary-segmentation", (128, 128, 3)),
    ("gaze_eval.npz", "gaze-regression", (96, 96, 1)),
    ("lowres_eval.npz", "segmentation-upsampling", (64, 64, 3)),
])
def test_shipped_sets_follow_their_layout(file_name, task, shape):
    path = SHIPPED_DATA / file_name
    if not path.is_file():
        pytest.skip(f"{file_name} not built yet (scripts/build_models.py data)")
    data = load_npz_dataset(path, task)
    assert data.images.shape[1:] == shape
    assert len(data) == len(data.targets) > 0
