"""A board on an RC oscillator (0.2 % fast) whose timer ticks at 100 µs: both within what the meter states it
handles alone (a 0.2 % clock measures within 0.5 %, tests/test_bench_physics.py; a 100 µs timer's end to end
is the RUN's envelope / n, tests/test_coarse_timer_envelope.py), yet together refused on every one of seeds
100-120 on the IMX500 twin (Q-Segment, N6705C): WindowMisplaced saying the clock is "likely further off than
the 0.5 % the locator searches" (it is 0.2 %; the RUN's envelope reads 0.99785 for the true 1/1.002), or
CannotResolve of per-inference end-to-end windows. Expected: the twin's truth over the RUN's true first and
last edges / n, measured within 1 % and 3 stated σ, as behind the 100 µs timer alone.
Found by review: a seed sweep of test_bench_physics.measure(physics, seed=s), s = 100..120.
"""

from __future__ import annotations

import pytest

from pytest_edgehil.errors import WindowMisplaced

from .test_bench_physics import measure

RC_CLOCK_COARSE_TIMER = {"ideal": True, "timer_resolution_s": 100e-6, "clock_ppm": 2000.0}


@pytest.mark.xfail(raises=WindowMisplaced, strict=True, reason=(
    "open: behind a 100 µs timer on a 0.2 % clock the located stage edges fit ratio 0.99975 against the "
    "envelope's 0.99783 (matched to the wrong device edges) and the RUN is refused as a clock beyond 0.5 %, "
    "which it is not; the end-to-end figure from the RUN's envelope is not reached"))
def test_an_rc_clock_behind_a_coarse_timer_measures_end_to_end_from_the_envelope() -> None:
    m, _, _, _, timeline, edges = measure(RC_CLOCK_COARSE_TIMER, seed=101)
    last = m.windows[-1]
    truth_j = timeline.energy_between(edges[0, 0], edges[-1, 3]) / len(edges)
    assert last.end_to_end_j.size == 1
    error_j = abs(float(last.end_to_end_j[0]) - truth_j)
    assert error_j <= 3 * float(last.end_to_end_u_j[0]) and error_j <= 0.01 * truth_j, error_j / truth_j
