"""The history store's tables, and the checks a row passes on the way in (CHECK constraints) and on the way
out (one query per run read, `record_checks`): written once here, so what is stored and what is accepted
cannot drift apart. Row <-> record conversion lives here too. No pytest, no pydantic (the store is read
on every report, and pydantic costs ~0.15 s to import).

Why the checks are SQL: a run holds thousands of records; SQLite evaluates the conditions over them in C
(a few ms for 5,000), where the same checks field by field in Python cost more than reading the rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, fields
from typing import Any

import numpy as np

from pytest_edgehil.results.document_text import finite_or_null
from pytest_edgehil.results.store import ResultRecord, RunInfo
from pytest_edgehil.results.vocabulary import Family

HISTORY_FORMAT = "pytest-edgehil history"
HISTORY_SCHEMA = 1
MAX_SAMPLES = 10**12  # as results/schema.py: no run measures more; a larger count is a damaged store
_MAX_FLOAT = "1.7976931348623157e308"  # abs(x) <= this: finite (SQLite stores NaN as NULL, infinity as is)

# `records` holds a ResultRecord's fields but its samples and context (in `samples`: the trends never
# read them, and they are most of the bytes).
RECORD_COLUMNS = tuple(f.name for f in fields(ResultRecord) if f.name not in ("raw", "context"))
REAL_COLUMNS = frozenset({"value", "margin_rel", "ci_low", "ci_high", "published", "limit_min", "limit_max",
                          "marginal_rel", "median"})
FAMILIES = ("", *(f.value for f in Family))  # "": a record of results schema 1, which carried no family


def _condition(name: str) -> str:
    if name in REAL_COLUMNS:
        return f"({name} IS NULL OR (typeof({name}) = 'real' AND abs({name}) <= {_MAX_FLOAT}))"
    if name == "samples":
        return f"(samples IS NULL OR (typeof(samples) = 'integer' AND samples BETWEEN 0 AND {MAX_SAMPLES}))"
    if name == "direction":
        return "(direction IS NULL OR direction IN ('higher', 'lower'))"
    if name == "family":
        return f"family IN ({', '.join(repr(f) for f in FAMILIES)})"
    if name == "metric":
        return "(typeof(metric) = 'text' AND metric <> '')"
    return f"typeof({name}) = 'text'"


# name -> SQL condition every stored record meets; "physical" as RecordSchema's: no cost or score is negative.
RECORD_CHECKS: dict[str, str] = {**{name: _condition(name) for name in RECORD_COLUMNS},
                                 "physical": "NOT (family <> '' AND value IS NOT NULL AND value < 0)"}

_RECORD_DEFS = ", ".join(f"{name} {'REAL' if name in REAL_COLUMNS else 'INTEGER' if name == 'samples' else 'TEXT'}"
                         for name in RECORD_COLUMNS)
TABLES: dict[str, str] = {
    "meta": "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # One row per run: its identity (`run_key`), the results file it came from, and its RunInfo as JSON.
    "runs": ("CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, run_key TEXT NOT NULL UNIQUE, "
             "source TEXT NOT NULL, started_at TEXT NOT NULL, "
             "complete INTEGER NOT NULL CHECK (complete IN (0, 1)), "
             "finished INTEGER NOT NULL CHECK (finished IN (0, 1)), "
             "records INTEGER NOT NULL CHECK (records >= 0), run TEXT NOT NULL, imported_at TEXT NOT NULL)"),
    # One row per run x pair x metric, in the run's order (`seq`): the first of a duplicate counts.
    "records": (f"CREATE TABLE IF NOT EXISTS records (run INTEGER NOT NULL, seq INTEGER NOT NULL, {_RECORD_DEFS}, "
                f"PRIMARY KEY (run, seq), CHECK ({' AND '.join(RECORD_CHECKS.values())})) WITHOUT ROWID"),
    # The per-inference samples (float64, little-endian) and the context: what the gate needs.
    "samples": ("CREATE TABLE IF NOT EXISTS samples (run INTEGER NOT NULL, seq INTEGER NOT NULL, raw BLOB, "
                "context TEXT, PRIMARY KEY (run, seq), "
                "CHECK ((raw IS NULL OR (typeof(raw) = 'blob' AND length(raw) % 8 = 0)) "
                "AND (context IS NULL OR typeof(context) = 'text'))) WITHOUT ROWID"),
    "traces": "CREATE TABLE IF NOT EXISTS traces (run INTEGER PRIMARY KEY, data BLOB NOT NULL)",  # zlib JSON
    # Results files already imported, by path (size and mtime tell a file unchanged) and by content.
    "sources": ("CREATE TABLE IF NOT EXISTS sources (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                "mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL, run INTEGER NOT NULL)"),
}
INDEXES = ("CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at)",
           "CREATE INDEX IF NOT EXISTS sources_by_digest ON sources (digest)")
COLUMNS: dict[str, tuple[str, ...]] = {
    "meta": ("key", "value"),
    "runs": ("id", "run_key", "source", "started_at", "complete", "finished", "records", "run", "imported_at"),
    "records": ("run", "seq", *RECORD_COLUMNS),
    "samples": ("run", "seq", "raw", "context"),
    "traces": ("run", "data"),
    "sources": ("path", "size", "mtime_ns", "digest", "run"),
}


def _finite(value: Any) -> float | None:
    """A float column's value as the results file holds it: NaN and infinity as null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def record_rows(run: int, records: list[ResultRecord]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(`records` rows, `samples` rows) of a run's records. Raises ValueError naming a record whose raw
    samples are not all finite (a results file could not hold it either)."""
    rows = [(run, seq, *(_finite(r.__dict__[c]) if c in REAL_COLUMNS else r.__dict__[c] for c in RECORD_COLUMNS))
            for seq, r in enumerate(records)]
    # All samples as one array: one conversion and one finiteness check for the run, not one per record.
    flat = np.array([x for r in records if r.raw for x in r.raw], dtype="<f8")
    if not np.all(np.isfinite(flat)):
        bad = next(r for r in records if r.raw and not np.all(np.isfinite(np.asarray(r.raw, dtype=float))))
        raise ValueError(f"{bad.pair} {bad.metric}: a raw sample is NaN or infinite")
    samples, at = [], 0
    for seq, record in enumerate(records):
        raw = None
        if record.raw is not None:
            raw, at = flat[at:at + len(record.raw)].tobytes(), at + len(record.raw)
        samples.append((run, seq, raw, None if record.context is None else context_text(record.context)))
    return rows, samples


def context_text(context: dict[str, Any]) -> str:
    try:
        return json.dumps(context, allow_nan=False)
    except ValueError:  # a NaN or infinity inside: null, as the results file has it
        return json.dumps(finite_or_null(context), allow_nan=False)


def record_from_row(row: tuple[Any, ...], raw: list[float] | None, context: dict[str, Any] | None) -> ResultRecord:
    """A record from its `records` row (without run and seq) and its samples; set on the frozen dataclass at
    once, as `store._results_file` does (no per-field __setattr__: 150,000 records make a 30-night report)."""
    record = object.__new__(ResultRecord)
    data = dict(zip(RECORD_COLUMNS, row))
    if data["value"] is None:
        data["value"] = math.nan  # the results file's null: NaN when written
    data["raw"], data["context"] = raw, context
    record.__dict__.update(data)
    return record


# RunInfo's fields and the JSON types each may take (bool is not an int here).
_RUN_TYPES: dict[str, tuple[type, ...]] = {
    "started_at": (str,), "backend": (str,), "edgehil_version": (str,), "git_commit": (str, type(None)),
    "git_dirty": (bool, type(None)), "seed": (int, type(None)), "lab": (str,), "devices": (list,),
    "python": (str,), "platform": (str,), "argv": (list,), "finished_at": (str, type(None)),
    "complete": (bool,), "exit_status": (int, type(None)), "run_id": (str,)}


def run_json(run: RunInfo) -> str:
    return json.dumps(asdict(run), allow_nan=False)


def run_from_json(text: object) -> RunInfo:
    """The RunInfo of a `runs` row; ValueError naming the field that is not what a writer writes (a
    json.JSONDecodeError, a ValueError, for text that is not JSON)."""
    data = json.loads(text) if isinstance(text, str) else None
    if not isinstance(data, dict) or not set(_RUN_TYPES) <= set(data):
        raise ValueError("its run header is not a pytest-edgehil run (fields missing)")
    data = {name: data[name] for name in _RUN_TYPES}  # keys a newer writer added are ignored, as in files
    for name, types in _RUN_TYPES.items():
        value = data[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types) or \
                (isinstance(value, list) and not all(isinstance(v, str) for v in value)):
            raise ValueError(f"its run header's `{name}` is {value!r}")
    return RunInfo(**data)
