"""Schema of `profiles.toml` (a twin's calibration): every key typed, finite and in range.

Imported by `profile.load_profiles` only (it loads pydantic); see `pytest_edgehil.config.schema`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pytest_edgehil.config.schema import StrictModel

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class StagePowerTable(StrictModel):
    """`[device.KIND.power]`: mean supply power of each stage, in watts."""

    idle_w: NonNegative
    readout_w: NonNegative
    inference_w: NonNegative
    retrieval_w: NonNegative


FrameKey = Annotated[str, Field(pattern=r"^[1-9][0-9]*x[1-9][0-9]*x[1-9][0-9]*$")]


class FrameReadoutTable(StrictModel):
    """`[device.KIND.frame_readout."HxWxC"]`: the sensor readout of one input frame (its sensor mode)."""

    readout_s: NonNegative
    readout_w: NonNegative


class ProfileTable(StrictModel):
    """`[device.KIND]`: the twin's calibration. Times in seconds, rates per second."""

    firmware: Annotated[str, Field(min_length=1)]
    int8_macs_per_s: Positive
    inference_overhead_s: NonNegative
    float_slowdown: Annotated[float, Field(ge=1)]  # a float model is never faster than its int8 twin
    elementwise_ops_per_s: Positive | None = None  # absent: an elementwise op costs one MAC's time
    readout_s: NonNegative
    retrieval_fixed_s: NonNegative
    retrieval_bytes_per_s: Positive
    jitter_rel: Annotated[float, Field(ge=0, lt=1)]
    source: str
    power: StagePowerTable
    frame_readout: dict[FrameKey, FrameReadoutTable] = Field(default_factory=dict)


class ProfilesFile(StrictModel):
    device: dict[str, ProfileTable] = Field(default_factory=dict)
