"""A results document as text on disk: finite JSON (NaN and infinity as null), one record per line, written
atomically (a reader or a crash only ever sees a whole file). No results semantics here: `results.store`
builds the documents."""

from __future__ import annotations

import glob
import json
import math
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Any


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a reader (or a crash) only ever sees a whole file.

    The text goes to a hidden `.NAME.<pid>@<host>.<token>.tmp` beside `path`, then is renamed over it. A
    writer killed before the rename (SIGKILL runs no cleanup) leaves that file behind: each write first
    removes the temporary files of `path` whose writer is gone (`remove_stale_temporaries`)."""
    remove_stale_temporaries(path)
    # Results are for the whole lab to read: created 0666 and left to the umask, as open() would, not
    # mkstemp's 0600. (Reading the umask means setting it, process-wide, under the twins' threads.)
    tmp_name = str(path.parent / f".{path.name}.{os.getpid()}@{_HOST}.{secrets.token_hex(6)}.tmp")
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


# The host in a temporary file's name: a directory shared by several hosts (NFS) holds their files too,
# and a pid says whether a writer is alive only on its own host. One name part: no dots or separators.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove `path`'s temporary files (`.NAME.<pid>@<host>.<token>.tmp`) left by writers of this host
    that no longer run (killed mid-write); return those removed. A live writer's file, another host's and
    one whose name says neither (an older version's) are kept: their writer may still rename them.
    Errors (a read-only directory, a file another process removed first) are ignored: the write that
    follows reports its own."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)@([A-Za-z0-9-]+)\.[0-9a-f]+\.tmp$")
    removed: list[Path] = []
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.match(candidate.name)
        if match is None or match.group(2) != _HOST or _alive(int(match.group(1))):
            continue
        try:
            candidate.unlink()
            removed.append(candidate)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (another user's counts: EPERM)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or a pid the OS cannot even name: not ours to judge
    return True


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
