"""A trigger that never came is waited for once per device and analyzer in a session, not once per test.

An analyzer whose trigger input the device's line does not reach (unwired, wrong pin, wrong TRIG:SOUR)
makes every acquisition wait out the energy plan's whole timeout (120 s on the hardware plan): a nightly
matrix would spend hours saying the same thing. So the first TriggerTimeout on a (device, analyzer) is
remembered in the pytest session's stash, and every later test of that session that would arm the same
analyzer for the same device fails at once with TriggerTimedOutEarlier, naming the first test.

The rule is deliberately simple (docs/faults.md, "A trigger that never comes"): no retry within the
session, not even after a success elsewhere; a rerun after fixing the wiring starts clean. It is per
process: each pytest-xdist worker learns it once (a real board's tests share one worker: `loadgroup`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from pytest_edgehil.errors import TriggerTimedOutEarlier, TriggerTimeout


@dataclass(frozen=True)
class TimedOutTrigger:
    """The first trigger timeout seen on one device and analyzer: where and how long it waited (s)."""

    device: str
    analyzer: str  # VISA resource (and channel, where the driver names it)
    test: str  # node id of the test that waited it out
    timeout_s: float
    said: str = ""  # the first TriggerTimeout's own text: the instrument's words and its fix (D7 on an LPM01A)


# (device, analyzer resource) → its first trigger timeout in this session.
trigger_timeouts_key = pytest.StashKey[dict[tuple[str, str], TimedOutTrigger]]()


@contextmanager
def trigger_once(session: pytest.Session, device: str, analyzer: str, test: str) -> Iterator[None]:
    """Run a measurement that arms `analyzer` (its resource) on `device`'s trigger, from test `test` (node id).

    Raises TriggerTimedOutEarlier at once, before the body runs, when an earlier test of the session waited
    out a TriggerTimeout on this device and analyzer; a TriggerTimeout from the body is remembered, then
    raised unchanged (the first test's error stays the analyzer's own)."""
    seen = session.stash.setdefault(trigger_timeouts_key, {})
    earlier = seen.get((device, analyzer))
    if earlier is not None:
        raise timed_out_earlier(earlier)
    try:
        yield
    except TriggerTimeout as exc:
        seen.setdefault((device, analyzer), TimedOutTrigger(device, exc.resource or analyzer, test, exc.timeout_s,
                                                            str(exc)))
        raise


def timed_out_earlier(first: TimedOutTrigger) -> TriggerTimedOutEarlier:
    """The error of a later test: device, analyzer, the first test, what it saw, what to do."""
    return TriggerTimedOutEarlier(
        f"device {first.device!r}: its analyzer {first.analyzer} saw no trigger within {first.timeout_s:g} s in "
        f"{first.test} earlier in this session" + (f" ({first.said})" if first.said else "")
        + ", so this test fails without arming it again (it would wait out the same timeout). Check the trigger "
        "wiring from the device's trigger pin to the analyzer's trigger input, the analyzer's trigger source "
        "(TRIG:SOUR EXT and its trigger-input pin) and that the firmware raises the line; then rerun (docs/faults.md, \"A trigger that never comes\")",
        resource=first.analyzer, timeout_s=first.timeout_s, device=first.device, first_test=first.test)
