"""The results file: schema, validation, atomic incremental writes, and a run killed with SIGKILL."""

from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.store import (
    FORMAT,
    SCHEMA_VERSION,
    ResultRecord,
    ResultsWriter,
    RunInfo,
    git_commit,
    load_results,
    results_from_json,
    utc_now,
)

from .conftest import BUDGETS, MODELS, REPO


def metric_record(metric: str = "inference_mj", raw: list[float] | None = None, value: float = 0.0114) -> MetricRecord:
    return MetricRecord(pair="qsegment-imx500", model="qsegment", device="imx500", kind="imx500", metric=metric,
                        value=value, unit="mJ", backend="SIMULATED", status="pass", bound="≤ 0.06 mJ",
                        margin_rel=0.8, samples=len(raw) if raw else None, source="a paper", ci_low=0.0113,
                        ci_high=0.0115, raw=raw, context={"model_sha256": "ab" * 32, "sample_interval_s": 5.12e-6})


def test_round_trip_keeps_every_field_and_adds_the_median(tmp_path: Path) -> None:
    run = RunInfo(started_at=utc_now(), backend="SIMULATED", seed=3, lab="simulated bench", devices=["imx500"])
    writer = ResultsWriter(tmp_path / "r.json", run)
    original = metric_record(raw=[0.0113, 0.0114, 0.0116])
    writer.add([ResultRecord.from_metric_record(original, test="t.py::test_x[qsegment-imx500]", outcome="passed")],
               [{"pair": "qsegment-imx500", "time_s": [0.0, 1e-5], "power_w": [0.07, 0.07], "windows_s": []}])
    loaded = load_results(tmp_path / "r.json")
    (rec,) = loaded.records
    assert rec.raw == original.raw and rec.context == original.context and rec.ci_low == original.ci_low
    assert rec.median == pytest.approx(0.0114) and rec.test.endswith("[qsegment-imx500]") and rec.outcome == "passed"
    assert loaded.run.seed == 3 and loaded.run.devices == ["imx500"] and not loaded.run.complete
    assert loaded.traces[0]["power_w"] == [0.07, 0.07]
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["format"] == FORMAT and data["schema_version"] == SCHEMA_VERSION


def test_file_is_valid_from_the_start_and_finish_marks_it_complete(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / "deep" / "r.json", RunInfo(started_at=utc_now(), backend="HW"))
    assert load_results(tmp_path / "deep" / "r.json").records == []
    writer.finish(1)
    run = load_results(tmp_path / "deep" / "r.json").run
    assert run.complete and run.exit_status == 1 and run.finished_at is not None
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["r.json"]  # no temp files left behind


def test_non_finite_values_are_written_as_null_and_read_back_as_nan(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / "r.json", RunInfo(started_at=utc_now(), backend="SIMULATED"))
    writer.add([ResultRecord.from_metric_record(metric_record("fps", value=float("inf")))])
    text = writer.journal_path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert math.isnan(load_results(tmp_path / "r.json").records[0].value)


def test_a_failed_write_leaves_the_previous_records_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = ResultsWriter(tmp_path / "r.json", RunInfo(started_at=utc_now(), backend="SIMULATED"))
    writer.add([ResultRecord.from_metric_record(metric_record())])
    before = load_results(tmp_path / "r.json").records
    real_fsync = os.fsync

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ConfigError, match="cannot write the results file: No space left"):
        writer.add([ResultRecord.from_metric_record(metric_record("inference_mw"))])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert load_results(tmp_path / "r.json").records == before  # the failed line was cut back off
    writer.add([ResultRecord.from_metric_record(metric_record("fps"))])  # later appends still load
    assert [r.metric for r in load_results(tmp_path / "r.json").records] == [before[0].metric, "fps"]


def test_records_are_appended_to_the_journal_and_the_document_is_written_once_at_the_end(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / "r.json", RunInfo(started_at=utc_now(), backend="SIMULATED"),
                           latest=tmp_path / "latest.json")
    document = (tmp_path / "r.json").read_text()
    for metric in ("inference_mj", "inference_mw", "fps"):
        writer.add([ResultRecord.from_metric_record(metric_record(metric))])
    # O(1) per record: adding never rewrote the document, only appended a line to the journal.
    assert (tmp_path / "r.json").read_text() == document
    assert len(writer.journal_path.read_text().splitlines()) == 1 + 3
    for path in (tmp_path / "r.json", tmp_path / "latest.json"):
        assert [r.metric for r in load_results(path).records] == ["inference_mj", "inference_mw", "fps"]
    writer.finish(0)
    assert not writer.journal_path.exists()
    data = json.loads((tmp_path / "r.json").read_text())
    assert "journal" not in data and [r["metric"] for r in data["records"]] == ["inference_mj", "inference_mw", "fps"]
    assert (tmp_path / "latest.json").read_text() == (tmp_path / "r.json").read_text()


def test_a_torn_last_journal_line_is_ignored_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / "r.json", RunInfo(started_at=utc_now(), backend="SIMULATED"))
    writer.add([ResultRecord.from_metric_record(metric_record())])
    whole = writer.journal_path.read_bytes()
    writer.journal_path.write_bytes(whole + b'{"records": [{"pair": "p", "met')  # killed mid-write
    assert len(load_results(tmp_path / "r.json").records) == 1
    writer.journal_path.write_bytes(whole + b'{"records": [\n')
    with pytest.raises(ConfigError, match="line 3 is not JSON"):
        load_results(tmp_path / "r.json")
    writer.journal_path.unlink()
    with pytest.raises(ConfigError, match="journal .* cannot be read"):
        load_results(tmp_path / "r.json")


def test_prune_keeps_the_newest_runs_and_never_latest(tmp_path: Path) -> None:
    from pytest_edgehil.results.store import prune_old_runs

    names = [f"2026113{day}T010000Z-1-abcd.json" for day in range(5)]
    for name in [*names, "latest.json", f".{names[0]}.x.journal"]:
        (tmp_path / name).write_text("{}")
    removed = prune_old_runs(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == sorted([*names[:3], f".{names[0]}.x.journal"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[3:], "latest.json"])
    with pytest.raises(ConfigError, match="edgehil_results_keep must be >= 1"):
        prune_old_runs(tmp_path, keep=0)


def _valid() -> dict[str, object]:
    return {"format": FORMAT, "schema_version": 1, "run": {"started_at": "2026-11-30T10:00:00+00:00", "backend": "SIMULATED"},
            "records": [{"pair": "p", "metric": "inference_mj", "value": 1.0, "unit": "mJ", "raw": [1.0, 2.0]}]}


@pytest.mark.parametrize(("patch", "message"), [
    ({"format": "something else"}, "not a pytest-edgehil results file"),
    ({"schema_version": 99}, "schema version 99 was written by a newer pytest-edgehil"),
    ({"schema_version": "1"}, "`schema_version` must be an integer"),
    ({"run": {}}, "run: missing started_at, backend"),
    ({"records": [{"pair": "p", "value": 1.0, "unit": "mJ"}]}, "record #1: missing metric"),
    ({"records": [{"pair": "p", "metric": "m", "value": "fast", "unit": ""}]}, "record #1: `value` must be a number"),
    ({"records": [{"pair": "p", "metric": "m", "value": 1.0, "unit": "", "raw": [1.0, "x"]}]}, "`raw\\[\\]`"),
])
def test_validation_names_the_file_record_and_field(patch: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        results_from_json({**_valid(), **patch}, "base.json")
    assert results_from_json(_valid(), "base.json").records[0].raw == [1.0, 2.0]


def test_load_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absent.json does not exist.*--edgehil-save"):
        load_results(tmp_path / "absent.json")
    (tmp_path / "torn.json").write_text('{"format": "pytest-edgehil results", "records": [')
    with pytest.raises(ConfigError, match="torn.json: not valid JSON"):
        load_results(tmp_path / "torn.json")


def test_git_commit_of_the_repository_and_ci_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit, _ = git_commit(REPO)
    if (REPO / ".git").exists():
        assert commit is not None and len(commit) == 40 and int(commit, 16) >= 0
    for name in ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT", "BUILD_VCS_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # tmp_path is no repository
    assert git_commit(tmp_path) == (None, None)
    monkeypatch.setenv("CI_COMMIT_SHA", "c0ffee" * 6 + "abcd")
    assert git_commit(tmp_path) == ("c0ffee" * 6 + "abcd", None)


KILLED_PROJECT = """
import os
import time
from pathlib import Path

import pytest


@pytest.mark.edgehil_metrics(unbudgeted=True)
@pytest.mark.parametrize("step", range(3))
def test_measured(edgehil_record, edgehil_pair, step):
    edgehil_record.check_median("step_ms", [1.0 + step, 1.5 + step, 2.0 + step])


def test_hangs_until_killed():
    Path(os.environ["EDGEHIL_HANG_MARKER"]).write_text("hanging")
    time.sleep(120)


def test_never_reached():
    pass
"""


def test_a_run_killed_with_sigkill_leaves_a_valid_file_with_every_finished_record(tmp_path: Path) -> None:
    (tmp_path / "test_killed.py").write_text(textwrap.dedent(KILLED_PROJECT))
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nedgehil_models_dir = {MODELS}\nedgehil_budgets = {BUDGETS}\n")
    results, marker = tmp_path / "out" / "results.json", tmp_path / "hanging"
    env = {**os.environ, "EDGEHIL_HANG_MARKER": str(marker), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--device=imx500",
                             f"--edgehil-save={results}", "test_killed.py"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, "the project never reached its hanging test"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    loaded = load_results(results)
    assert not loaded.run.complete and loaded.run.exit_status is None and loaded.run.backend == "SIMULATED"
    by_test = {(r.pair, r.raw[0]) for r in loaded.records if r.raw}
    imx500_pairs = {r.pair for r in loaded.records}
    assert imx500_pairs and all(p.endswith("-imx500") for p in imx500_pairs)
    # Every finished test (3 steps × every imx500 pair) is there, with the samples it recorded.
    assert len(loaded.records) == 3 * len(imx500_pairs)
    assert by_test == {(p, 1.0 + step) for p in imx500_pairs for step in range(3)}
    assert all(r.metric == "step_ms" and r.value == r.median == r.raw[1] for r in loaded.records)
    # The document and the killed run's journal, no temporary files.
    assert sorted(p.name for p in results.parent.iterdir() if not p.name.endswith(".journal")) == ["results.json"]
    assert len(list(results.parent.glob(".results.json.*.journal"))) == 1


def test_results_files_are_readable_by_the_lab_as_any_file_would_be(tmp_path):
    # mkstemp creates 0600: on a shared rack the nightly results were unreadable to everyone else.
    from pytest_edgehil.results.store import write_atomically

    old = os.umask(0o022)
    try:
        write_atomically(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
