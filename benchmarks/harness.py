"""Interleaved A/B timing: the protocol path and its bare baseline, round after round in one process.

Why interleaved: this machine is shared, and its load changes from second to second. Timing all of A and
then all of B lets a burst of someone else's work land on one side only (one run of the old pairwise
benchmarks gave 16.5x, the next 2.6x). Here every round times a block of A and a block of B back to back,
alternating which goes first, and the ratio is taken per round: load that lasts longer than a round
cancels out, and the spread of the per-round ratios shows what is left.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Ratio:
    """Per-round ratios of A's time to B's time (A = our path, B = the bare baseline), and both times."""

    name: str
    ratios: tuple[float, ...]
    a_s: float  # median seconds per A call over the rounds
    b_s: float  # median seconds per B call over the rounds

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def low(self) -> float:
        return min(self.ratios)

    @property
    def high(self) -> float:
        return max(self.ratios)

    def text(self) -> str:
        return f"{self.median:.2f}x [{self.low:.2f}-{self.high:.2f}]"


def _block_s(call: Callable[[], object], inner: int, settle_s: float = 0.0) -> float:
    settle_end = time.perf_counter() + settle_s
    while time.perf_counter() < settle_end:
        call()
    start = time.perf_counter()
    for _ in range(inner):
        call()
    return (time.perf_counter() - start) / inner


def interleaved(name: str, a: Callable[[], object], b: Callable[[], object], *, rounds: int = 15,
                inner: int = 20, warmup: int = 2, settle_s: float = 0.0) -> Ratio:
    """Time `inner` calls of `a` and of `b` per round, `rounds` times, alternating the order.

    Returns the per-round ratios time(a) / time(b). Garbage collection is off while a block runs (it
    would land on whichever side happened to allocate past the threshold) and run between blocks.

    `settle_s`: each block is preceded by untimed calls of its own side for that long (pyperf's warm-up
    values, per block). Why: on this machine (a KVM guest whose idle vCPUs halt at once) a path that hands
    work between threads runs 15-40 % slower for about five calls after any pause (the other side's block,
    the collection between blocks), while a single-threaded path does not (docs/benchmarks.md, "Stop 22"
    and "Stop 23"). Without settling, every block of a threaded side is timed in that regime only, which
    an evaluation run back to back is not in. 0 times the blocks cold.
    """
    for _ in range(warmup):
        a()
        b()
    ratios, a_times, b_times = [], [], []
    for round_no in range(rounds):
        times = {}
        order = (("a", a), ("b", b)) if round_no % 2 == 0 else (("b", b), ("a", a))
        for label, call in order:
            gc.collect()
            gc.disable()
            try:
                times[label] = _block_s(call, inner, settle_s)
            finally:
                gc.enable()
        a_times.append(times["a"])
        b_times.append(times["b"])
        ratios.append(times["a"] / times["b"])
    return Ratio(name, tuple(ratios), statistics.median(a_times), statistics.median(b_times))
