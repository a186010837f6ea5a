"""A baseline directory that tonight's run is still writing into (`pytest --edgehil-save nightly/tonight.json`
while a branch's gate reads `nightly/`): that run is no session yet. It was read as a session with no records
(EMPTY: "check the run selected devices") or as killed (INCOMPLETE), and failed every gate until it finished.
It is left out with a note; the verdicts are those of the directory without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.cli import EXIT_OK, main
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.gate_inputs import load_baseline
from pytest_edgehil.results.store import ResultRecord, ResultsWriter, RunInfo


def record(level: float) -> ResultRecord:
    samples = [float(x) for x in level * np.exp(np.linspace(-0.015, 0.015, 30))]
    return ResultRecord(pair="qsegment-imx500", model="qsegment", device="imx500", kind="imx500",
                        metric="inference_mj", value=float(np.median(samples)), unit="mJ", backend="SIMULATED",
                        status="info", raw=samples, context={"model_sha256": "a" * 64}, direction="lower",
                        family="energy", test="suites/test_energy.py::test_e[qsegment-imx500]", outcome="passed")


def night(path: Path, day: int, level: float, *, finished: bool = True) -> ResultsWriter:
    writer = ResultsWriter(path, RunInfo(started_at=f"2026-11-{day:02d}T02:00:00+00:00", backend="SIMULATED"))
    writer.add([record(level)])
    if finished:
        writer.finish(0)
    return writer


@pytest.mark.parametrize("measured", [False, True])
def test_a_night_still_measuring_is_left_out_of_the_baseline_with_a_note(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], measured: bool) -> None:
    nightly, clean = tmp_path / "nightly", tmp_path / "clean"
    for day, level in [(1, 1.000), (2, 1.004), (3, 0.997)]:
        night(nightly / f"n{day}.json", day, level)
    shutil.copytree(nightly, clean)
    tonight = ResultsWriter(nightly / "tonight.json", RunInfo(started_at="2026-11-04T02:00:00+00:00",
                                                              backend="SIMULATED"))
    if measured:
        tonight.add([record(1.30)])  # half-way through its tests
    new = night(tmp_path / "branch.json", 5, 1.002).path
    assert main(["compare", str(clean), str(new), "--history", "off"]) == EXIT_OK
    expected = capsys.readouterr().out.splitlines()[2:]  # the table and verdicts, without the two header lines
    assert main(["compare", str(nightly), str(new), "--history", "off"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.splitlines()[2:2 + len(expected) - 1] == expected[:-1]
    assert "tonight.json" in out and "has not finished" in out and "left out of the baseline" in out
    assert len(load_baseline(nightly)) == 3


def test_a_baseline_of_nothing_but_unfinished_runs_is_an_error_saying_so(tmp_path: Path) -> None:
    night(tmp_path / "n1.json", 1, 1.0, finished=False)
    with pytest.raises(ConfigError, match="no finished session.*n1.json"):
        load_baseline(tmp_path)


def test_a_killed_run_named_as_the_baseline_file_is_still_incomplete(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    base = night(tmp_path / "killed.json", 1, 1.0, finished=False).path
    new = night(tmp_path / "new.json", 2, 1.0).path
    assert main(["compare", str(base), str(new), "--history", "off"]) == 1
    assert "INCOMPLETE" in capsys.readouterr().out
