"""The one way every input file is validated: pydantic v2 models, and their errors as `ConfigError`s.

Each file type (lab, budgets, model cards, kinds, twin profiles, results) has its schema as pydantic
models built on `StrictModel`: no coercion (`"false"` is not a boolean, `"0.9 ms"` not a number), unknown
keys are errors, numbers are finite. `validate` runs a model over parsed data and turns pydantic's
`ValidationError.errors()` (loc, type, input, ctx) into one message in the project's words, naming the
file, the entry (`[devices.coral-2]`, `[[budget]] #3 (qsegment-coral)`, `record #4`), the key, what was
seen and what to do; an unknown key gets the closest known one suggested.

Importing this module imports pydantic (~100 ms): the loaders import it inside their functions, so
`import pytest_edgehil.plugin` stays light (`tests/test_plugin_install.py` checks it).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pytest_edgehil.config.suggest import closest
from pytest_edgehil.errors import ConfigError

__all__ = ["EntryNamer", "StrictModel", "closest", "describe_input", "format_errors", "named_tables", "validate"]

M = TypeVar("M", bound=BaseModel)
Loc = tuple[int | str, ...]
# (loc, data) -> (entry label, the rest of loc: the key inside the entry); see `validate`.
EntryNamer = Callable[[Loc, Any], tuple[str, Loc]]

MAX_LISTED = 8  # problems listed in one message; a file that broke wholesale needs no more to be fixed


class StrictModel(BaseModel):
    """Base of every schema: strict types, unknown keys rejected, finite numbers, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


def describe_input(value: object, limit: int = 60) -> str:
    """`value` as a reader wants to see it in a message: its repr, shortened, with the TOML/JSON type."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's str() digit limit
        text = "<an integer too large to print>"
    if isinstance(value, int) and not isinstance(value, bool) and len(text) > 20:
        return f"an integer of {len(text.lstrip('-'))} digits"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


# --------------------------------------------------------------------------------------- known keys


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg) if t is not type(None)]
    return [annotation]


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The field names of the model found by following `loc` from `model` (for "did you mean")."""
    current: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for tp in current:
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                field = tp.model_fields.get(str(part))
                if field is not None:
                    following.extend(_unwrap(field.annotation))
            elif typing.get_origin(tp) in (dict, Mapping):
                following.extend(_unwrap(typing.get_args(tp)[1]))
            elif typing.get_origin(tp) in (list, tuple, Sequence) and isinstance(part, int):
                following.extend(_unwrap(typing.get_args(tp)[0]))
        current = following
    return sorted({name for tp in current if isinstance(tp, type) and issubclass(tp, BaseModel)
                   for name in tp.model_fields})


# ------------------------------------------------------------------------------------------ messages

_EXPECTED = {
    "int_type": "an integer", "float_type": "a number", "string_type": "a string",
    "bool_type": "true or false (a boolean, not a string or number)", "list_type": "a list",
    "tuple_type": "a list", "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
    "finite_number": "a finite number (not nan or inf)", "int_from_float": "a whole number",
}


def _key_text(loc: Loc) -> str:
    """('limits', 'inference_ms', 'max') -> 'limits.inference_ms.max'; list positions read `raw[]`."""
    text = ""
    for part in loc:
        text += "[]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problem(error: Mapping[str, Any], key: str, table: str, known: list[str], in_entry: bool) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    items = [p for p in error["loc"] if isinstance(p, int)]
    at = f" (item {items[-1] + 1})" if items and key.endswith("[]") else ""
    seen = f", got {describe_input(value)}{at}"
    subject = f"`{key}`" if key else "the entry" if in_entry else "the file"
    if kind == "missing":  # a whole file or entry that is missing (keys are grouped by format_errors)
        return f"missing {key or 'it'} (required)"
    if kind == "extra_forbidden":
        name = str(error["loc"][-1])
        hint = closest(name, known)
        suggestion = f"; did you mean `{hint}`?" if hint else ""
        listed = f" (known keys here: {', '.join(known)})" if known else ""
        return f"unknown key `{key}`{suggestion}{listed}"
    if kind in _EXPECTED:
        expected = _EXPECTED[kind].replace("a table", table)
        return f"{subject} must be {expected}{seen}"
    bounds = {"greater_than": ">", "greater_than_equal": "≥", "less_than": "<", "less_than_equal": "≤"}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"{subject} must be {bounds[kind]} {limit}{seen}"
    if kind == "literal_error":
        return f"{subject} must be one of {ctx.get('expected', '?')}{seen}"
    if kind in ("too_short", "too_long"):
        return f"{subject} has the wrong length{seen} ({error['msg'].lower()})"
    if kind in ("value_error", "assertion_error"):
        msg = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return f"`{key}`: {msg}" if key else msg
    # A custom error type (PydanticCustomError) carries our own message; anything else, pydantic's phrase.
    return f"{subject}: {error['msg']}{seen}" if key else f"{error['msg']}{seen}"


def _top_level(loc: Loc, data: Any) -> tuple[str, Loc]:
    return "", loc


def named_tables(section: str, label: Callable[[str | int, Any], str]) -> EntryNamer:
    """An `EntryNamer` for files made of entries under `section` (`[devices.NAME]`, `[[budget]]`,
    `records`): an error inside entry k is labelled `label(k, data of the entry)`; other keys at the top."""
    def namer(loc: Loc, data: Any) -> tuple[str, Loc]:
        if len(loc) >= 2 and loc[0] == section:
            container = data.get(section) if isinstance(data, Mapping) else None
            try:
                item = container[loc[1]] if container is not None else None  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                item = None
            return label(loc[1], item), loc[2:]
        if len(loc) >= 2 and isinstance(data, Mapping) and isinstance(data.get(loc[0]), Mapping):
            return f"[{loc[0]}]", loc[1:]
        return "", loc
    return namer


def validate(model: type[M], data: Any, *, what: str, source: str, fix: str,
             entry: EntryNamer = _top_level, table: str = "a table") -> M:
    """`model` validated from `data`, or a `ConfigError` listing every problem.

    `what` names the file type ("lab file"), `source` the file, `fix` the closing advice; `entry` maps an
    error's loc to the entry it is in (a label) and the key inside it; `table` is the word for a mapping
    in this format ("a table" for TOML, "an object" for JSON).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(model, exc.errors(include_url=False), data, what=what, source=source,
                                        fix=fix, entry=entry, table=table)) from None


def format_errors(model: type[BaseModel], errors: Sequence[Mapping[str, Any]], data: Any, *, what: str,
                  source: str, fix: str, entry: EntryNamer = _top_level, table: str = "a table") -> str:
    """One line: `{what} {source}: {entry}: {problem}; …; {fix}`. Missing keys of one entry are listed
    together (`record #1: missing metric, value, unit`)."""
    slots: list[str | tuple[str, str]] = []  # a problem, or (entry label, parent key) of missing keys
    missing: dict[tuple[str, str], list[str]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        label, rest = entry(loc, data)
        if error["type"] == "missing" and rest:
            group = (label, _key_text(rest[:-1]))
            if group not in missing:
                slots.append(group)
            missing.setdefault(group, []).append(str(rest[-1]))
            continue
        known = _fields_at(model, loc[:-1]) if error["type"] == "extra_forbidden" else []
        problem = _problem(error, _key_text(rest), table, known, bool(label))
        line = f"{label}: {problem}" if label else problem
        if line not in slots:
            slots.append(line)
    problems = []
    for slot in slots:
        if isinstance(slot, str):
            problems.append(slot)
            continue
        label, parent = slot
        keys = ", ".join(f"{parent}.{k}" if parent else k for k in missing[(label, parent)])
        problems.append(f"{label}: missing {keys} (required)" if label else f"missing {keys} (required)")
    head = f"{what} {source}"
    if len(problems) == 1:
        return f"{head}: {problems[0]}; {fix}"
    more = len(problems) - MAX_LISTED
    listed = problems[:MAX_LISTED] + ([f"… and {more} more"] if more > 0 else [])
    return f"{head}: {len(problems)} problems: " + "; ".join(listed) + f". To do: {fix}"
