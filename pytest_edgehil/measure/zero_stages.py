"""Stages a device's timer reads as 0 µs: a tick coarser than the stage, or firmware that ran nothing.

A firmware stamps each stage edge on its timer; a stage is the difference of two stamps, so on a timer of
tick T a stage shorter than T reads 0 or T µs (a 1 ms timer reads Q-Segment's 0.23 ms inference as 0 about
three times in four). Such a stage's window cannot be placed from the stamps: it is not the analyzer's
sample interval that fails it, and no finer one helps (at a 0.5 ms timer the meter used to refuse the whole
measurement with "use a finer sample interval"). End to end still stands: one window over the RUN's
back-to-back inferences, whose ends the trace shows (`run_window`), divided by their number.

When every inference of a RUN reads 0 µs, the stamps cannot tell that timer from firmware that ran nothing
(a model call stubbed out, an interpreter whose error is ignored); the trace can: a RUN that ran shows its
stages' power after its trigger, one that did not leaves the board at idle.

Pure functions on arrays and stage timings; seconds, µs where named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_edgehil.errors import CannotResolve, InvalidPayload
from pytest_edgehil.measure.device_windows import device_tick_s, timing_columns_us
from pytest_edgehil.measure.run_start import idle_level_w, record_noise_w

# A stage, not a spike: this many consecutive samples away from idle show that something ran.
ACTIVE_SAMPLES = 3
TIMER_FIX = ("time the stages with a finer timer in the firmware (a µs timer or finer; docs/protocol.md, RESULT) "
             "for per-inference and inference-stage figures; end-to-end energy does not need it")


def zero_stage_refusal(timings: Sequence[Any], sample_interval_s: float, *,
                       tick_s: float | None = None) -> CannotResolve | None:
    """Why per-inference windows cannot be placed from `timings` (`StageTiming`s), or None: an inference or
    retrieval stage the device's timer read as 0 µs. The reason names the stage, how many inferences read 0,
    and the timer's tick `tick_s` (s; default: the step every stamp of `timings` is a multiple of,
    `device_tick_s`, which one RUN can overstate: a 1 ms timer's RUN whose every stamp fell on a multiple of
    its 17 ms period read 17 ms); the fix is a finer timer in the firmware. `sample_interval_s`: the analyzer's."""
    columns = timing_columns_us(timings)
    zeros = {name: np.flatnonzero(columns[:, column] == 0.0) for name, column in (("inference", 2), ("retrieval", 3))}
    read_zero = [name for name, rows in zeros.items() if rows.size]
    if not read_zero:
        return None
    first, row = read_zero[0], int(zeros[read_zero[0]][0])
    start_s = float(columns[row, 0] + (columns[row, 2] if first == "retrieval" else 0.0)) * 1e-6
    tick_s = device_tick_s(timings) if tick_s is None else tick_s
    tick = (f"its stamps are whole multiples of {tick_s * 1e6:.4g} µs, the timer's tick as they show it, so a stage "
            "shorter than that reads 0 or one tick" if tick_s > 0 else "every stamp reads 0")
    stages = " and ".join(f"the {name} stage of {zeros[name].size}" for name in read_zero)
    return CannotResolve(
        f"{first} window", (start_s, start_s), sample_interval_s,
        f"the device's stage timer reads {stages} of {columns.shape[0]} inferences as 0 µs: {tick}, and a "
        "stage's window cannot be placed from such stamps, at any sample interval. End to end is measured over "
        "the RUN's back-to-back inferences instead", TIMER_FIX)


def check_run_seen(time_s: np.ndarray, power_w: np.ndarray, timings: Sequence[Any], *, trigger_s: float,
                   device: str, port: str, command: str) -> None:
    """Raise InvalidPayload when every inference of `timings` reads 0 µs and the trace (`time_s`, `power_w`:
    the capture of that RUN, its first trigger at `trigger_s` on its axis) shows no activity from that trigger
    on: no run of `ACTIVE_SAMPLES` samples away from the idle level the record ends at (`run_start.idle_level_w`),
    so nothing ran. Nothing when an inference reads more than 0 µs, or when the trace shows the RUN (then a
    timer coarser than the inference read it as 0: `zero_stage_refusal` leaves it untimed). Only what follows
    the trigger counts: a pre-trigger record holds the previous RUN's tail."""
    columns = timing_columns_us(timings)
    if columns.shape[0] == 0 or np.any(columns[:, 2] != 0.0):
        return
    t = np.asarray(time_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    after = p[t >= trigger_s]
    if after.size >= ACTIVE_SAMPLES:
        idle_w, threshold_w = idle_level_w(p, record_noise_w(p))
        away = np.abs(after - idle_w) > threshold_w
        runs = np.convolve(away.astype(np.int64), np.ones(ACTIVE_SAMPLES, dtype=np.int64), mode="valid")
        if np.any(runs == ACTIVE_SAMPLES):
            return
    span_ms = float(columns[-1, 0] + columns[-1, 2] + columns[-1, 3] + columns[0, 1]) * 1e-3
    raise InvalidPayload(
        f"device {device!r} on {port}: {command} reply says all {columns.shape[0]} inferences took inference_us = "
        f"0.0 µs (the RUN {span_ms:.6g} ms by its stamps), and the analyzer's trace shows no activity after the "
        "RUN's trigger: the board stayed at its idle level. Nothing ran: the firmware answered without invoking "
        "the model (a stubbed call, an interpreter whose error is ignored). Nothing was recorded. Check that the "
        "firmware runs the model on RUN and that this analyzer powers this board, then rerun.")


def nothing_timed(timing: Any, *, device: str, port: str, command: str) -> InvalidPayload | None:
    """InvalidPayload when one inference's every stage reads 0 µs (`timing`: a probe RUN's `StageTiming`):
    there is no period to size an acquisition by, and a timer whose tick exceeds a whole inference period is
    no timer at all for it; else None."""
    if timing.readout_us + timing.inference_us + timing.retrieval_us > 0.0:
        return None
    return InvalidPayload(
        f"device {device!r} on {port}: {command} reply says its inference took 0.0 µs in every stage (readout, "
        "inference, retrieval): either nothing ran (the firmware answered without invoking the model) or its "
        "stage timer's tick is longer than a whole inference, so there is no period to size an acquisition by. "
        "Nothing was recorded. Check that the firmware runs the model on RUN and stamps its stages with a µs "
        "(or finer) timer, then rerun.")
