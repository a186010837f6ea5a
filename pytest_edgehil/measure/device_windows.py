"""The device's own account of a RUN, as trace-axis windows: read from its per-inference stage timings.

The device reports each inference's timings on its own timer (duck-typed: attributes `start_us`,
`readout_us`, `inference_us`, `retrieval_us`; `start` is the trigger edge it raises, t = 0 at the first
one). These functions turn them into (n, 2) windows [t0, t1] in seconds on that axis, and read the
timer's tick from the stamps. Where the windows really lie in a trace is `trace_windows.locate_edges`'s
job; these are what it is told to look for. Pure functions; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def timing_columns_us(timings: Iterable[Any]) -> np.ndarray:
    """(n, 4) array of (start, readout, inference, retrieval) in µs, one row per inference."""
    rows = [(t.start_us, t.readout_us, t.inference_us, t.retrieval_us) for t in timings]
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def device_tick_s(timings: Iterable[Any]) -> float:
    """The device timer's tick (s) as its reported stage times show it: the largest step every start and
    stage duration is a whole multiple of (to the nanosecond). A 1 µs timer gives 1e-6; a coarse one, say
    100 µs, 1e-4: an edge the trace does not show is then only known to within that much."""
    values = np.rint(np.abs(timing_columns_us(timings)).reshape(-1) * 1000.0).astype(np.int64)
    values = values[values > 0]
    return float(np.gcd.reduce(values)) * 1e-9 if values.size else 0.0


def inference_windows_s(timings: Iterable[Any]) -> np.ndarray:
    """(n, 2) windows [start, start + inference] in seconds on the trace's time axis, one per inference."""
    start, _readout, inference, _retrieval = timing_columns_us(timings).T
    return np.stack([start, start + inference], axis=1) * 1e-6


def end_to_end_windows_s(timings: Iterable[Any]) -> np.ndarray:
    """(n, 2) windows [start − readout, start + inference + retrieval] in seconds, one per inference."""
    start, readout, inference, retrieval = timing_columns_us(timings).T
    return np.stack([start - readout, start + inference + retrieval], axis=1) * 1e-6


def stage_windows_s(timings: Iterable[Any]) -> dict[str, np.ndarray]:
    """{"readout", "inference", "retrieval"}: (n, 2) windows in seconds on the trace's time axis, one per
    inference; readout ends at the trigger edge (`start`), retrieval follows the inference."""
    start, readout, inference, retrieval = timing_columns_us(timings).T * 1e-6
    return {"readout": np.stack([start - readout, start], axis=1),
            "inference": np.stack([start, start + inference], axis=1),
            "retrieval": np.stack([start + inference, start + inference + retrieval], axis=1)}
