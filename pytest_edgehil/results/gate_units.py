"""A baseline recorded in other units than the run's: converted into the run's units when both are of one
dimension, refused (UNKNOWN, naming the units and the file) when not.

Why: a lab's writer that switched from J to mJ (or s to ms, W to mW) between the baseline and the run
left every comparison "units differ", UNKNOWN, not blocking: a real +30 % energy regression passed. A
unit of one dimension is a fixed factor, so the gate converts the baseline's figures (value, samples,
median, CI, budget bounds) into the run's unit and compares there; what is printed is then in the run's
unit, with a flag saying the baseline's. Different dimensions (mJ against ms) or a unit that cannot be read
stay incomparable: a guessed conversion would decide a merge on a number nobody measured.

Why a table and not pint: pint costs 0.3-0.45 s to import and 0.16-0.30 s more to build its registry
(measured on the lab's 2-core machine, five fresh processes), paid by every `edgehil compare` and
report that meets one such baseline; and its meaning of our units is not ours: `fps` is foot per second
there (it converts to m/s), bytes are dimensionless (616 KiB "converts" to the parameter count 630 784),
`MAC` and `KB` (1000 or 1024 bytes?) are unknown or ambiguous. The vocabulary's units are a small, closed
set: SI prefixes over a handful of base units, written out here, and the factors are exact fractions,
applied with one rounding (0.0342 J is 34.2 mJ to the last bit).

No pytest, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from pytest_edgehil.results.comparison import listed
from pytest_edgehil.results.store import ResultRecord

_SI_PREFIXES: dict[str, Fraction] = {
    "p": Fraction(1, 10**12), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "\u00b5": Fraction(1, 10**6),
    "\u03bc": Fraction(1, 10**6), "m": Fraction(1, 1000), "c": Fraction(1, 100), "k": Fraction(1000),
    "M": Fraction(10**6), "G": Fraction(10**9),
}
_BINARY_PREFIXES: dict[str, Fraction] = {"Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30)}

# Base unit: (dimension, factor to the dimension's reference unit, prefixes it takes).
_BASES: dict[str, tuple[str, Fraction, dict[str, Fraction]]] = {
    "s": ("time", Fraction(1), _SI_PREFIXES),
    "J": ("energy", Fraction(1), _SI_PREFIXES),
    "Wh": ("energy", Fraction(3600), _SI_PREFIXES),  # a battery's mWh
    "W": ("power", Fraction(1), _SI_PREFIXES),
    "A": ("current", Fraction(1), _SI_PREFIXES),
    "V": ("voltage", Fraction(1), _SI_PREFIXES),
    "Hz": ("frequency", Fraction(1), _SI_PREFIXES),
    "m": ("length", Fraction(1), _SI_PREFIXES),
    # Bytes take SI (kB = 1000 B) and binary (KiB = 1024 B) prefixes; "KB", "MB" and "GB" are left out: JEDEC
    # (memory sizes) reads them as 2^10, 2^20, 2^30 bytes, SI as powers of 1000, so which one a writer meant
    # cannot be told (a 2.4 % difference at MB, enough to flip a footprint verdict).
    "B": ("data size", Fraction(1), {**{p: f for p, f in _SI_PREFIXES.items() if p not in ("M", "G")},
                                     **_BINARY_PREFIXES}),
    "MAC": ("multiply-accumulates", Fraction(1), _SI_PREFIXES),
    "fps": ("frame rate", Fraction(1), {}),  # frames, not Hz: a frame rate is no frequency of anything else
}
READABLE = ("SI prefixes (p n µ m c k M G) of s, J, Wh, W, A, V, Hz, m and MAC, kB, Ki/Mi/Gi of B, and fps (KB, MB "
            "and GB are 1000 or 1024 bytes, depending on the writer)")


class Unit(NamedTuple):
    dimension: str
    factor: Fraction  # to the dimension's reference unit (s, J, W, ..., B)


def parse_unit(text: str) -> Unit | None:
    """`mJ` → (energy, 1/1000); None for a unit this table does not hold (`bananas`, `KB`, `min`)."""
    text = text.strip()
    if text in _BASES:  # a base first: `m` is the metre, not a bare prefix
        dimension, factor, _ = _BASES[text]
        return Unit(dimension, factor)
    for base, (dimension, factor, prefixes) in _BASES.items():
        if text.endswith(base) and text[:-len(base)] in prefixes:
            return Unit(dimension, factor * prefixes[text[:-len(base)]])
    return None


def _scaled(values: Sequence[float], factor: Fraction) -> list[float]:
    """Each value × factor, rounded once: by an integer or by 1/integer that is one float operation, which
    IEEE rounds correctly (0.0342 × 1000 = 34.2); any other fraction goes through exact rationals."""
    array = np.asarray(values, dtype=float)
    if factor.denominator == 1 and factor.numerator <= 2**53:
        return (array * float(factor.numerator)).tolist()
    if factor.numerator == 1 and factor.denominator <= 2**53:
        return (array / float(factor.denominator)).tolist()
    return [float(Fraction(v) * factor) if math.isfinite(v) else v for v in values]


def _scaled_one(value: float | None, factor: Fraction) -> float | None:
    return None if value is None else _scaled([value], factor)[0]


def convert(record: ResultRecord, unit: str, factor: Fraction) -> ResultRecord:
    """`record` with every figure in `unit` (`factor`: how many of `unit` one of the record's unit is)."""
    return replace(record, unit=unit, value=_scaled([record.value], factor)[0],
                   raw=None if record.raw is None else _scaled(record.raw, factor),
                   median=_scaled_one(record.median, factor), ci_low=_scaled_one(record.ci_low, factor),
                   ci_high=_scaled_one(record.ci_high, factor), published=_scaled_one(record.published, factor),
                   limit_min=_scaled_one(record.limit_min, factor), limit_max=_scaled_one(record.limit_max, factor))


UNITS_DIFFER = "units differ"  # how every reason `align_units` gives begins


def _listed(names: Sequence[str]) -> str:
    return listed([n for n in names if n])


def _files(names: Sequence[str]) -> str:
    shown = _listed(names)
    return f"the baseline's {shown}" if shown else "the baseline"


def align_units(bases: Sequence[ResultRecord], new: ResultRecord,
                sources: Sequence[str] | None = None) -> tuple[list[ResultRecord], tuple[str, ...], list[str]]:
    """The baseline records of one pair × metric (one per session, `sources` naming each one's file) in
    `new`'s unit: (records, flags saying what was converted, reasons the comparison cannot be made).

    A record already in `new`'s unit is kept as it is; one of the same dimension is converted; one that is
    not (another dimension, a unit this table cannot read) is kept unconverted and named in a reason."""
    if all(record.unit == new.unit for record in bases):  # the common case: a night of 5,000 records
        return list(bases), (), []
    names = list(sources) if sources is not None else [""] * len(bases)
    target = parse_unit(new.unit)
    aligned: list[ResultRecord] = []
    converted: dict[str, list[str]] = {}
    refused: dict[str, list[str]] = {}
    for record, name in zip(bases, names):
        if record.unit == new.unit:
            aligned.append(record)
            continue
        unit = parse_unit(record.unit)
        if unit is not None and target is not None and unit.dimension == target.dimension:
            aligned.append(convert(record, new.unit, unit.factor / target.factor))
            converted.setdefault(record.unit, []).append(name)
        else:
            aligned.append(record)
            refused.setdefault(record.unit, []).append(name)
    flags = tuple(f"baseline in {unit}, converted to {new.unit}" + (f" ({_listed(files)})" if any(files) else "")
                  for unit, files in converted.items())
    reasons = [_refusal(unit, new, target, files) for unit, files in refused.items()]
    return aligned, flags, reasons


def _in(unit: str) -> str:
    return f"in {unit!r}" if unit else "without a unit"


def _refusal(unit: str, new: ResultRecord, target: Unit | None, names: list[str]) -> str:
    theirs = parse_unit(unit)
    where = f"{_files(names)} records {new.metric} {_in(unit)}, this run {_in(new.unit)}"
    if theirs is None or target is None:
        unread = " and ".join(repr(u) if u else "a missing unit" for u, parsed in ((unit, theirs), (new.unit, target))
                              if parsed is None)
        return (f"{UNITS_DIFFER}: {where}; {unread} cannot be converted (the gate converts {READABLE}): record both "
                "sides in one unit")
    return (f"{UNITS_DIFFER} in kind: {where} ({theirs.dimension} against {target.dimension}): "
            f"check which figure the baseline's writer recorded under {new.metric}")
