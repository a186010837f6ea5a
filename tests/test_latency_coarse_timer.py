"""Latency figures from a device timer coarser than the stage: the median of tick-quantized stage times.

Seen from outside: the IMX500 twin behind a 1 ms stage timer (`[physics] timer_resolution_s = 1e-3`, a
firmware on a millisecond tick). Q-Segment's 0.23 ms inference reads 0 ms in about three RUNs of four and
1 ms in the fourth: their median, 0 ms, was recorded as inference_ms and passed its 0.237 ms budget with
+100 % margin; TinyTracker's 0.86 ms read 1 ms and failed its 0.886 ms budget, a board that meets it. The
mean of such readings is right (the tick's phase is uniform), their median is one of two ticks. Expected
(the twin's ground truth, the published figures its profile is calibrated to): a figure within a few % of
0.23 ms, or a refusal naming the timer's tick, never 0 ms passed.
"""

from __future__ import annotations

import pytest

from .conftest import REPO

LAB = """
[lab]
name = "millisecond timer"

[devices.imx500]
kind = "imx500"
simulated = true

[physics]
timer_resolution_s = 1e-3
"""


@pytest.mark.xfail(strict=True, reason="the latency suite records the median of stage times quantized by the "
                   "device timer's tick; a figure right behind a coarse timer needs the mean with the tick's "
                   "uncertainty, or a refusal where the tick is not small against the stage (a change of the "
                   "recorded statistic: docs and gate)")
def test_a_stage_shorter_than_the_timer_tick_is_not_recorded_as_0_ms(pytester: pytest.Pytester) -> None:
    (pytester.path / "lab.toml").write_text(LAB, encoding="utf-8")
    pytester.makeini(f"[pytest]\nedgehil_models_dir = {REPO / 'fixtures' / 'models'}\n"
                     f"edgehil_budgets = {REPO / 'fixtures' / 'budgets.toml'}\n")
    pytester.makepyfile(test_latency=(REPO / "suites" / "test_latency.py").read_text(encoding="utf-8"))
    pytester.makeconftest((REPO / "suites" / "conftest.py").read_text(encoding="utf-8").replace(
        "Path(__file__).resolve().parent.parent", f"Path({str(REPO)!r})"))
    result = pytester.runpytest("--lab=lab.toml", "--device=imx500", "-p", "no:cacheprovider",
                                "-k", "inference_latency and qsegment", "-rA")
    outcomes = result.parseoutcomes()
    out = result.stdout.str()
    assert outcomes.get("passed", 0) == 0 or "inference_ms 0 ms" not in out, out[-2000:]
