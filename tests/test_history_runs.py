"""The history store as runs and commands use it: where it is, a pytest run adding itself, `edgehil
history import` counting what it read, a store that cannot take a run, and two processes creating it."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pytest_edgehil.cli import EXIT_ERROR, main
from pytest_edgehil.errors import HistoryError
from pytest_edgehil.results.history import History
from pytest_edgehil.results.history_cli import DEFAULT_HISTORY, choose_history
from pytest_edgehil.results.store import load_results

from .history_support import garbage, same_records
from .report_support import make_night, save


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
        same_records(history.load(saved.run.run_id), saved)
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
    garbage(bad)
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
    garbage(bad)
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
