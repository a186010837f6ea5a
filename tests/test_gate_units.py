"""A baseline recorded in other units than the run's (results/gate_units.py).

Before: any unit difference was "units differ", UNKNOWN, not blocking, so an energy regression of +30 %
recorded after a lab's writer switched from J to mJ passed the gate. Now units of one dimension are
converted into the run's units and compared; units of different dimensions, or a unit nobody can read,
stay UNKNOWN and say which units and which baseline file. Every expected figure here is worked out by
hand from the values given (1 J = 1000 mJ), not read back from the gate.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from pytest_edgehil.cli import EXIT_OK, EXIT_REGRESSION, main
from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, GateStatus, compare_records, compare_sessions
from pytest_edgehil.results.gate_units import align_units
from pytest_edgehil.results.store import ResultRecord

from .test_gate_plugin import LATENCY_SUITE
from .test_gate_semantics import exact, record, save

DEFAULT = FailOn.parse(DEFAULT_FAIL_ON)
# Three nightly sessions of Q-Segment's energy, 33.9, 34.2 and 34.5 mJ, written by a writer that records joules.
SESSIONS_J = (0.0339, 0.0342, 0.0345)
SESSIONS_MJ = (33.9, 34.2, 34.5)  # the same, by hand
BASE_LEVEL_MJ = math.exp(sum(math.log(v) for v in SESSIONS_MJ) / 3)  # geometric mean of the medians: 34.199 mJ


def samples(level: float) -> list[float]:
    """31 samples, spread ±1.5 % around `level`: an odd count, so their median is `level` itself."""
    return exact(level, n=31).tolist()


def joules(level_j: float) -> ResultRecord:
    return dataclasses.replace(record(samples(level_j)), unit="J")


@pytest.mark.parametrize(("new_mj", "status"), [(44.5, GateStatus.REGRESSED), (34.2, GateStatus.SAME)])
def test_a_baseline_in_joules_is_compared_in_the_runs_millijoules(new_mj: float, status: GateStatus) -> None:
    report = compare_sessions([[joules(j)] for j in SESSIONS_J], [record(samples(new_mj))], DEFAULT)
    (c,) = report.comparisons
    assert c.status is status
    assert c.unit == "mJ" and c.base_unit is None  # compared in the run's unit
    assert c.base_value == pytest.approx(BASE_LEVEL_MJ, rel=1e-9)
    assert c.ratio == pytest.approx(new_mj / BASE_LEVEL_MJ, rel=1e-9)  # 44.5 / 34.199 = 1.301: +30 %
    assert report.passed is (status is GateStatus.SAME)
    assert any("J" in flag and "mJ" in flag and "converted" in flag for flag in c.flags), c.flags


def test_edgehil_compare_fails_a_30_percent_rise_over_a_baseline_directory_in_joules(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nightly = tmp_path / "nightly"
    nightly.mkdir()
    for night, level in enumerate(SESSIONS_J, start=1):
        save(nightly / f"night{night}.json", [joules(level)], started_at=f"2026-11-0{night}T02:00:00+00:00")
    new = save(tmp_path / "new.json", [record(samples(44.5))])
    assert main(["compare", str(nightly), str(new), "--history", "off"]) == EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "FAIL qsegment-imx500 inference_mj: 34.2 → 44.5 mJ" in out  # 34.199 mJ to 4 digits
    unchanged = save(tmp_path / "unchanged.json", [record(samples(34.2))])
    assert main(["compare", str(nightly), str(unchanged), "--history", "off"]) == EXIT_OK


@pytest.mark.parametrize(("metric", "base_unit", "base_value", "new_value"), [
    ("inference_mj", "J", 0.0342, 34.2),  # energy
    ("inference_mj", "µJ", 34200.0, 34.2),
    ("inference_ms", "s", 0.0125, 12.5),  # latency
    ("inference_ms", "µs", 12500.0, 12.5),
    ("inference_mw", "W", 0.26, 260.0),  # power
    ("model_kib", "B", 630784.0, 616.0),  # 616 × 1024 bytes
    ("model_kib", "MiB", 0.6015625, 616.0),  # 616 / 1024
])
@pytest.mark.parametrize("rise", [1.0, 1.3])
def test_values_of_one_dimension_convert_exactly(metric: str, base_unit: str, base_value: float, new_value: float,
                                                  rise: float) -> None:
    """Single values (no samples) are compared as values: a conversion that is not exact would show as a change."""
    spec = {"inference_mj": ("mJ", "energy"), "inference_ms": ("ms", "latency"), "inference_mw": ("mW", "power"),
            "model_kib": ("KiB", "footprint")}[metric]
    new = ResultRecord(pair="qsegment-imx500", model="qsegment", device="imx500", kind="imx500", metric=metric,
                       value=new_value * rise, unit=spec[0], backend="SIMULATED", status="info", direction="lower",
                       family=spec[1], test="suites/test_x.py::test_it")
    base = dataclasses.replace(new, value=base_value, unit=base_unit)
    c = compare_records(base, new, DEFAULT)
    assert c.base_value == new_value  # exactly: 0.0342 J is 34.2 mJ to the last bit
    assert c.ratio == pytest.approx(rise, rel=1e-12)
    if rise == 1.0:
        assert c.status is GateStatus.SAME and c.ratio == 1.0
    else:  # +30 %: a footprint is deterministic, REGRESSED; a noisy metric without samples cannot be tested, ~
        assert c.status is (GateStatus.REGRESSED if metric == "model_kib" else GateStatus.UNKNOWN)


@pytest.mark.parametrize(("base_unit", "says"), [
    ("ms", ["'ms'", "'mJ'", "time", "energy"]),  # another dimension
    ("bananas", ["'bananas'"]),  # a unit nobody can read
])
def test_units_that_cannot_convert_stay_unknown_and_name_the_units_and_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], base_unit: str, says: list[str]) -> None:
    base = save(tmp_path / "night1.json", [dataclasses.replace(record(samples(34.2)), unit=base_unit)])
    new = save(tmp_path / "new.json", [record(samples(44.5))])
    assert main(["compare", str(base), str(new), "--history", "off"]) == EXIT_OK  # UNKNOWN does not block by default
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("UNKNOWN qsegment-imx500 inference_mj"))
    for text in [*says, "night1.json"]:
        assert text in line, (text, line)
    assert f"34.2 {base_unit} → 44.5 mJ" in line  # each value in its own unit, never 34.2 mJ
    assert main(["compare", str(base), str(new), "--history", "off", "--fail-on", "energy:2.5%,unknown"]) \
        == EXIT_REGRESSION


def test_a_baseline_in_the_runs_own_units_is_not_flagged() -> None:
    c = compare_records(record(exact(34.2)), record(exact(34.2)), DEFAULT)
    assert c.status is GateStatus.SAME and not c.flags


@pytest.mark.parametrize(("base_unit", "new_unit", "one_base_in_new"), [
    ("mWh", "J", 3.6),  # 1 mWh = 3600 J / 1000
    ("KiB", "kB", 1.024),  # 1024 bytes against 1000
    ("cm", "mm", 10.0),  # `m` is the metre, and a prefix
    ("ns", "µs", 0.001),
    ("μJ", "µJ", 1.0),  # Greek mu and the micro sign are one prefix
    ("kMAC", "MMAC", 0.001),
])
def test_the_conversion_factor_between_units_of_one_dimension(base_unit: str, new_unit: str,
                                                              one_base_in_new: float) -> None:
    new = dataclasses.replace(record(samples(1.0)), unit=new_unit)
    (base,), flags, reasons = align_units([dataclasses.replace(new, unit=base_unit, value=1.0, raw=[1.0, 2.0])], new)
    assert not reasons and flags == (f"baseline in {base_unit}, converted to {new_unit}",)
    assert (base.unit, base.value) == (new_unit, pytest.approx(one_base_in_new, rel=1e-15))
    assert base.raw == [pytest.approx(one_base_in_new, rel=1e-15), pytest.approx(2 * one_base_in_new, rel=1e-15)]


@pytest.mark.parametrize(("base_unit", "new_unit"), [
    ("fps", "Hz"),  # frames per second are no frequency the table equates (pint reads fps as foot per second)
    ("KB", "KiB"),  # KB is 1000 or 1024 bytes, depending on who wrote it
    ("B", ""),  # bytes are no count of parameters
    ("min", "s"),  # not in the table: refused, not guessed
])
def test_units_the_table_does_not_equate_are_refused(base_unit: str, new_unit: str) -> None:
    new = dataclasses.replace(record(samples(1.0)), unit=new_unit)
    (base,), flags, (reason,) = align_units([dataclasses.replace(new, unit=base_unit)], new, ["night1.json"])
    assert base.unit == base_unit and not flags
    assert "night1.json" in reason and reason.startswith("units differ")


def test_pytest_gate_converts_a_baseline_saved_in_seconds(edgehil_project: pytest.Pytester) -> None:
    """The plugin's gate, end to end: a baseline saved by this version, rewritten as a lab's writer in seconds
    would (each figure / 1000) and 1.3 times faster, against the same run: +30 % in the run's ms, blocking."""
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    base = edgehil_project.path / "base.json"
    run = ["--device=imx500", "--edgehil-seed=5", "-p", "no:cacheprovider"]
    edgehil_project.runpytest(*run, f"--edgehil-save={base}").assert_outcomes(passed=2)
    data = json.loads(base.read_text(encoding="utf-8"))
    for r in data["records"]:
        r["unit"] = "s"
        for key in ("value", "median", "ci_low", "ci_high"):
            r[key] = r[key] / 1000.0 / 1.3
        r["raw"] = [x / 1000.0 / 1.3 for x in r["raw"]]
    base.write_text(json.dumps(data), encoding="utf-8")
    result = edgehil_project.runpytest(*run, f"--edgehil-baseline={base}")
    assert result.ret == 1
    line = f"FAIL qsegment-imx500 inference_ms: * → * ms, ratio 1.30[01]* [[]baseline in s, converted to ms ({base})]"
    result.stdout.fnmatch_lines([line])


@pytest.mark.parametrize("base_unit", ["MB", "GB"])
def test_megabytes_are_as_ambiguous_as_kilobytes_and_refused(base_unit: str) -> None:
    """JEDEC 100B.01 (memory) reads MB and GB as 2^20 and 2^30 bytes, SI as 10^6 and 10^9: a baseline in MB
    converted to KiB at 10^6 / 1024 = 976.6 where the writer meant 1024 would move a footprint by 2.4 %, a
    verdict from a guess. Refused as KB is (the table's own rule); kB (SI's lower-case k) still converts."""
    new = dataclasses.replace(record(samples(1.0)), unit="KiB")
    (base,), flags, (reason,) = align_units([dataclasses.replace(new, unit=base_unit)], new, ["night1.json"])
    assert base.unit == base_unit and not flags
    assert "night1.json" in reason and reason.startswith("units differ")
