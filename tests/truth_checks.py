"""Checking a measured energy against a twin's truth when the twin's instrument has its own errors.

The twins draw their instrument's offset and gain within its data sheet (`sim.instrument_errors`), and the
meter states that data sheet's limit per window (`EnergySamples.*_instrument_j`). What is left once the
limit is taken off is the meter's own (method) error, which the tests hold to its 0.5 % promise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from pytest_edgehil.sim.bench_physics import BenchPhysics


def method_error(measured_j: ArrayLike, truth_j: ArrayLike, instrument_j: ArrayLike, *,
                 instrument_errors: bool = True) -> np.ndarray:
    """max(|measured − truth| − instrument limit, 0) / truth, per window (the limit must be stated for each);
    with `instrument_errors` False (an exact twin instrument) the plain relative error."""
    measured = np.asarray(measured_j, dtype=np.float64)
    truth = np.asarray(truth_j, dtype=np.float64)
    limit = np.asarray(instrument_j, dtype=np.float64)
    assert limit.shape == measured.shape, f"instrument limits {limit.shape} not stated per window {measured.shape}"
    return np.maximum(np.abs(measured - truth) - (limit if instrument_errors else 0.0), 0.0) / np.abs(truth)


def has_instrument_errors(physics: Mapping[str, Any] | None) -> bool:
    """Whether a lab's `[physics]` table leaves the twins' instrument errors on (the default; off when ideal)."""
    return BenchPhysics.from_table(physics).instrument_accuracy_rel > 0
