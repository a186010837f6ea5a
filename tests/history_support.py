"""Helpers shared by the history store's tests (tests/test_history_store.py, tests/test_history_runs.py)."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace
from pathlib import Path

from pytest_edgehil.results.store import ResultsFile


def same_records(a: ResultsFile, b: ResultsFile) -> None:
    """Equal record for record; a NaN value (written as null) equals a NaN value."""
    assert len(a.records) == len(b.records)
    for x, y in zip(a.records, b.records):
        if math.isnan(x.value):
            assert math.isnan(y.value) and replace(x, value=0.0) == replace(y, value=0.0)
        else:
            assert x == y


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def garbage(path: Path) -> None:
    path.write_bytes(b"this is a results file, honest" * 100)
