"""Files a data set may hold that must be refused, or read right, rather than scored wrongly: 16-bit PNGs,
lossy masks, a grayscale fundus, a JPEG mask, and the 01/10 sort trap. Expected pixels are computed here
from the values written, not by the loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_edgehil.errors import DatasetError
from pytest_edgehil.measure.datasets import load_chase_db1, load_gaze_dir

from .chase_layout import STEMS, write_chase_db1


def write_16bit_gray(path: Path, values: np.ndarray) -> None:
    image = Image.fromarray(values.astype(np.uint16))
    assert image.mode == "I;16"  # a real 16-bit grayscale PNG, as a scientific camera or a converter writes it
    image.save(path)


def test_a_16_bit_gaze_image_is_read_at_its_brightness_not_clipped_white(tmp_path):
    """PNG scales samples to the full 16-bit range: 8-bit level v is stored as v * 257. Pillow's conversion
    to 8 bits clips instead of scaling, so every level above 0 read as 255, a white frame."""
    levels = np.tile(np.arange(0, 256, 4, dtype=np.uint16), (48, 1))[:, :64]  # 48 x 64, levels 0..252
    write_16bit_gray(tmp_path / "face.png", levels * 257)
    (tmp_path / "labels.csv").write_text("file,x_cm,y_cm\nface.png,1.0,-2.0\n")
    image = load_gaze_dir(tmp_path, size=None).images[0, ..., 0]
    np.testing.assert_array_equal(image, levels)


def test_16_bit_levels_between_8_bit_ones_round_to_the_nearest(tmp_path):
    raw = np.array([[0, 128, 129, 385, 65535, 65407]], dtype=np.uint16)
    write_16bit_gray(tmp_path / "f.png", raw)
    (tmp_path / "labels.csv").write_text("file,x_cm,y_cm\nf.png,0,0\n")
    # v / 257 to the nearest level: 0, 0.498, 0.502, 1.498, 255, 254.502 (no ties: 257 is odd)
    expected = np.rint(raw.astype(np.float64) / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(load_gaze_dir(tmp_path, size=None).images[0, ..., 0], expected)


def test_a_16_bit_chase_mask_is_read_as_its_two_levels(tmp_path):
    write_chase_db1(tmp_path, STEMS[:1])
    first = np.asarray(Image.open(tmp_path / "Image_01L_1stHO.png")) > 127
    write_16bit_gray(tmp_path / "Image_01L_1stHO.png", first * 65535)
    np.testing.assert_array_equal(load_chase_db1(tmp_path).masks[0], first)


def test_a_lossy_mask_is_refused_naming_the_file_and_what_it_holds(tmp_path):
    """A mask that went through JPEG (renamed .png, or exported from a viewer) holds levels between 0 and
    255 along every vessel edge: not the observer's annotation, whatever threshold turns it binary."""
    write_chase_db1(tmp_path, STEMS[:1])
    mask_path = tmp_path / "Image_01L_1stHO.png"
    Image.open(mask_path).save(tmp_path / "lossy.jpg", quality=75)
    Image.open(tmp_path / "lossy.jpg").save(mask_path)
    levels = np.unique(np.asarray(Image.open(mask_path)))
    assert levels.size > 2  # what JPEG did to it
    with pytest.raises(DatasetError, match=r"Image_01L_1stHO\.png.*not a two-level mask.*lossy"):
        load_chase_db1(tmp_path)


def test_a_jpeg_mask_is_named_when_the_png_is_missing(tmp_path):
    write_chase_db1(tmp_path, STEMS[:1])
    mask_path = tmp_path / "Image_01L_1stHO.png"
    Image.open(mask_path).save(tmp_path / "Image_01L_1stHO.jpg")
    mask_path.unlink()
    with pytest.raises(DatasetError, match=r"Image_01L_1stHO\.png.*found Image_01L_1stHO\.jpg.*JPEG is lossy"):
        load_chase_db1(tmp_path)


def test_a_grayscale_fundus_is_refused_not_copied_into_three_channels(tmp_path):
    """The release's photographs are colour; a gray copy replicated to RGB is scored as a colourless fundus
    by a model trained on colour ones."""
    write_chase_db1(tmp_path, STEMS[:2])
    Image.open(tmp_path / "Image_01R.jpg").convert("L").save(tmp_path / "Image_01R.jpg")
    with pytest.raises(DatasetError, match=r"Image_01R\.jpg is grayscale.*RGB"):
        load_chase_db1(tmp_path)


def test_images_10_to_14_keep_their_own_masks(tmp_path):
    """'Image_10L' sorts before 'Image_1...' in some tools and after 'Image_09R' in others; each image must get
    its own mask whatever the order the files are listed in."""
    write_chase_db1(tmp_path)
    data = load_chase_db1(tmp_path)
    for index, stem in enumerate(data.ids):
        own = np.asarray(Image.open(tmp_path / f"{stem}_1stHO.png")) > 127
        np.testing.assert_array_equal(data.masks[index], own, err_msg=stem)
        np.testing.assert_array_equal(data.images[index], np.asarray(Image.open(tmp_path / f"{stem}.jpg")), err_msg=stem)
