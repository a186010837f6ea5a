"""Reading the project's input files (TOML and JSON) with one kind of error message.

A missing file, bytes that are not UTF-8 and text that does not parse are each a `ConfigError` naming
what the file is, where, and the fix; what the parsed data means is the schemas' business
(`pytest_edgehil.config.schema`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pytest_edgehil.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_text(path: Path, what: str, fix: str, *, missing: str | None = None) -> str:
    """The file's text; unreadable or non-UTF-8 bytes are a ConfigError (`missing`: the message for an
    absent file, instead of the generic one)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        if missing is not None:
            raise ConfigError(missing) from None
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}; {fix}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}; {fix}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{what} {path} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                          f"(line {line}); save the file as UTF-8") from None


def read_toml(path: Path, what: str, fix: str) -> dict[str, Any]:
    """Parse `path`; a missing file, non-UTF-8 bytes or bad TOML is a ConfigError naming `what` and the `fix`."""
    text = read_text(path, what, fix)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from exc


def parse_json(text: str, what: str, source: str, fix: str) -> Any:
    """JSON text parsed; bad JSON (or a number Python cannot hold) is a ConfigError naming the file."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, or an integer past the digit limit
        raise ConfigError(f"{what} {source}: not valid JSON ({exc}); {fix}") from None
