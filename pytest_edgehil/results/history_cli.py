"""Where the history store is, and `edgehil history import`: the pieces pytest and the commands share.

The store is found the same way everywhere (`choose_history`): an option (`--edgehil-history` for pytest,
`--history` for `edgehil report`/`compare`/`history`), else the environment variable EDGEHIL_HISTORY,
else pytest's ini value `edgehil_history` (relative to the rootdir), else `edgehil-history.sqlite` beside
`edgehil-results/` under the rootdir (the working directory, for the commands). The word `off` turns it
off. pytest makes the store when it first adds a run; a command reads one it finds and makes one only
when told where (an option or the variable). No pytest.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_edgehil.errors import ConfigError

if TYPE_CHECKING:
    from pytest_edgehil.results.history import History

HISTORY_ENV = "EDGEHIL_HISTORY"
DEFAULT_HISTORY = "edgehil-history.sqlite"  # beside edgehil-results/, under the rootdir
OFF = "off"


def choose_history(given: str | None, *, ini: str = "", root: Path, create: bool) -> Path | None:
    """Where the store is: `given` (an option), else $EDGEHIL_HISTORY, else `ini` (relative to `root`), else
    `root`/edgehil-history.sqlite: always when `create` (pytest), only when that file exists otherwise (a
    command reads a store it finds, and never makes one unasked). None: "off", or none found."""
    for value, base in ((given, Path.cwd()), (os.environ.get(HISTORY_ENV), Path.cwd()), (ini, root)):
        if value and value.strip():
            return None if value.strip().lower() == OFF else base / value.strip()
    default = root / DEFAULT_HISTORY
    return default if create or default.is_file() else None


@contextmanager
def open_for_command(option: str | None) -> Iterator[History | None]:
    """The store an `edgehil` command reads (`choose_history` from the working directory), open; None
    without one."""
    from pytest_edgehil.results.history import History

    path = choose_history(option, root=Path.cwd(), create=False)
    if path is None:
        yield None
        return
    with History(path) as history:
        yield history


def _run_import(args: argparse.Namespace) -> int:
    from pytest_edgehil.results.history import History
    from pytest_edgehil.results.report_runs import night_files

    path = choose_history(args.history, root=Path.cwd(), create=True)
    if path is None:
        raise ConfigError("edgehil history import: the history store is off ($EDGEHIL_HISTORY or --history is "
                          "'off'); name one with --history PATH")
    read = known = 0
    with History(path) as history:
        held = history.states()
        for given in map(Path, args.results):
            for file in night_files(given):
                key, _ = history.import_file(file)
                # A file read again (a killed run's: unfinished files are not remembered) whose run the
                # store held as it is now added nothing: it counts as held, not imported.
                state = history.states(key)
                imported = state.get(key) != held.get(key)
                held.update(state)
                read, known = read + imported, known + (not imported)
        total = len(history.latest(-1))
    print(f"history {path}: {read} results file(s) read and imported, {known} already held; {total} run(s) in all")
    return 0


def add_history_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "history", help="the history store of past runs (SQLite) that report and compare read",
        description="Manage the history store: an SQLite file holding every run pytest finished and every "
                    "results file imported, so `edgehil report` and `edgehil compare` validate each results "
                    "file once. See docs/gate.md, 'History store'.")
    actions = parser.add_subparsers(dest="history_action", metavar="ACTION", required=True)
    importer = actions.add_parser(
        "import", help="import results files (or night directories) the store does not hold yet",
        description="Import results files into the history store: each run once (keyed by its run id; a file "
                    "seen before is not read again), a killed run's file as incomplete (replaced when more of it "
                    "is imported).")
    importer.add_argument("results", nargs="+", metavar="RESULTS",
                          help="results JSON files written by --edgehil-save, or directories of them")
    importer.add_argument("--history", metavar="PATH", default=None,
                          help=f"the store (default ${HISTORY_ENV}, else ./{DEFAULT_HISTORY}; made if missing)")
    importer.set_defaults(handler=_run_import)
