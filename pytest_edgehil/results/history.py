"""The history store: past runs in one SQLite file, so a nightly report or compare reads each night once.

Why: a report of 30 nights x 5,000 records validated 30 results files of 7 MB on every run (~4 s of
pydantic) to draw trends. The store keeps every run it is given as rows (one per run x pair x metric, the
samples and context beside them: the gate's statistics need the samples, `history_schema.py`), so a
nightly report validates only the night that is new. Results files stay what pytest writes and what
everyone reads; the store is an index of them that survives their pruning.

* Written by the plugin when a run finishes (one transaction), and by `edgehil report`, `edgehil history
  import` and `edgehil compare` (its baseline; not the run under test, which is no history until pytest
  or a report adds it) for the results files they are pointed at and do not hold yet: a killed run's
  document (and journal) is imported as it is, marked incomplete, and replaced when a later import
  brings more of it.
* A run is keyed by its identity (`RunInfo.run_id`; for files written before runs carried one, a hash
  of the run header), so importing a file twice, or a copy of it, adds nothing. A file already seen is
  recognised by path, size and mtime without reading it, or else by the SHA-256 of its bytes.
* Concurrent writers (two pytest sessions, a report beside a run) are serialised by SQLite's own lock
  (WAL mode: readers never wait; a writer waits up to BUSY_TIMEOUT_S for another). WAL needs a local file
  system: on NFS or SMB, keep the store on one host's disk (docs/gate.md, "History store").
* Checked on read like every input: format and schema version (`meta`), the tables' columns, and every
  value of a run read (finite, known families and directions, no negative cost, whole samples). A file
  that is not a store, or a damaged one, is a HistoryError naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_edgehil.errors import HistoryError
from pytest_edgehil.results import history_schema as hs
from pytest_edgehil.results.document_text import finite_or_null
from pytest_edgehil.results.sqlite_lock import BUSY_TIMEOUT_S, until_unlocked
from pytest_edgehil.results.store import ResultsFile, RunInfo, load_results, utc_now

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

_FIX = ("restore it from a backup, or move it aside and rebuild it from the results files with "
        "`edgehil history import --history PATH FILE...`")


def run_key(run: RunInfo) -> str:
    """A run's identity: its run_id, or for a file written before runs carried one a hash of the header
    fields a reader does not fill in itself (python, platform and version default to the reader's)."""
    if run.run_id:
        return run.run_id
    header = {k: getattr(run, k) for k in ("started_at", "backend", "git_commit", "git_dirty", "seed", "lab",
                                           "devices", "argv")}
    return "sha256:" + hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:32]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _json(text: str | bytes) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


class History:
    """An open history store. `create` False: a missing file is an error instead of a new, empty store.

    Raises HistoryError (naming the file and the fix) from every method when the file cannot be opened,
    read or written, is not a store, comes from a newer pytest-edgehil, or holds an impossible value.
    """

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise HistoryError(f"history store {self.path} does not exist; give the path of an existing store, "
                               "or run `edgehil history import --history PATH FILE...` to make one")
        if self.path.is_dir():  # SQLite says only "unable to open database file", as for a missing folder
            raise HistoryError(f"history store {self.path}: is a directory; name the store's file, e.g. "
                               f"{self.path / 'edgehil-history.sqlite'}")
        with self._guard("cannot open it"):
            # isolation_level None: transactions are begun explicitly, IMMEDIATE (the write lock first).
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        with self._guard("cannot read it"):
            # Switching a new store to WAL needs it unlocked, and SQLite answers "locked" at once, without
            # waiting, while another process writes it: two runs creating one store at once (a CI failure).
            until_unlocked(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            self._ensure_schema()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ plumbing

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                fix = (f"another process held it for over {BUSY_TIMEOUT_S:g} s; retry, and look for a hung "
                       "process holding it")
            elif "readonly" in text or "unable to open" in text:
                fix = "check that the directory exists and that this user may write the file and the directory"
            else:
                fix = _FIX
            raise HistoryError(f"history store {self.path}: {doing} ({text}); {fix}") from None

    def _damaged(self, what: str) -> HistoryError:
        return HistoryError(f"history store {self.path}: {what}: the file was edited or damaged; {_FIX}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._guard("cannot write it"):
            # Polled by _until_unlocked, not by SQLite's backing-off busy wait: fair to a waiting run.
            self._db.execute("PRAGMA busy_timeout = 1")
            try:
                until_unlocked(lambda: self._db.execute("BEGIN IMMEDIATE"))
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _ensure_schema(self) -> None:
        tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            with self._transaction():  # IF NOT EXISTS: two processes creating one store at once both succeed
                for ddl in (*hs.TABLES.values(), *hs.INDEXES):
                    self._db.execute(ddl)
                self._db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                                     [("format", hs.HISTORY_FORMAT), ("schema_version", str(hs.HISTORY_SCHEMA))])
            return
        meta = dict(self._db.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
        if meta.get("format") != hs.HISTORY_FORMAT:
            raise HistoryError(f"history store {self.path}: an SQLite file, but not a pytest-edgehil history "
                               f"(no meta format {hs.HISTORY_FORMAT!r}); point --history at another path")
        version = str(meta.get("schema_version", ""))
        if not version.isdigit():
            raise self._damaged(f"its schema version {version!r} is not a number")
        if int(version) > hs.HISTORY_SCHEMA:
            raise HistoryError(f"history store {self.path}: schema version {version} was written by a newer "
                               f"pytest-edgehil (this one reads up to {hs.HISTORY_SCHEMA}); upgrade pytest-edgehil")
        for table, columns in hs.COLUMNS.items():
            found = tuple(row[1] for row in self._db.execute(f"PRAGMA table_info({table})"))
            if found != columns:
                raise self._damaged(f"its table {table!r} has columns {found}, not {columns}")

    # ------------------------------------------------------------------------------------------- writing

    def add_written(self, results: ResultsFile, path: Path) -> str:
        """`add` the run a writer just wrote to `path` (the plugin, when a run finishes): the file is
        remembered by path, size, mtime and content, so a later import of it reads nothing."""
        return self.add(results, source=path, origin=_origin(path) if results.run.finished_at else None)

    def add(self, results: ResultsFile, *, source: Path | str, origin: tuple[str, int, int, str] | None = None) -> str:
        """Add a run in one transaction; return its key. A run already held is replaced only by a later
        state of it (finished, complete, more records): re-adding is idempotent. `source`: the results file
        it came from (its name labels the run); `origin`: that file's (resolved path, size, mtime_ns,
        SHA-256), remembered so that importing it again reads nothing (only for a finished document: a
        journaled one grows without changing)."""
        source = Path(source)
        try:
            rows, samples = hs.record_rows(0, results.records)
        except ValueError as exc:
            raise HistoryError(f"history store {self.path}: cannot add {source.name}: {exc}; measure again") from None
        traces = zlib.compress(json.dumps(finite_or_null(results.traces), allow_nan=False).encode())
        key, run = run_key(results.run), results.run
        state = (int(run.finished_at is not None), int(run.complete), len(rows))
        with self._transaction():
            held = self._db.execute("SELECT id, finished, complete, records FROM runs WHERE run_key = ?",
                                    (key,)).fetchone()
            if held is None or tuple(held[1:]) < state:
                if held is not None:
                    for table in ("records", "samples", "traces", "sources"):
                        self._db.execute(f"DELETE FROM {table} WHERE run = ?", (held[0],))
                    self._db.execute("DELETE FROM runs WHERE id = ?", (held[0],))
                cursor = self._db.execute(
                    "INSERT INTO runs (run_key, source, started_at, complete, finished, records, run, imported_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, source.name, run.started_at, *state, hs.run_json(run), utc_now()))
                run_row = cursor.lastrowid
                marks = ", ".join("?" * (len(hs.RECORD_COLUMNS) + 2))
                self._db.executemany(f"INSERT INTO records VALUES ({marks})", [(run_row, *r[1:]) for r in rows])
                self._db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)", [(run_row, *s[1:]) for s in samples])
                self._db.execute("INSERT INTO traces VALUES (?, ?)", (run_row, traces))
            else:
                run_row = held[0]
            if origin is not None:
                self._db.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?)", (*origin, run_row))
        return key

    def import_file(self, path: Path | str) -> tuple[str, ResultsFile | None]:
        """(key, content) of a results file's run, importing it unless held: content is the file as read and
        validated when it had to be read, None when the store knew the file already (by path, size and
        mtime, or by its bytes). Raises ConfigError as `load_results` does for a file that is not valid."""
        path = Path(path)
        key, raw, origin = self._lookup(path)
        if key is not None:
            return key, None
        results = load_results(path, raw)  # says what is wrong with a file that cannot be read
        return self.add(results, source=path, origin=origin if results.run.finished_at else None), results

    def _lookup(self, path: Path) -> tuple[str | None, bytes | None, tuple[str, int, int, str] | None]:
        """(key of the run when the store knows this file, else None; the file's bytes when they were read;
        its origin for `add`). A file known by its bytes under another path is remembered at this one."""
        try:
            stat = path.stat()
            resolved = str(path.resolve())
        except OSError:
            return None, None, None
        with self._guard("cannot read it"):
            row = self._db.execute("SELECT size, mtime_ns, run_key FROM sources JOIN runs ON runs.id = sources.run "
                                   "WHERE path = ?", (resolved,)).fetchone()
        if row is not None and (row[0], row[1]) == (stat.st_size, stat.st_mtime_ns):
            return row[2], None, None
        try:
            raw = path.read_bytes()
        except OSError:
            return None, None, None
        digest = hashlib.sha256(raw).hexdigest()
        origin = (resolved, stat.st_size, stat.st_mtime_ns, digest) if _unchanged(path, stat) else None
        with self._guard("cannot read it"):
            row = self._db.execute("SELECT sources.run, run_key FROM sources JOIN runs ON runs.id = sources.run "
                                   "WHERE digest = ? LIMIT 1", (digest,)).fetchone()
        if row is None:
            return None, raw, origin
        if origin is not None:
            with self._transaction():
                self._db.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?)", (*origin, row[0]))
        return row[1], None, None

    def load_file(self, path: Path | str, *, samples: bool = True, traces: bool = True, add: bool = True) -> ResultsFile:
        """A results file's run, from the store when it holds the file, else read and validated (and, with
        `add`, imported): what `load_results(path)` returns, without validating a file the store has seen."""
        path = Path(path)
        if add:
            key, content = self.import_file(path)
        else:
            found, raw, _ = self._lookup(path)
            key, content = (found, None) if found is not None else ("", load_results(path, raw))
        return content if content is not None else self.load(key, samples=samples, traces=traces, path=path)

    # ------------------------------------------------------------------------------------------- reading

    def latest(self, count: int) -> list[str]:
        """Keys of the `count` runs that started last, oldest first."""
        with self._guard("cannot read it"):
            rows = self._db.execute("SELECT run_key FROM runs ORDER BY started_at DESC, id DESC LIMIT ?",
                                    (count,)).fetchall()
        return [key for (key,) in reversed(rows)]

    def run_info(self, key: str) -> RunInfo:
        """A held run's header alone (no records read)."""
        with self._guard("cannot read it"):
            head = self._db.execute("SELECT source, run FROM runs WHERE run_key = ?", (key,)).fetchone()
        if head is None:
            raise HistoryError(f"history store {self.path}: holds no run {key!r}; import its results file")
        try:
            return hs.run_from_json(head[1])
        except ValueError as exc:
            raise self._damaged(f"run {head[0]}: {exc}") from None

    def load(self, key: str, *, samples: bool = True, traces: bool = True, path: Path | None = None) -> ResultsFile:
        """A held run. `samples` False leaves each record's raw samples and context None (the trends need
        neither), `traces` False its traces empty. `path`: the results file to name in messages (default:
        the name of the one it was imported from)."""
        with self._guard("cannot read it"):
            head = self._db.execute("SELECT id, source, run FROM runs WHERE run_key = ?", (key,)).fetchone()
            if head is None:
                raise HistoryError(f"history store {self.path}: holds no run {key!r}; import its results file")
            run_row, source = head[0], head[1]
            try:
                run = hs.run_from_json(head[2])
            except ValueError as exc:
                raise self._damaged(f"run {source}: {exc}") from None
            self._check_records(run_row, source)
            rows = self._db.execute(f"SELECT {', '.join(hs.RECORD_COLUMNS)} FROM records WHERE run = ? ORDER BY seq",
                                    (run_row,)).fetchall()
            family = hs.RECORD_COLUMNS.index("family")
            extra = (self._samples(run_row, source, [row[family] for row in rows]) if samples
                     else [(None, None)] * len(rows))
            trace_list = self._traces(run_row, source) if traces else []
        records = [hs.record_from_row(row, raw, context) for row, (raw, context) in zip(rows, extra)]
        return ResultsFile(run=run, records=records, traces=trace_list, path=path or Path(source))

    def _check_records(self, run_row: int, source: str) -> None:
        bad = self._db.execute(f"SELECT seq, pair, metric FROM records WHERE run = ? AND NOT "
                               f"({' AND '.join(hs.RECORD_CHECKS.values())}) ORDER BY seq LIMIT 1",
                               (run_row,)).fetchone()
        if bad is None:
            return
        failed = self._db.execute(f"SELECT {', '.join(hs.RECORD_CHECKS.values())} FROM records WHERE run = ? "
                                  "AND seq = ?", (run_row, bad[0])).fetchone()
        names = [name for name, ok in zip(hs.RECORD_CHECKS, failed) if ok == 0]  # NULL: not a failure (SQL)
        raise self._damaged(f"run {source} record #{bad[0] + 1} ({bad[1]!s} {bad[2]!s}) has an impossible "
                            f"{', '.join(names)}")

    def _samples(self, run_row: int, source: str, families: list[str]) -> list[tuple[list[float] | None, Any]]:
        """(raw, context) of each record of a run; `families`: the records' families, in order."""
        rows = self._db.execute("SELECT seq, raw, context FROM samples WHERE run = ? ORDER BY seq",
                                (run_row,)).fetchall()
        if [seq for seq, *_ in rows] != list(range(len(families))):
            raise self._damaged(f"run {source} has {len(rows)} sample rows for {len(families)} records")
        if any(blob is not None and (not isinstance(blob, bytes) or len(blob) % 8) for _, blob, _ in rows):
            raise self._damaged(f"run {source} holds raw samples that are not whole float64 values")
        # One array for the run's samples: one decoding and one check, then a slice per record.
        flat = np.frombuffer(b"".join(blob for _, blob, _ in rows if blob is not None), dtype="<f8")
        costs = np.frombuffer(b"".join(blob for (_, blob, _), family in zip(rows, families)
                                       if blob is not None and family), dtype="<f8")
        if not np.all(np.isfinite(flat)) or (costs.size and costs.min() < 0):
            raise self._damaged(f"run {source} has a negative or non-finite raw sample")
        values, at = flat.tolist(), 0
        parsed: dict[str, dict[str, Any]] = {}  # a pair's records share one context: parse each text once
        out: list[tuple[list[float] | None, Any]] = []
        for seq, blob, text in rows:
            raw = None
            if blob is not None:
                raw, at = values[at:at + len(blob) // 8], at + len(blob) // 8
            context = None
            if text is not None:
                if text not in parsed:
                    try:
                        parsed[text] = _json(text)
                    except (ValueError, TypeError) as exc:
                        raise self._damaged(f"run {source} record #{seq + 1}'s context is not JSON ({exc})") from None
                    if not isinstance(parsed[text], dict):
                        raise self._damaged(f"run {source} record #{seq + 1}'s context is not an object")
                context = dict(parsed[text])  # each record its own dict, as when read from a file
            out.append((raw, context))
        return out

    def _traces(self, run_row: int, source: str) -> list[dict[str, Any]]:
        row = self._db.execute("SELECT data FROM traces WHERE run = ?", (run_row,)).fetchone()
        try:
            traces = _json(zlib.decompress(row[0])) if row is not None else []
        except (zlib.error, ValueError, TypeError) as exc:
            raise self._damaged(f"run {source}'s traces cannot be read ({exc})") from None
        if not isinstance(traces, list) or not all(isinstance(t, dict) and isinstance(t.get("pair"), str)
                                                   for t in traces):
            raise self._damaged(f"run {source}'s traces are not a list of traces")
        return traces

    def states(self, key: str | None = None) -> dict[str, tuple[int, int, int]]:
        """Held run key -> (finished, complete, records), what `add` compares to keep a run's later state;
        of every run, or of run `key` alone (empty when not held)."""
        where, args = ("WHERE run_key = ?", (key,)) if key is not None else ("", ())
        with self._guard("cannot read it"):
            return {k: (finished, complete, records) for k, finished, complete, records in
                    self._db.execute(f"SELECT run_key, finished, complete, records FROM runs {where}", args)}

    def keys(self) -> list[str]:
        """Every held run's key, oldest first."""
        return self.latest(-1)


def _unchanged(path: Path, stat: os.stat_result) -> bool:
    """Whether `path` is still as `stat` saw it (then the bytes read in between are the file's)."""
    try:
        now = path.stat()
    except OSError:
        return False
    return (now.st_size, now.st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def _origin(path: Path) -> tuple[str, int, int, str] | None:
    """(resolved path, size, mtime_ns, SHA-256) of a finished results file; None when it cannot be read
    (the run is still added: the file is then recognised by its content, once it can be read)."""
    try:
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, digest) if _unchanged(path, stat) else None
    except OSError:
        return None

