"""What makes the two sides of a gate comparison not like for like: the flags shown beside a verdict.

A record's measurement context (model SHA-256, firmware, protocol version, sample interval, instrument,
board, evaluation split, current range) against each baseline session's, and the runs' headers (backend,
pytest-edgehil version, an A/A run of one commit). Pure functions over records (no pytest, no I/O).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_edgehil.results.store import ResultRecord, RunInfo

_CONTEXT_CHECKS = (("model_sha256", "model SHA-256"), ("device_firmware", "firmware"),
                   ("protocol_version", "protocol version"), ("sample_interval_s", "sample interval"),
                   ("instrument_idn", "instrument"), ("device_serial", "board serial number"),
                   ("eval_split", "evaluation split"),
                   # Each range has its own offset (an N6781A's: 10 µA at 100 mA, 250 µA at 3 A): a systematic
                   # difference the gate's noise, estimated within one range, does not hold.
                   ("current_range_a", "current range"))


def context_flags(base: ResultRecord, new: ResultRecord) -> list[str]:
    """What differs between the two sides' measurement context; empty when like for like. (Another board
    of the same kind is flagged too: boards of one kind differ by a few % in power, which a pool of lab
    boards or a replaced one would pass off as a change of the model.)"""
    flags = []
    a, b = base.context or {}, new.context or {}
    for key, label in _CONTEXT_CHECKS:
        if a.get(key) in (None, "") or b.get(key) in (None, ""):
            continue
        x, y = a[key], b[key]
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            differs = not math.isclose(float(x), float(y), rel_tol=1e-6)
        else:
            differs = str(x) != str(y)
        if differs:
            short = (lambda v: str(v)[:12]) if key == "model_sha256" else str
            flags.append(f"{label} differs: {short(x)} → {short(y)}")
    return flags


def earlier_session_flags(bases: Sequence[ResultRecord], new: ResultRecord) -> tuple[str, ...]:
    """What differs between earlier baseline sessions and `new` that the latest session's flags do not say: a
    night on another board or firmware inside a baseline widens the drift it measures, silently."""
    latest = context_flags(bases[-1], new)
    counts: dict[str, int] = {}
    for other in bases[:-1]:
        for flag in context_flags(other, new):
            if flag not in latest:
                counts[flag] = counts.get(flag, 0) + 1
    return tuple(f"{flag} (in {n} of {len(bases)} baseline sessions)" for flag, n in counts.items())


def run_flags(base_run: RunInfo | None, new_run: RunInfo | None) -> list[str]:
    if base_run is None or new_run is None:
        return []
    flags = []
    if base_run.backend != new_run.backend:
        flags.append(f"the baseline ran on {base_run.backend}, this run on {new_run.backend}: records of "
                     "different backends are not compared")
    if base_run.edgehil_version != new_run.edgehil_version:
        flags.append(f"pytest-edgehil {base_run.edgehil_version} wrote the baseline, {new_run.edgehil_version} "
                     "this run")
    if base_run.git_commit and base_run.git_commit == new_run.git_commit and not new_run.git_dirty:
        flags.append(f"both runs are of commit {base_run.git_commit[:12]}: this compares the bench with itself "
                     "(an A/A run; its ratios show the bench's between-session spread)")
    return flags
