"""Checks on what a device says, after it decoded cleanly: firmware values are data to check, not facts.

A CRC only proves that the bytes arrived as sent; firmware can still send a negative stage time (a timer
that wrapped, a sign error in its packing) or a NaN. Such a value must stop at the link, as a typed
error naming the device, the port, the field and the value, and never reach a budget or a results file.
Codec-level bounds (tensor headers) live in `payload.py`; this module holds the checks that need to know
which device answered which command.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_edgehil.errors import InvalidPayload
from pytest_edgehil.link.messages import Result, StageTiming

__all__ = ["STAGE_FIELDS", "check_result", "check_timings"]

# Every duration/offset a RESULT carries, in µs; each must be finite and >= 0.
STAGE_FIELDS = ("start_us", "readout_us", "inference_us", "retrieval_us")


def _bad_timing(device: str, port: str, command: str, index: int, count: int, field: str,
                value: float) -> InvalidPayload:
    as_ms = f"{value / 1000:.6g} ms" if math.isfinite(value) else str(value)
    return InvalidPayload(
        f"device {device!r} on {port}: {command} reply, inference {index + 1} of {count}: {field} = {value!r} µs "
        f"({field.removesuffix('_us')} {as_ms}) is not a duration (must be finite and >= 0). The value was "
        "not recorded. Check the firmware's stage timer (wrap-around, signed/unsigned mix-up) and its RESULT "
        "packing against docs/protocol.md, then rerun.")


def _check_timing(device: str, port: str, command: str, index: int, count: int, timing: StageTiming) -> None:
    for field in STAGE_FIELDS:
        value = float(getattr(timing, field))
        if not (math.isfinite(value) and value >= 0.0):
            raise _bad_timing(device, port, command, index, count, field, value)


def check_result(result: Result, count: int, *, device: str, port: str, command: str) -> Result:
    """The RESULT of `RUN count`, checked: one timing per inference, every stage time finite and >= 0,
    trigger offsets (`start_us`) non-decreasing. Returns `result` unchanged; raises InvalidPayload (a
    ProtocolError) naming the device, port, inference, field and value otherwise."""
    check_timings(result.timings, count, device=device, port=port, command=command, asked=f"RUN {count}")
    return result


def check_timings(timings: Sequence[StageTiming], count: int, *, device: str, port: str, command: str,
                  asked: str) -> None:
    """`count` inferences' timings (`asked`: what requested them, e.g. "RUN 5", "EVAL_BATCH of 8 images"),
    checked as `check_result` says; InvalidPayload otherwise."""
    if len(timings) != count:
        raise InvalidPayload(f"device {device!r} on {port}: {asked} answered with {len(timings)} "
                             "timings; the firmware must report one per inference")
    previous_start = 0.0
    for index, timing in enumerate(timings):
        _check_timing(device, port, command, index, count, timing)
        if timing.start_us < previous_start:
            raise InvalidPayload(
                f"device {device!r} on {port}: {command} reply, inference {index + 1} of {count} starts at "
                f"{timing.start_us!r} µs, before the previous one ({previous_start!r} µs); inferences run back "
                "to back, so the firmware's trigger timestamps are wrong (timer wrap?). The value was not "
                "recorded; check the firmware's stage timer.")
        previous_start = timing.start_us
