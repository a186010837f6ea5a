"""A baseline of several sessions is compared like for like session by session: a night on another board or
another firmware inside a baseline directory is flagged, as it is when it is the latest night. (Only the
latest session's context was compared: a night on board S2 at +15 % widened the measured drift silently.)"""

from __future__ import annotations

import numpy as np

from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, compare_records
from pytest_edgehil.results.store import ResultRecord

GATE = FailOn.parse(DEFAULT_FAIL_ON)


def night(level: float, firmware: str = "fw 1.0", serial: str = "S1") -> ResultRecord:
    rng = np.random.default_rng(0)  # one fixed draw for every night: only the level and the context differ
    samples = [float(x) for x in level * np.exp(0.01 * rng.standard_normal(30))]
    return ResultRecord(pair="qsegment-imx500", model="qsegment", device="imx500", kind="imx500",
                        metric="inference_mj", value=float(np.median(samples)), unit="mJ", backend="HW",
                        status="info", raw=samples, direction="lower", family="energy",
                        context={"model_sha256": "a" * 64, "device_firmware": firmware, "device_serial": serial},
                        test="suites/test_energy.py::test_inference_energy[qsegment-imx500]", outcome="passed")


def test_a_baseline_night_on_another_board_and_firmware_is_flagged_though_not_the_latest() -> None:
    bases = [night(2.0), night(2.3, "fw 0.9", "S2"), night(2.01), night(1.99), night(2.0)]
    c = compare_records(bases, night(2.02), GATE)
    assert any("firmware differs: fw 0.9 → fw 1.0" in flag and "1 of 5 baseline sessions" in flag for flag in c.flags)
    assert any("board serial number differs: S2 → S1" in flag for flag in c.flags)


def test_like_for_like_sessions_carry_no_flag_and_the_latest_sessions_flag_reads_as_before() -> None:
    assert compare_records([night(2.0)] * 5, night(2.02), GATE).flags == ()
    latest_other = compare_records([night(2.0)] * 4 + [night(2.0, "fw 0.9")], night(2.02), GATE)
    assert latest_other.flags == ("firmware differs: fw 0.9 → fw 1.0",)
