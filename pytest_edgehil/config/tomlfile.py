"""Reading the project's TOML files (lab, budgets, profiles) with one kind of error message."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pytest_edgehil.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: Path, what: str, fix: str) -> dict[str, Any]:
    """Parse `path`; a missing file or bad TOML is a ConfigError naming `what` it is and the `fix`."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}; {fix}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from exc
