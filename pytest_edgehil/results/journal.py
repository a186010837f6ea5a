"""The results journal: records appended as JSON lines while a run measures, O(1) per record.

Why a journal beside the JSON document: the document must be valid JSON at every instant, and the old
way to keep it so (rewrite it whole per record) cost O(n) per record: 665 ms per record at 5,000, a
1,000-record run spent a minute writing. A line-oriented log is appended in O(1) and stays readable
after any crash, because a reader takes only lines that end in a newline: a write torn by SIGKILL or
power loss leaves at most one unterminated line, which is ignored (it was never acknowledged). SQLite
would give the same guarantees, but the journal is read by nothing else than `load_results`, the
document stays the format everyone reads (`edgehil compare`, the report, jq), and one file per run
keeps concurrent runs apart without any locking: each run appends only to its own journal.

Layout (one JSON object per line)::

    {"format": "pytest-edgehil results journal", "schema_version": 2, "run": {...}}
    {"records": [{...}, ...], "traces": [{...}, ...]}      one line per batch the gate received
    ...

While a run measures, its results document holds the run header and a `"journal"` key naming this
file (relative to the document's folder); `load_results` then reads the records from here. When the
run finishes, the document is rewritten whole, once, without the key, and the journal is removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pytest_edgehil.errors import ConfigError

JOURNAL_FORMAT = "pytest-edgehil results journal"
JOURNAL_KEY = "journal"  # the document's pointer to the journal of a run still measuring (or killed)


def journal_path_for(document: Path, run_id: str) -> Path:
    """Where a document's journal lives: beside it, hidden, unique to the run (two runs saving to one
    path at once each append to their own journal)."""
    return document.parent / f".{document.name}.{run_id}.journal"


class Journal:
    """An open journal: `append` writes one line and fsyncs it before returning.

    Raises ConfigError (naming the file and the OS error) when the line cannot be written; the file is
    then cut back to its last whole line, so later appends still leave a readable journal.
    """

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        try:
            # O_APPEND: each line lands at the end in one write, whatever else holds the file open.
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o666)
        except OSError as exc:
            raise ConfigError(f"results journal {path}: cannot create it: {exc.strerror}; check the "
                              "directory exists and is writable") from exc
        self._size = 0
        self.append({"format": JOURNAL_FORMAT, **header})

    def append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)  # acknowledged records survive a power loss, not only a killed process
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)  # no torn line in the middle of later ones
            except OSError:
                pass  # the reader ignores an unterminated last line anyway
            raise ConfigError(f"results journal {self.path}: cannot write the results file: {exc.strerror}; "
                              "check the disk has space and the directory is writable") from exc
        self._size += len(line)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_journal(path: Path, source: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(run header, records, traces) from a journal, as parsed JSON (validated by the caller).

    An unterminated last line (a write torn by a crash) is ignored; any other line that is not a JSON
    object is ConfigError naming the document, the journal and the line number.
    """
    fix = "the journal is damaged; the records before the named line are intact in it"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"results file {source}: its journal {path} (records of a run that did not finish) "
                          f"cannot be read: {exc.strerror}; it may have been pruned or moved: keep it beside "
                          "the results file") from exc
    lines = data.split(b"\n")[:-1]  # the piece after the last newline was never acknowledged
    entries: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, 1):
        try:
            entry = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"results file {source}: journal {path} line {number} is not JSON ({exc}); "
                              f"{fix}") from exc
        if not isinstance(entry, dict):
            raise ConfigError(f"results file {source}: journal {path} line {number} is not a JSON object; {fix}")
        entries.append(entry)
    if not entries or entries[0].get("format") != JOURNAL_FORMAT or not isinstance(entries[0].get("run"), dict):
        raise ConfigError(f"results file {source}: {path} does not start with a pytest-edgehil journal header; "
                          f"{fix}")
    records: list[dict[str, Any]] = []
    traces: list[dict[str, Any]] = []
    for entry in entries[1:]:
        records.extend(entry.get("records", []))
        traces.extend(entry.get("traces", []))
    return entries[0], records, traces
