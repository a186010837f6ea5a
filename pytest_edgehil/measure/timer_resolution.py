"""Whether a device's stage timer resolves the latency figures taken from it.

A firmware stamps each stage edge on its timer; a stage time is the difference of two stamps, so behind a
timer of tick T each reading is the stage rounded to a whole number of ticks, off by up to T, and so is the
median of such readings: a 0.23 ms inference behind a 1 ms timer reads 0 ms three times in four and 1 ms
the fourth, median 0 ms, which passed its budget. A figure is refused where the tick exceeds
`TICK_REL_MAX` of the stage's median reading, so its rounding stays under 1 %, a fifth of the latency
family's 5 % gate threshold. A stage every reading gives as 0 is a stage the firmware does not time (or
`replies.check_inferences_ran`'s case, for the inference) and is left to that.

Pure functions on `StageTiming`s; seconds, µs where named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_edgehil.errors import TimerTooCoarse
from pytest_edgehil.measure.device_windows import device_tick_s, timing_columns_us

TICK_REL_MAX = 0.01
_STAGES = (("readout", 1), ("inference", 2), ("retrieval", 3))


STAGES = ("readout", "inference", "retrieval", "end-to-end")


def check_timer_resolves(timings: Sequence[Any], *, device: str, port: str,
                         stages: Sequence[str] = STAGES) -> None:
    """TimerTooCoarse when the device timer's tick (`device_tick_s` of `timings`) exceeds `TICK_REL_MAX` of the
    median reading of one of `stages` (those a figure is taken of: a test recording the inference alone is
    not refused for a readout the timer cannot resolve); naming the stage, the tick, the readings and the
    fix. Nothing for no timings or a stage every reading gives as 0."""
    if not timings:
        return
    tick_s = device_tick_s(timings)
    columns = timing_columns_us(timings)
    by_name = {name: columns[:, column] for name, column in _STAGES}
    by_name["end-to-end"] = columns[:, 1:4].sum(axis=1)
    for name in stages:
        values_us = by_name[name]
        if not np.any(values_us > 0):
            continue
        median_s = float(np.median(values_us)) * 1e-6
        if tick_s <= TICK_REL_MAX * median_s:
            continue
        ticks = np.unique(np.rint(values_us / (tick_s * 1e6)).astype(np.int64))  # readings in whole ticks
        readings = " or ".join(f"{t * tick_s * 1e3:.4g} ms" for t in ticks[:4]) + (" …" if ticks.size > 4 else "")
        # A stage of a few ticks on a µs timer is no stage a model takes: a call that returns at once.
        stub = (f" A {name} stage of {median_s * 1e6:.3g} µs may also be firmware that ran nothing (a stubbed model "
                "call, an interpreter whose error is ignored): check that it invokes the model on RUN."
                if name == "inference" and median_s < 10 * tick_s else "")
        raise TimerTooCoarse(
            f"device {device!r} on {port}: its stage timer's stamps are whole multiples of {tick_s * 1e6:.4g} µs (the "
            f"timer's tick as they show it), and the {name} stage reads {readings} over {len(timings)} "
            f"inferences, median {median_s * 1e3:.4g} ms: each reading is the stage rounded to whole ticks, off "
            f"by up to {tick_s * 1e3:.4g} ms, more than {TICK_REL_MAX:.0%} of it, so no {name} figure was "
            "recorded. Time the stages with a finer timer in the firmware (a µs timer or finer; docs/protocol.md, "
            f"RESULT); end-to-end energy over back-to-back inferences does not need it (test_energy).{stub}",
            device=device, stage=name, tick_s=tick_s, median_s=median_s)
