"""Typed errors reported as what they say, not as a traceback into pytest-edgehil's internals.

An `EdgeHILError` names what failed and what to do (errors.py); the frames of the bench, the link and the
fixtures under it tell a person at a bench nothing more, and one busy board used to print thousands of
lines of them over a suite run. With pytest's default `--tb=auto` (and below `-vv`), the report of a test
whose setup, call or teardown raised one shows "Class: message", the line of the user's code that reached
it, and how to get the traceback. Any explicit `--tb` style, or `-vv`, keeps pytest's own report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.errors import EdgeHILError

_PACKAGE = Path(__file__).resolve().parent.parent  # .../pytest_edgehil
HINT = "(pytest-edgehil shortened this error's traceback; --tb=long or -vv shows it)"


def wants_short(config: pytest.Config) -> bool:
    """True under pytest's default traceback style and below -vv: the user asked for no particular form."""
    return getattr(config.option, "tbstyle", "auto") == "auto" and config.get_verbosity() < 2


def short_longrepr(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    """The short report of an EdgeHILError: "Class: message", the user's location, the hint; None for any
    other exception. The first line is what pytest's `-r` summary shows after the test id."""
    if not isinstance(excinfo.value, EdgeHILError):
        return None
    error = excinfo.value
    return "\n".join([f"{type(error).__name__}: {error}", _user_location(item, excinfo), HINT])


def _user_location(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The innermost frame in the user's project (not this package, pytest or an installed package), as
    pytest's short style writes it ("path:line: in name"); else the test's own location."""
    root = item.config.rootpath
    for entry in reversed(excinfo.traceback):
        path = Path(entry.path)
        if not path.is_absolute() or _PACKAGE in path.parents or "site-packages" in path.parts:
            continue
        if root in path.parents:
            return f"{path.relative_to(root)}:{entry.lineno + 1}: in {entry.name}"
    fspath, lineno, domain = item.location
    return f"{fspath}:{(lineno or 0) + 1}: {domain}"
