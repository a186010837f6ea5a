"""JUnit XML property values: JSON, small, with traces referenced rather than inlined.

pytest's junitxml writes every user property as `str(value)`: a record dict came out as a Python repr
(`{'pair': 'qsegment-imx500', 'ci_low': None, ...}`, which no JSON reader takes) and each power trace as
23 KB of floats. CI servers (Jenkins, GitLab) show properties per test case, so they are written as JSON
objects of the record's figures; the per-inference samples and the trace points stay in the results file,
where the gate and the report read them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pytest_edgehil.results.document_text import finite_or_null

MAX_PROPERTY_CHARS = 2048  # a property is a line in a CI page, not a data store
# Dropped in this order while a record's JSON is over the cap (the figures themselves always stay).
_DROPPABLE = ("context", "source", "bound")


def dumps(value: Any) -> str:
    return json.dumps(finite_or_null(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_property(record: Mapping[str, Any]) -> str:
    """One measurement record as a JSON object of at most `MAX_PROPERTY_CHARS` characters.

    `raw` (the per-inference samples) is replaced by its count; while still over the cap, `context`, then
    `source`, then `bound` are dropped and named in `"omitted"`. Raises nothing: a record of plain figures
    is far under the cap.
    """
    data = {k: v for k, v in record.items() if k != "raw"}
    raw = record.get("raw")
    if raw:
        data["raw"] = f"{len(raw)} samples in the results file"
    text = dumps(data)
    omitted: list[str] = []
    for key in _DROPPABLE:
        if len(text) <= MAX_PROPERTY_CHARS:
            break
        if key in data:
            del data[key]
            omitted.append(key)
            text = dumps({**data, "omitted": omitted})
    return text


def trace_property(trace: Mapping[str, Any], nodeid: str) -> str:
    """A reference to a power trace kept in the results file (`traces`, by `test`), not its points."""
    return dumps({"pair": trace.get("pair"), "test": nodeid, "backend": trace.get("backend"),
                  "points": len(trace.get("time_s") or ()), "windows": len(trace.get("windows_s") or ()),
                  "in": "the results file's traces (match `test`)"})
