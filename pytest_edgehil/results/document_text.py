"""A results document as text on disk: finite JSON (NaN and infinity as null), one record per line, written
atomically (a reader or a crash only ever sees a whole file). No results semantics here: `results.store`
builds the documents."""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a reader (or a crash) only ever sees a whole file."""
    # Results are for the whole lab to read: created 0666 and left to the umask, as open() would, not
    # mkstemp's 0600. (Reading the umask means setting it, process-wide, under the twins' threads.)
    tmp_name = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the data does (power loss)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass  # a read-only or vanished directory refuses this too: the first error is the one to tell
        raise


def finite_or_null(value: Any) -> Any:
    """NaN and infinity as JSON null: strict JSON readers (browsers, jq) reject Python's NaN token."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def dump_document(data: dict[str, Any]) -> str:
    """A results document as JSON text: each top-level key on its own line, each item of a top-level list
    (a record, a trace) on its own line. Readable and diffable line by line, and written by the json
    module's C encoder (an `indent` makes it fall back to the pure-Python one, 5-10x slower). Raises
    ValueError for NaN or infinity (`finite_or_null` first)."""
    parts = []
    for key, value in data.items():
        if isinstance(value, list):
            body = ",\n".join(json.dumps(item, allow_nan=False) for item in value)
            text = f"[\n{body}\n]" if value else "[]"
        else:
            text = json.dumps(value, allow_nan=False)
        parts.append(f"{json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"
