"""Firmware that runs nothing, timed by a µs timer: the latency suite must not pass its 2 µs "inference".

Seen from outside: the twin's `no-invoke` firmware fault (a model call stubbed out; the board idle, the
trigger pulsed for 2 µs around a call that returns at once) on the Coral's µs timer. RESULT carries
inference_us = 2 µs, not 0, so `check_inferences_ran` (all zeros) and `zero_stages.check_run_seen` (all
zeros, and energy runs only) both let it through, and Q-Segment's inference_ms 0.002 ms on the Coral (5.7 ms
when it runs) passed its 6 ms budget with +100 % margin. The expected verdict is the twin's ground truth: the fault
fired on every RUN, nothing ran. Refused now by the timer-resolution check (measure/timer_resolution.py):
a 2 µs stage is a few ticks of any timer, and the refusal names both causes, the timer and a stubbed call.
"""

from __future__ import annotations

import pytest

from .conftest import REPO
from .latency_project import shipped_suite

LAB = """
[lab]
name = "stubbed firmware"

[devices.coral]
kind = "coral"
simulated = true

[[devices.coral.faults.armed]]
kind = "no-invoke"
count = 1000
"""


def test_a_stubbed_model_call_on_a_microsecond_timer_does_not_pass_the_latency_budget(
        pytester: pytest.Pytester) -> None:
    (pytester.path / "lab.toml").write_text(LAB, encoding="utf-8")
    pytester.makeini(f"[pytest]\nedgehil_models_dir = {REPO / 'fixtures' / 'models'}\n"
                     f"edgehil_budgets = {REPO / 'fixtures' / 'budgets.toml'}\n")
    shipped_suite(pytester, "test_latency")
    result = pytester.runpytest("--lab=lab.toml", "--device=coral", "-p", "no:cacheprovider",
                                "-k", "inference_latency and qsegment")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "TimerTooCoarse" in out and "ran nothing" in out, out[-3000:]
