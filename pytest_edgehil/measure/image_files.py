"""Reading evaluation images and masks from files as the 8-bit arrays the datasets hold.

Pillow's own conversions are not enough on their own: converting a 16-bit grayscale PNG to 8 bits clips
every sample above 255 instead of scaling it (a face at half brightness reads as a white frame), a
grayscale photograph converts to RGB by copying one channel three times, and a lossy mask converts to
"L" with levels between 0 and 255 that any threshold turns into some binary mask. Each is read right here,
or refused with a `DatasetError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pytest_edgehil.errors import DatasetError

__all__ = ["read_image", "read_two_level_mask"]

# Pillow's modes for 16-bit grayscale samples (PNG, TIFF): scaled to 8 bits here, never clipped.
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
# Modes with one channel of brightness: a colour photograph read from one of these was made gray.
_SINGLE_CHANNEL = ("1", "L", "LA", "I", "F", *_SIXTEEN_BIT)


def read_image(path: Path, mode: str, *, colour: bool = False) -> Image.Image:
    """The image at `path` in Pillow mode `mode` ("RGB" or "L"), 8 bits per channel.

    16-bit grayscale samples are scaled to 8 bits to the nearest level (v / 257: PNG and TIFF span the
    full 16-bit range, so level v of 8 bits is stored as 257 v). With `colour`, a single-channel file is
    refused: it would be scored as a colourless copy of a colour photograph.

    Raises DatasetError naming the file for an unreadable file, a 32-bit or floating-point image (no one
    scale to 8 bits), and a single-channel file where `colour` is asked for.
    """
    try:
        with Image.open(path) as img:
            img.load()
            source_mode = img.mode
            if colour and source_mode in _SINGLE_CHANNEL:
                raise DatasetError(f"image {path} is grayscale (mode {source_mode}); this data set's photographs are "
                                   "RGB colour, and a gray copy repeated into three channels would be scored as a "
                                   "colourless fundus. Restore the original colour file")
            if source_mode in _SIXTEEN_BIT or (source_mode == "I" and img.format == "PNG"):
                return Image.fromarray(_eight_bit(np.asarray(img), path)).convert(mode)
            if source_mode in ("I", "F"):
                raise DatasetError(f"image {path} holds {'32-bit integer' if source_mode == 'I' else 'floating-point'}"
                                   " samples (mode " + source_mode + "), which have no one scale to 8 bits; "
                                   "save it as an 8- or 16-bit PNG or a JPEG")
            return img.convert(mode)
    except OSError as exc:
        raise DatasetError(f"cannot read image {path} ({exc}); re-download or replace the file") from exc


def _eight_bit(samples: np.ndarray, path: Path) -> np.ndarray:
    """16-bit samples to 8 bits, to the nearest level: (v + 128) // 257 is round(v / 257), which never ties
    (257 is odd)."""
    wide = samples.astype(np.int64)
    if wide.min(initial=0) < 0 or wide.max(initial=0) > 0xFFFF:
        raise DatasetError(f"image {path} has samples outside 0..65535 ({int(wide.min())}..{int(wide.max())}); "
                           "save it as an 8- or 16-bit PNG")
    return ((wide + 128) // 257).astype(np.uint8)


def read_two_level_mask(path: Path) -> Image.Image:
    """A binary mask file as an "L" image holding 0 and 1 only.

    Accepted: 1-bit files, and 8- or 16-bit files whose levels are {0, 255} (or their 16-bit equivalent) or
    {0, 1}. Anything else (levels between, as JPEG compression or a resampled copy leaves along every
    edge) is refused with a DatasetError naming the file and the levels: no threshold recovers the
    observer's annotation from it.
    """
    levels = np.asarray(read_image(path, "L"))
    present = np.unique(levels)
    if not (set(present.tolist()) <= {0, 255} or set(present.tolist()) <= {0, 1}):
        between = int(np.count_nonzero((levels != 0) & (levels != present.max())))
        raise DatasetError(f"mask {path} is not a two-level mask: it holds {present.size} levels "
                           f"({', '.join(str(v) for v in present[:6].tolist())}{', ...' if present.size > 6 else ''}; "
                           f"{between} pixels between 0 and {int(present.max())}), as a lossy (JPEG) or resampled copy "
                           "does. Use the data set's original PNG masks, or binarize yours yourself and save them "
                           "as PNG")
    return Image.fromarray((levels != 0).astype(np.uint8))
