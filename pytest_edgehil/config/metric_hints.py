"""What a budget key that is not a metric most likely meant: a built-in written in another case, with a
space, or in another scale of its unit (`inference_uJ = { max = 2000 }` for `inference_mj = { max = 2 }`).

difflib alone answers these badly: `inference_mJ` is nearer `inference_mw` than `inference_mj` by its
ratio (the capital J counts as a different letter), and a unit's scale is no typo at all. Pure functions,
stdlib only; the schema's metric check calls `built_in_hint` before falling back to difflib.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal

# A suffix in another scale of a built-in's unit → (the built-in's suffix, factor from the one to the other).
_SCALED_SUFFIXES: Mapping[str, tuple[str, Decimal]] = {
    "us": ("ms", Decimal("1e-3")), "s": ("ms", Decimal(1000)),
    "uj": ("mj", Decimal("1e-3")), "j": ("mj", Decimal(1000)),
    "uw": ("mw", Decimal("1e-3")), "w": ("mw", Decimal(1000)),
}
_UNIT_OF_SUFFIX = {"ms": "ms", "mj": "mJ", "mw": "mW"}
_BOUNDS = ("min", "max", "published")


def _normalized(name: str) -> str:
    return name.strip().lower().replace("µ", "u").replace("μ", "u")  # micro sign and Greek mu


def built_in_hint(metric: str, bounds: Mapping[str, float | None], built_ins: Collection[str]) -> str | None:
    """"did you mean …" for `metric` when it is a built-in in another case or with spaces, or a built-in's
    quantity in another scale of its unit (then with the limit's `bounds` converted); None otherwise."""
    name = _normalized(metric)
    if name in built_ins:
        return f"did you mean `{name}`? (metric names are lower case, without spaces)"
    stem, _, suffix = name.rpartition("_")
    if suffix not in _SCALED_SUFFIXES:
        return None
    target, factor = _SCALED_SUFFIXES[suffix]
    built_in = f"{stem}_{target}"
    if built_in not in built_ins:
        return None
    given = [(key, value) for key in _BOUNDS if (value := bounds.get(key)) is not None]
    converted = ", ".join(f"{key} = {_scaled(value, factor)}" for key, value in given)
    unit = _UNIT_OF_SUFFIX[target]
    return (f"did you mean `{built_in}`? Its limits are written in {unit}: `{built_in} = {{ {converted} }}` "
            "(tolerance, marginal and source as they are).")


def _scaled(value: float, factor: Decimal) -> str:
    """`value` × `factor` in decimal, every digit the user wrote kept (1234567 µs: "1234.567" ms, not a
    6-digit "1234.57"): the shortest repr of the float, scaled by a power of ten exactly."""
    return format((Decimal(repr(float(value))) * factor).normalize(), "f")
