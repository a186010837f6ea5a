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

__all__ = ["ROUND_TRIP_CLOCK_TOLERANCE", "STAGE_FIELDS", "check_inferences_ran", "check_result", "check_timings",
           "check_within_round_trip"]

# How much faster than the host's clock a board's timer may run (an RC oscillator is within 1 %), and the
# least slack for the host's own clock and scheduling: below these a RESULT's span cannot exceed its round trip.
ROUND_TRIP_CLOCK_TOLERANCE = 0.02
ROUND_TRIP_SLACK_S = 1e-3
# Every duration/offset a RESULT carries, in µs; each must be finite, >= 0 and below MAX_STAGE_US.
STAGE_FIELDS = ("start_us", "readout_us", "inference_us", "retrieval_us")
# 2^53 µs (285 years): past it a float no longer holds every whole µs, and no timer counts that far; such a
# value is garbage bits or a float packed where the µs counter belongs, and the tick and pulse checks after
# this one would overflow on it (1.8e305 µs raised a bare OverflowError).
MAX_STAGE_US = float(2 ** 53)


def _bad_timing(device: str, port: str, command: str, index: int, count: int, field: str,
                value: float) -> InvalidPayload:
    as_ms = f"{value / 1000:.6g} ms" if math.isfinite(value) else str(value)
    return InvalidPayload(
        f"device {device!r} on {port}: {command} reply, inference {index + 1} of {count}: {field} = {value!r} µs "
        f"({field.removesuffix('_us')} {as_ms}) is not a duration (must be finite, >= 0 and below 2^53 µs). The "
        "value was not recorded. Check the firmware's stage timer (wrap-around, signed/unsigned mix-up) and its RESULT "
        "packing against docs/protocol.md, then rerun.")


def _check_timing(device: str, port: str, command: str, index: int, count: int, timing: StageTiming) -> None:
    for field in STAGE_FIELDS:
        value = float(getattr(timing, field))
        if not (math.isfinite(value) and 0.0 <= value < MAX_STAGE_US):
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
    _check_pulses_apart(timings, device=device, port=port, command=command)


def _check_pulses_apart(timings: Sequence[StageTiming], *, device: str, port: str, command: str) -> None:
    """One trigger line is high from `start_us` for `inference_us` (docs/protocol.md, RESULT): the next
    inference cannot rise before it falls. Stamps on a timer of tick T may each be a tick off, so an overlap
    up to two ticks (the step every value is a multiple of) is the timer's, not the firmware's; more is
    refused (InvalidPayload): per-inference stamps (every `start_us` 0) would put every energy window over
    the first inference."""
    slack_us = 2 * _tick_us(timings) + 1e-6  # + 1 ps: the float sums of a twin's exact stamps
    for index in range(1, len(timings)):
        before, timing = timings[index - 1], timings[index]
        fall_us = before.start_us + before.inference_us
        if timing.start_us + slack_us < fall_us:
            raise InvalidPayload(
                f"device {device!r} on {port}: {command} reply, inference {index + 1} of {len(timings)} starts "
                f"(trigger rises) at {timing.start_us!r} µs, while inference {index}'s pulse is still high (it "
                f"rose at {before.start_us!r} µs and falls at {fall_us!r} µs): one trigger line cannot do that. "
                "`start_us` counts from the RUN's first trigger edge, not from each inference's own start. "
                "The value was not recorded; fix the firmware's stamps (docs/protocol.md, RESULT), then rerun.")


def check_inferences_ran(timings: Sequence[StageTiming], *, device: str, port: str, command: str) -> None:
    """A RUN's latency figures need an inference stage: when every `inference_us` is 0, nothing ran (firmware
    that answers without invoking the model) or the timer cannot resolve one inference, and 0 µs would pass
    any latency budget. InvalidPayload then. Zeros among non-zero ticks are a coarse timer's honest reading
    (their mean is right), and pass. Checked on RUN only: EVAL's outputs are what an evaluation takes."""
    if timings and all(t.inference_us == 0.0 for t in timings):
        raise InvalidPayload(
            f"device {device!r} on {port}: {command} reply says all {len(timings)} inferences took inference_us = "
            "0.0 µs: either nothing ran (the firmware answered without invoking the model) or its stage timer "
            "cannot resolve one inference. The value was not recorded, since 0 µs would pass any latency budget. "
            "Check that the firmware runs the model on RUN and times it with a µs (or finer) timer, then rerun.")


def _tick_us(timings: Sequence[StageTiming]) -> float:
    """The device timer's tick (µs) its stamps show: the largest step (to the ns) every value is a multiple of."""
    values = [round(abs(getattr(t, f)) * 1000.0) for t in timings for f in STAGE_FIELDS]
    return math.gcd(*values) / 1000.0 if any(values) else 0.0


def check_within_round_trip(timings: Sequence[StageTiming], round_trip_s: float, *, device: str, port: str,
                            command: str) -> None:
    """The device's account of a RUN must fit in the time the host waited for it: from the first trigger to
    the end of the last inference (`start_us` + `inference_us` of the last, whatever the firmware counts as
    readout) is at most `round_trip_s` (host monotonic s from before the request was written until its reply
    was read) × (1 + ROUND_TRIP_CLOCK_TOLERANCE), plus ROUND_TRIP_SLACK_S or two timer ticks. Else
    InvalidPayload: the firmware's stage timer is not in µs (a ns timer or a cycle counter packed as µs
    reports "300 ms" for a 0.3 ms inference, a number a budget would take at face value)."""
    if not timings:
        return
    last = timings[-1]
    span_us = last.start_us - timings[0].start_us + last.inference_us
    slack_s = max(ROUND_TRIP_SLACK_S, 2e-6 * _tick_us(timings))
    allowed_us = (round_trip_s * (1 + ROUND_TRIP_CLOCK_TOLERANCE) + slack_s) * 1e6
    if span_us > allowed_us:
        raise InvalidPayload(
            f"device {device!r} on {port}: {command} reply says its inferences took {span_us:.6g} µs from the "
            f"first trigger to the end of the last inference, but the whole round trip took {round_trip_s * 1e6:.6g} "
            f"µs on the host: the stage times cannot be in µs (a ns timer or a CPU cycle counter packed as µs?). "
            "Nothing was recorded. Send every stage time in µs (docs/protocol.md, RESULT), then rerun.")
