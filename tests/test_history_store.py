"""The history store (`results/history.py`): runs in, the same runs out, each once; killed runs, damaged or
foreign files, concurrent writers; and the report and compare read through it give what the files give."""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_edgehil.cli import EXIT_ERROR, main
from pytest_edgehil.errors import HistoryError
from pytest_edgehil.results.history import History
from pytest_edgehil.results.report import build_report_html, read_night
from pytest_edgehil.results.report_runs import read_nights_from_history
from pytest_edgehil.results.store import ResultsWriter, load_results

from .conftest import REPO
from .history_support import count, garbage, same_records
from .report_support import make_night, save


@pytest.fixture
def night_file(tmp_path: Path) -> Path:
    night = make_night(0)
    # A record whose value was not finite (fps of an empty run): null in the file, NULL in the store.
    night.records.append(replace(night.records[0], metric="fps", unit="fps", value=math.nan, raw=None,
                                 median=None, ci_low=None, ci_high=None, family="throughput", direction="higher"))
    return save(tmp_path / "night-0.json", night)


def test_a_run_comes_back_as_its_results_file_reads(tmp_path: Path, night_file: Path) -> None:
    with History(tmp_path / "h.sqlite") as history:
        key, content = history.import_file(night_file)
        stored = history.load(key)
    from_file = load_results(night_file)
    assert content is not None and key == from_file.run.run_id != ""
    assert stored.run == from_file.run and stored.traces == from_file.traces
    same_records(stored, from_file)
    assert math.isnan(stored.records[-1].value) and stored.records[0].raw and stored.records[0].context


def test_importing_again_or_a_copy_adds_nothing_and_reads_nothing(tmp_path: Path, night_file: Path) -> None:
    db = tmp_path / "h.sqlite"
    with History(db) as history:
        key, _ = history.import_file(night_file)
        again_key, again = history.import_file(night_file)
        copy = tmp_path / "elsewhere" / "copy.json"
        copy.parent.mkdir()
        shutil.copyfile(night_file, copy)  # a CI artifact downloaded again: new path and mtime, same bytes
        copy_key, from_copy = history.import_file(copy)
        # The same run written out again with other bytes: read, but still the one run.
        reformatted = tmp_path / "reformatted.json"
        reformatted.write_text(json.dumps(json.loads(night_file.read_text())), encoding="utf-8")
        re_key, reread = history.import_file(reformatted)
        assert history.latest(10) == [key]
    assert again is None and from_copy is None and reread is not None
    assert key == again_key == copy_key == re_key
    assert count(db, "runs") == 1 and count(db, "records") == len(load_results(night_file).records)


def test_a_killed_run_is_imported_incomplete_and_replaced_when_more_of_it_arrives(tmp_path: Path) -> None:
    night = make_night(1)
    path = tmp_path / "killed.json"
    writer = ResultsWriter(path, night.run)
    writer.add(night.records[:3])  # the journal holds three records; the process is then "killed"
    with History(tmp_path / "h.sqlite") as history:
        key, _ = history.import_file(path)
        first = history.load(key)
        assert not first.run.complete and len(first.records) == 3
        assert history.import_file(path)[1] is not None  # a journaled file is read again: it may grow
        writer.add(night.records[3:])
        writer.finish(0)
        assert history.import_file(path)[0] == key
        finished = history.load(key)
        assert history.latest(10) == [key]
    assert finished.run.complete and len(finished.records) == len(night.records)
    same_records(finished, load_results(path))


def test_an_incomplete_copy_never_replaces_the_finished_run(tmp_path: Path) -> None:
    night = make_night(2)
    done = save(tmp_path / "done.json", night)
    with History(tmp_path / "h.sqlite") as history:
        key, _ = history.import_file(done)
        partial = replace(load_results(done), run=replace(load_results(done).run, complete=False, finished_at=None))
        partial.records[:] = partial.records[:2]
        history.add(partial, source=tmp_path / "partial.json")
        assert history.load(key).run.complete and len(history.load(key).records) == len(night.records)


def _store_with_a_run(tmp_path: Path) -> tuple[Path, str]:
    night = make_night(3)
    # As the recorder writes them (results schema 2): each record carries its family and direction.
    night.records[:] = [replace(r, family=r.spec.family.value, direction=r.spec.direction and r.spec.direction.value)
                        for r in night.records]
    db = tmp_path / "h.sqlite"
    with History(db) as history:
        key, _ = history.import_file(save(tmp_path / "n.json", night))
    return db, key


@pytest.mark.parametrize(("edit", "message"), [
    ("UPDATE records SET value = -1.0 WHERE seq = 1", r"record #2 \(qsegment-imx500 \S+\) has an impossible physical"),
    ("UPDATE records SET value = 9e999 WHERE seq = 0", r"record #1 .* impossible value"),
    ("UPDATE records SET family = 'speed' WHERE seq = 0", r"record #1 .* impossible family"),
    ("UPDATE records SET metric = '' WHERE seq = 2", r"record #3 .* impossible metric"),
    ("UPDATE samples SET raw = substr(raw, 1, 12) WHERE seq = 0", "not whole float64 values"),
    ("UPDATE samples SET context = '[1, 2]' WHERE seq = 0", "context is not an object"),
    ("DELETE FROM samples WHERE seq = 4", "sample rows for"),
    ("UPDATE runs SET run = '{}'", "run header"),
])
def test_an_impossible_value_in_the_store_is_refused_naming_the_record(tmp_path: Path, edit: str, message: str) -> None:
    db, key = _store_with_a_run(tmp_path)
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA ignore_check_constraints = ON")  # as a hand edit or another program could
        con.execute(edit)
    with History(db) as history, pytest.raises(HistoryError, match=message) as caught:
        history.load(key)
    assert str(db) in str(caught.value) and "edited or damaged" in str(caught.value)


def test_the_store_itself_refuses_an_impossible_value_on_the_way_in(tmp_path: Path) -> None:
    db, _ = _store_with_a_run(tmp_path)
    with sqlite3.connect(db) as con, pytest.raises(sqlite3.IntegrityError):
        con.execute("UPDATE records SET value = -1.0 WHERE seq = 1")


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE songs (title TEXT)")


def _newer(path: Path) -> None:
    History(path).close()
    with sqlite3.connect(path) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")




def _changed_table(path: Path) -> None:
    History(path).close()
    with sqlite3.connect(path) as con:
        con.execute("ALTER TABLE records ADD COLUMN colour TEXT")


@pytest.mark.parametrize(("make", "message"), [
    (_foreign, "not a pytest-edgehil history"),
    (_newer, "schema version 99 was written by a newer pytest-edgehil"),
    (garbage, "file is not a database"),
    (_changed_table, "table 'records' has columns"),
])
def test_a_foreign_or_damaged_file_is_a_typed_error_naming_it(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "store.sqlite"
    make(path)
    with pytest.raises(HistoryError, match=message) as caught:
        History(path)
    assert str(path) in str(caught.value)


def test_a_command_pointed_at_a_damaged_store_says_so_in_one_line(tmp_path: Path, night_file: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.sqlite"
    garbage(bad)
    assert main(["compare", "--history", str(bad), str(night_file), str(night_file)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"edgehil compare: error: history store {bad}") and len(err.strip().splitlines()) == 1


_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from pytest_edgehil.results.history import History
    from pytest_edgehil.results.records import MetricRecord
    from pytest_edgehil.results.store import ResultRecord, ResultsFile, RunInfo

    db, tag, runs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for i in range(runs):
        records = [ResultRecord.from_metric_record(MetricRecord(
            pair=f"p{j}", model="m", device="d", kind="k", metric="step_ms", value=1.0 + j, unit="ms",
            backend="SIMULATED", status="info", raw=[1.0 + j, 1.1 + j], family="latency", direction="lower"))
            for j in range(200)]
        run = RunInfo(started_at=f"2026-01-01T00:00:{i:02d}+00:00", backend="SIMULATED", run_id=f"{tag}-{i}",
                      complete=True, finished_at="2026-01-01T01:00:00+00:00")
        with History(db) as history:  # a connection per run, as one pytest session per run would
            history.add(ResultsFile(run=run, records=records), source=f"{tag}-{i}.json")
""")


def test_two_processes_writing_at_once_both_land(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(db), tag, "15"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for tag in ("a", "b")]
    outcomes = [w.communicate(timeout=120) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], outcomes
    with History(db) as history:
        keys = history.latest(100)
        assert sorted(keys) == sorted(f"{tag}-{i}" for tag in "ab" for i in range(15))
        assert all(len(history.load(k, traces=False).records) == 200 for k in keys)


def test_the_report_from_the_store_is_the_report_from_the_files(tmp_path: Path) -> None:
    nights = [make_night(i, drift=1.0 + 0.02 * i) for i in range(4)]
    paths = [save(tmp_path / f"nightly-{i}.json", n) for i, n in enumerate(nights)]
    matrix = tmp_path / "night-4"  # a CI matrix's night: one file per device job, one run
    matrix.mkdir()
    for i, pair in enumerate(("qsegment-imx500", "qsegment-imx500-b")):
        save(matrix / f"job-{i}.json", make_night(4, pairs=(pair,), seed=i))
    given = [*paths, matrix]
    from_files = build_report_html([read_night(p) for p in given])
    with History(tmp_path / "h.sqlite") as history:
        first = build_report_html(read_nights_from_history(history, given))  # imports every file
        assert all(history.import_file(f)[1] is None for p in given for f in ([p] if p.is_file() else p.iterdir()))
        again = build_report_html(read_nights_from_history(history, given))  # reads the store alone
    assert first == from_files and again == from_files


def test_the_newest_runs_of_the_store_alone_make_the_same_trends(tmp_path: Path) -> None:
    paths = [save(tmp_path / f"nightly-{i}.json", make_night(i)) for i in range(5)]
    history_path = tmp_path / "h.sqlite"
    out = tmp_path / "r.html"
    assert main(["history", "import", "--history", str(history_path), *map(str, paths)]) == 0
    assert main(["report", "--history", str(history_path), "--last", "3", "--html", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == build_report_html([read_night(p) for p in paths[-3:]])


def test_compare_through_the_store_is_compare_of_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = save(tmp_path / "base.json", make_night(0))
    new = save(tmp_path / "new.json", make_night(1, drift=1.08))
    history_path = str(tmp_path / "h.sqlite")
    verdicts = []
    for history in ("off", history_path, history_path):  # the files; through the store (importing); the store
        status = main(["compare", "--history", history, str(base), str(new), "--json"])
        verdicts.append((status, capsys.readouterr().out))
    assert verdicts[0] == verdicts[1] == verdicts[2]
    assert json.loads(verdicts[0][1])["comparisons"]
    with History(history_path) as history:  # the baseline is history; the candidate is not, until added
        assert history.latest(10) == [load_results(base).run.run_id]
        history.import_file(new)
    assert main(["compare", "--history", history_path, str(base), str(new), "--json"]) == verdicts[0][0]
    assert capsys.readouterr().out == verdicts[0][1]  # both read from the store
