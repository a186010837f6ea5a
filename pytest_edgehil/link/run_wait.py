"""How long the host waits for the reply to `RUN n`: from the expected run time, never a fixed rate.

A fixed "timeout per 100 inferences" times out every board slower than timeout/100 per inference (a
10 s timeout: 100 ms), and the hardware energy plan (MLPerf Tiny: windows of at least 10 s) asks those
boards for exactly such runs. The wait is therefore

    wait_s = timeout_s + count × period_s × RUN_MARGIN

where `period_s` is the expected end-to-end time of one inference, from (in this order of preference)
what the caller declared (`expect()`: a budget, a profile) or what the device itself reported for the
active model (`learn()`, fed with every RUN reply). When nothing is known yet, a short run (at most
PROBE_ABOVE inferences) may take a whole link timeout per inference, and a longer one is preceded by
one inference that learns the period (`needs_probe`): one inference costs its own period, a wrong
fixed guess costs a spurious timeout that blames the cable.

The period is the device's own report, so a device clock that runs slow or fast by a few percent is
covered by the margin; `timeout_s` on top covers the link and the device's command handling.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.link.messages import StageTiming

RUN_MARGIN = 2.0  # the wait allows each inference twice its expected time (jitter, clock error, throttling)
PROBE_ABOVE = 8  # unknown period: runs up to this many inferences get timeout_s each, longer ones a probe
PROGRESS_S = 5.0  # a wait longer than this is reported (traffic log, logger) every PROGRESS_S seconds


@dataclass
class RunWait:
    """The expected run time of the active model on one device; `wait_s(n)` is how long RUN n may take.

    `timeout_s`: the link's own timeout (s). `period_s`: expected seconds per inference, None while
    unknown; `source` says where it came from ("declared: …", "measured by the device").
    """

    timeout_s: float
    period_s: float | None = None
    source: str = "unknown"

    def expect(self, period_s: float, source: str) -> None:
        """Declare the expected seconds per inference (from a budget or a profile). ConfigError if not > 0."""
        if not period_s > 0:
            raise ConfigError(f"expected inference period must be > 0 s, got {period_s!r} (from {source})")
        self.period_s, self.source = float(period_s), f"declared: {source}"

    def learn(self, timings: Iterable[StageTiming]) -> None:
        """Take the slowest end-to-end time of a RUN reply as the period (device µs → s)."""
        slowest_us = max((t.end_to_end_us for t in timings), default=0.0)
        if slowest_us > 0:
            # Never below a declared figure: one fast inference does not shorten a budgeted wait.
            declared = self.period_s if self.source.startswith("declared") else 0.0
            self.period_s, self.source = max(slowest_us * 1e-6, declared or 0.0), "measured by the device"

    def forget(self) -> None:
        """Another model became active (load, select, reset): its period is unknown until learnt again."""
        self.period_s, self.source = None, "unknown"

    def needs_probe(self, count: int) -> bool:
        """Whether RUN `count` should be preceded by RUN 1 to learn the period first."""
        return self.period_s is None and count > PROBE_ABOVE

    def wait_s(self, count: int) -> float:
        """Seconds to wait for the reply to RUN `count` (unknown period: `timeout_s` per inference)."""
        if self.period_s is None:
            return self.timeout_s * count
        return self.timeout_s + RUN_MARGIN * count * self.period_s

    def describe(self, count: int) -> str:
        """For messages: "expected ≈ 12.5 s (0.25 s per inference, measured by the device)"."""
        if self.period_s is None:
            return "expected run time unknown"
        return (f"expected ≈ {count * self.period_s:.3g} s ({self.period_s:.3g} s per inference, "
                f"{self.source})")
