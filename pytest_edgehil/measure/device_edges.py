"""The distinct edges of a RUN's stages on the device's time axis, and which boundary each one is.

A retrieval's end is the next readout's start: the device's stage windows share edges, which the trace
locator places once (`trace_windows.locate_edges`) and every window then finds by index (`edge_index`).
Times in device seconds since the first trigger.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from pytest_edgehil.errors import MeasurementError

# Device edges closer than this are one edge (a retrieval's end is the next readout's start, to round-off).
_SAME_EDGE_S = 1e-9


def distinct_edges(edges_s: np.ndarray, kinds: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct edges, their kind): coincident edges of different kinds (a retrieval's end that is
    the next readout's start) get a kind of their own, the bit mask of theirs (kind 0 when none given)."""
    flat = edges_s.reshape(-1)
    labels = np.zeros(flat.size, dtype=np.int64) if kinds is None else np.asarray(kinds, dtype=np.int64).reshape(-1)
    if labels.shape != flat.shape:
        raise MeasurementError(f"edge kinds {labels.shape} must match the device edges {flat.shape}, one per edge")
    order = np.argsort(flat, kind="stable")
    e, bits = flat[order], np.left_shift(1, labels[order])
    if e.size == 0:
        return e, bits
    group = np.cumsum(np.concatenate([[True], np.diff(e) > _SAME_EDGE_S])) - 1
    mask = np.zeros(int(group[-1]) + 1, dtype=np.int64)
    np.bitwise_or.at(mask, group, bits)
    return e[np.concatenate([[0], np.flatnonzero(np.diff(group)) + 1])], mask


def edge_index(device_s: np.ndarray, values_s: np.ndarray) -> np.ndarray:
    """Index of the nearest distinct edge for each device time in `values_s` (any shape)."""
    v = np.asarray(values_s, dtype=np.float64)
    i = np.clip(np.searchsorted(device_s, v), 1, device_s.size - 1)
    left, right = device_s[i - 1], device_s[i]
    return np.where(np.abs(v - left) <= np.abs(right - v), i - 1, i)
