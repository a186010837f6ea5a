"""A run's start time orders the sessions of a baseline and the store's runs: it is an instant, not a string.

The plugin writes UTC (`+00:00`), but a results file from another tool, another host's writer or a hand
edit may carry another offset. "09:30-01:00" is 10:30 UTC, after "10:00+00:00", though it sorts before it
as text; the latest baseline session is the reference for exact values (accuracy), so the order decides
the verdict.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pytest_edgehil.cli import EXIT_REGRESSION, main
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.gate_inputs import load_baseline
from pytest_edgehil.results.history import History
from pytest_edgehil.results.store import ResultRecord, ResultsFile, RunInfo, load_results, results_from_json

EARLIER = "2026-12-01T10:00:00+00:00"
LATER_IN_ANOTHER_ZONE = "2026-12-01T09:30:00-01:00"  # 10:30 UTC


def auc(value: float) -> ResultRecord:
    return ResultRecord(pair="qsegment-coral", model="qsegment", device="coral", kind="coral", metric="roc_auc",
                        value=value, unit="", backend="SIMULATED", status="info", direction="higher",
                        family="accuracy", test="suites/test_accuracy.py::test_auc[qsegment-coral]", outcome="passed")


def save(path: Path, started_at: str, value: float, run_id: str) -> Path:
    results = ResultsFile(run=RunInfo(started_at=started_at, backend="SIMULATED", complete=True, run_id=run_id),
                          records=[auc(value)])
    path.write_text(json.dumps(results.to_json_dict()), encoding="utf-8")
    return path


def test_the_latest_baseline_session_is_the_latest_instant_whatever_its_offset(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nights = tmp_path / "nights"
    nights.mkdir()
    save(nights / "a.json", EARLIER, 0.90, "a")
    save(nights / "b.json", LATER_IN_ANOTHER_ZONE, 0.95, "b")
    new = save(tmp_path / "new.json", "2026-12-01T11:00:00+00:00", 0.94, "n")
    assert [s.run.run_id for s in load_baseline(nights)] == ["a", "b"]
    # Against the latest session (b, 0.95) the new 0.94 is 1 - 0.94/0.95 = 1.05 % worse: past accuracy:1 %.
    assert 1 - 0.94 / 0.95 > 0.01
    assert main(["compare", str(nights), str(new), "--history", "off"]) == EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "0.95" in out


def test_start_times_load_as_utc_and_the_store_orders_by_instant(tmp_path: Path) -> None:
    a = save(tmp_path / "a.json", EARLIER, 0.90, "a")
    b = save(tmp_path / "b.json", LATER_IN_ANOTHER_ZONE, 0.95, "b")
    loaded = load_results(b).run.started_at
    assert datetime.fromisoformat(loaded) == datetime(2026, 12, 1, 10, 30, tzinfo=timezone.utc)
    assert datetime.fromisoformat(loaded).utcoffset() is not None
    with History(tmp_path / "h.sqlite") as store:
        store.import_file(b)
        store.import_file(a)
        assert store.latest(1) == ["b"]


@pytest.mark.parametrize("started_at", ["yesterday", "", "2026-13-01T00:00:00+00:00"])
def test_a_start_time_that_is_no_time_is_refused_naming_the_field(started_at: str) -> None:
    data = ResultsFile(run=RunInfo(started_at=started_at, backend="SIMULATED")).to_json_dict()
    with pytest.raises(ConfigError, match="started_at") as caught:
        results_from_json(data, "night.json")
    assert "night.json" in str(caught.value)


def test_a_start_time_without_offset_is_taken_as_utc() -> None:
    data = ResultsFile(run=RunInfo(started_at="2026-12-01T10:00:00", backend="SIMULATED")).to_json_dict()
    assert results_from_json(data).run.started_at == EARLIER
