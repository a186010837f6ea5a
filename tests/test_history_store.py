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
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_edgehil.cli import EXIT_ERROR, main
from pytest_edgehil.errors import HistoryError
from pytest_edgehil.results.history import History
from pytest_edgehil.results.history_cli import DEFAULT_HISTORY, choose_history
from pytest_edgehil.results.report import build_report_html, read_night
from pytest_edgehil.results.report_runs import read_nights_from_history
from pytest_edgehil.results.store import ResultsFile, ResultsWriter, load_results

from .conftest import REPO
from .report_support import make_night, save


def _same_records(a: ResultsFile, b: ResultsFile) -> None:
    """Equal record for record; a NaN value (written as null) equals a NaN value."""
    assert len(a.records) == len(b.records)
    for x, y in zip(a.records, b.records):
        if math.isnan(x.value):
            assert math.isnan(y.value) and replace(x, value=0.0) == replace(y, value=0.0)
        else:
            assert x == y


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


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
    _same_records(stored, from_file)
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
    assert _count(db, "runs") == 1 and _count(db, "records") == len(load_results(night_file).records)


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
    _same_records(finished, load_results(path))


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


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is a results file, honest" * 100)


def _changed_table(path: Path) -> None:
    History(path).close()
    with sqlite3.connect(path) as con:
        con.execute("ALTER TABLE records ADD COLUMN colour TEXT")


@pytest.mark.parametrize(("make", "message"), [
    (_foreign, "not a pytest-edgehil history"),
    (_newer, "schema version 99 was written by a newer pytest-edgehil"),
    (_garbage, "file is not a database"),
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
    _garbage(bad)
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


def test_where_the_store_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEHIL_HISTORY")
    assert choose_history(None, root=tmp_path, create=True) == tmp_path / DEFAULT_HISTORY
    assert choose_history(None, root=tmp_path, create=False) is None  # a command never makes one unasked
    assert choose_history(None, ini="lab/h.sqlite", root=tmp_path / "root", create=False) == tmp_path / "root/lab/h.sqlite"
    monkeypatch.setenv("EDGEHIL_HISTORY", "shared.sqlite")
    assert choose_history(None, ini="lab/h.sqlite", root=tmp_path, create=True) == tmp_path / "shared.sqlite"
    assert choose_history("mine.sqlite", root=tmp_path, create=True) == tmp_path / "mine.sqlite"
    assert choose_history("off", root=tmp_path, create=True) is None
    monkeypatch.setenv("EDGEHIL_HISTORY", "OFF")
    assert choose_history(None, ini="lab/h.sqlite", root=tmp_path, create=True) is None


STEPS = """
import pytest

@pytest.mark.edgehil_metrics(unbudgeted=True)
def test_steps(edgehil_record):
    edgehil_record.check_median("step_ms", [1.0, 2.0, 3.0, 2.5])
"""


def test_a_finished_pytest_run_is_in_the_store_as_its_results_file_holds_it(edgehil_project,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    edgehil_project.makepyfile(test_steps=STEPS)
    out, db = edgehil_project.path / "r.json", edgehil_project.path / "lab" / "h.sqlite"
    db.parent.mkdir()
    edgehil_project.runpytest("--device=imx500", "--model=qsegment", f"--edgehil-save={out}",
                              f"--edgehil-history={db}").assert_outcomes(passed=1)
    saved = load_results(out)
    with History(db, create=False) as history:
        assert history.latest(10) == [saved.run.run_id]
        _same_records(history.load(saved.run.run_id), saved)
        assert history.import_file(out)[1] is None  # the plugin told the store which file holds the run
    # By default the store lives beside edgehil-results/ under the rootdir.
    monkeypatch.delenv("EDGEHIL_HISTORY")
    edgehil_project.runpytest("--device=imx500", "--model=qsegment").assert_outcomes(passed=1)
    default_files = [p for p in (edgehil_project.path / "edgehil-results").glob("2*.json")]
    with History(edgehil_project.path / DEFAULT_HISTORY, create=False) as history:
        assert history.latest(10) == [load_results(default_files[0]).run.run_id]


def test_a_store_that_is_not_one_fails_the_run_at_start_up(edgehil_project) -> None:
    edgehil_project.makepyfile(test_steps=STEPS)
    bad = edgehil_project.path / "notes.sqlite"
    _garbage(bad)
    result = edgehil_project.runpytest("--device=imx500", "--model=qsegment", f"--edgehil-history={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*history store {bad}*file is not a database*"])


def test_history_import_counts_what_it_read_and_what_it_held(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    night = tmp_path / "night"
    night.mkdir()
    for i in range(2):
        save(night / f"job-{i}.json", make_night(i))
    db = str(tmp_path / "h.sqlite")
    assert main(["history", "import", "--history", db, str(night)]) == 0
    assert "2 results file(s) read and imported, 0 already held; 2 run(s) in all" in capsys.readouterr().out
    assert main(["history", "import", "--history", db, str(night)]) == 0
    assert "0 results file(s) read and imported, 2 already held; 2 run(s) in all" in capsys.readouterr().out


def test_history_import_of_a_killed_run_again_counts_it_as_held(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # A killed run's file (its journal) is read on every import, since it is not finished; a nightly import
    # of the results folder said "1 read and imported" each night though the store held that run already.
    killed = make_night(0)
    killed.records = killed.records[:3]
    path = save(tmp_path / "killed.json", killed, finish=False)
    db = str(tmp_path / "h.sqlite")
    assert main(["history", "import", "--history", db, str(path)]) == 0
    assert "1 results file(s) read and imported, 0 already held; 1 run(s) in all" in capsys.readouterr().out
    assert main(["history", "import", "--history", db, str(path)]) == 0
    assert "0 results file(s) read and imported, 1 already held; 1 run(s) in all" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--last", "3"], "--last: the newest runs come from a history store"),
    ([], "no results files given"),
    (["--history", "{db}"], "holds no runs"),
])
def test_a_report_with_nothing_to_show_says_what_to_give(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         args: list[str], message: str) -> None:
    args = [a.format(db=tmp_path / "empty.sqlite") for a in args]
    assert main(["report", *args, "--html", str(tmp_path / "r.html")]) == EXIT_ERROR
    assert message in capsys.readouterr().err


def test_a_store_that_cannot_take_the_run_fails_it_only_when_named(edgehil_project,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A store that cannot be opened at the end (its folder is a file). Named by the user: the run fails,
    # saying where the run is safe. The default one beside the checkout: said in yellow, verdict kept.
    edgehil_project.makepyfile(test_steps=STEPS)
    (edgehil_project.path / "not-a-dir").write_text("a file\n")
    named = edgehil_project.path / "not-a-dir" / "h.sqlite"
    result = edgehil_project.runpytest("--device=imx500", "--model=qsegment", f"--edgehil-history={named}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*edgehil history:*the run is safe in*edgehil history import*"])
    monkeypatch.delenv("EDGEHIL_HISTORY")
    (edgehil_project.path / DEFAULT_HISTORY).symlink_to(named)  # the default path, unopenable the same way
    result = edgehil_project.runpytest("--device=imx500", "--model=qsegment")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*edgehil history:*the run is safe in*"])


def test_a_store_refused_at_start_up_leaves_the_results_file_as_it_was(edgehil_project) -> None:
    # A complete earlier run at the --edgehil-save path: a start-up refusal must not replace it.
    edgehil_project.makepyfile(test_steps=STEPS)
    out = edgehil_project.path / "D.json"
    edgehil_project.runpytest("--device=imx500", "--model=qsegment", f"--edgehil-save={out}").assert_outcomes(passed=1)
    before = out.read_bytes()
    bad = edgehil_project.path / "notes.sqlite"
    _garbage(bad)
    result = edgehil_project.runpytest("--device=imx500", "--model=qsegment", f"--edgehil-save={out}",
                                       f"--edgehil-history={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert out.read_bytes() == before
    assert not list(edgehil_project.path.glob(".D.json.*"))  # no journal left beside it


def test_a_store_created_while_another_process_writes_it_waits_its_turn(tmp_path: Path) -> None:
    """Two runs creating one store at once: switching the new file to WAL needs it unlocked, and SQLite
    answers "database is locked" at once, with no busy wait, while the other writes it (a CI failure:
    HistoryError 'cannot read it'). The store now waits for the other's transaction, then opens."""
    db = tmp_path / "new.sqlite"
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the other run, writing the brand-new file (rollback journal)
    committed = threading.Event()

    def commit_later() -> None:
        time.sleep(0.3)
        other.execute("COMMIT")
        committed.set()

    thread = threading.Thread(target=commit_later)
    thread.start()
    try:
        with History(db) as history:
            assert committed.is_set()  # it waited for the other's transaction instead of failing
            assert history.latest(10) == []
    finally:
        thread.join()
        other.close()


def test_a_store_path_that_is_a_directory_says_so_and_names_a_file(tmp_path: Path) -> None:
    """`--history /srv/lab/` (the lab's folder, not the store's file) read "cannot open it (unable to open database
    file); check that the directory exists": it does exist, which sent the user the wrong way."""
    with pytest.raises(HistoryError, match="is a directory.*edgehil-history.sqlite"):
        History(tmp_path)
