"""Schema of a model card: `NAME.json` beside `NAME.tflite`, what the model is and its tensor contract.

What a card says on its own is checked here; whether it matches its model file (shapes, sha256) is the
catalog's (`catalog.py`). Imported only inside the loader: pydantic is not loaded by
`import pytest_edgehil.plugin`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field, field_validator

from pytest_edgehil.config.schema import StrictModel, describe_input
from pytest_edgehil.config.schemas import Count, Finite, NonEmpty


class TensorCard(StrictModel):
    """A card's `input` / `output`: the tensor contract, for readers and for the input scaling."""

    name: NonEmpty | None = None  # the tensor's name in the model; for `output`, the one accuracy tests score
    shape: list[Annotated[int, Field(ge=-1)]] | None = None  # -1: a dynamic dimension
    dtype: NonEmpty | None = None
    layout: NonEmpty | None = None
    meaning: str | None = None
    # [low, high]: the float range an 8-bit 0..255 maps to (input); per channel, a list of them (output).
    range: list[Any] | None = None

    @field_validator("range")
    @classmethod
    def _ranges(cls, rng: list[Any] | None) -> list[Any] | None:
        if rng is None:
            return rng
        pairs = rng if rng and all(isinstance(r, list) for r in rng) else [rng]
        for pair in pairs:
            numbers = [x for x in pair if isinstance(x, (int, float)) and not isinstance(x, bool)]
            if len(pair) != 2 or len(numbers) != 2 or not all(math.isfinite(x) for x in numbers) \
                    or not numbers[0] < numbers[1]:
                raise ValueError(f"{describe_input(pair)}: write [low, high], two finite numbers with low < high "
                                 "(or a list of such pairs, one per channel)")
        return rng


class InputTensorCard(TensorCard):
    @field_validator("range")
    @classmethod
    def _one_range(cls, rng: list[Any] | None) -> list[Any] | None:
        if rng is not None and (len(rng) != 2 or any(isinstance(r, list) for r in rng)):  # the input scaling takes one range for all channels
            raise ValueError("the input takes one [low, high] range for all channels")
        return rng


class ModelCard(StrictModel):
    """`NAME.json` beside `NAME.tflite`: every key optional; free-form notes go under `provenance`."""

    name: NonEmpty | None = None
    task: NonEmpty | None = None
    input: InputTensorCard | None = None
    output: TensorCard | None = None
    quantization: str | None = None
    dataset: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    parameters: Count | None = None
    macs: Count | None = None
    reference: str | None = None
    note: str | None = None
    upsampling_head: dict[str, Any] | None = None
    float_of: NonEmpty | None = None
    file_bytes: Count | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    metrics: dict[str, Finite] | None = None
    metrics_how: str | None = None
    # Compiled files per device kind, relative to the card (Edge TPU model, IMX500 package, TensorRT engine):
    # the host uploads the one of the board's kind instead of the source .tflite, and records its hash.
    artifacts: dict[NonEmpty, NonEmpty] | None = None
