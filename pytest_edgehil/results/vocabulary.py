"""The metric vocabulary: one table saying, for every metric, its unit, its family and which way is better.

Budgets, records, the gate, the terminal summary and the HTML report all ask this module, so a metric
cannot be "energy" to one of them and "power" to another. No pytest, no numpy: the gate and the
command line import it.

Where a metric's facts come from, first match wins:

1. `register_metric(name, ...)`: an explicit declaration (a conftest, a plugin of the user's own).
2. The built-in names the reference suites record (`roc_auc`, `gaze_error_cm`, `fps`, …).
3. A unit suffix (`_ms`, `_mj`, `_mw`, `_kib`, `_kb`, …): the unit and family are what the suffix says; a cost
   (time, energy, power, memory, operations) is lower-is-better by definition of a cost.
4. Anything else (`top1`, `map50`) is a unitless task metric of the accuracy family whose direction is
   *unknown*: it comes from its budget (`min` only ⇒ higher is better, `max` only ⇒ lower is better,
   or a `direction = "higher"|"lower"` key), never from its name. The gate will not call a metric of
   unknown direction IMPROVED or REGRESSED.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING

from pytest_edgehil.errors import ConfigError

if TYPE_CHECKING:  # budgets import this module, not the other way round at run time
    from pytest_edgehil.config.budgets import Limit


class Family(str, Enum):
    """What a metric measures; `--edgehil-fail-on` thresholds are per family."""

    LATENCY = "latency"
    ENERGY = "energy"
    POWER = "power"
    THROUGHPUT = "throughput"
    FOOTPRINT = "footprint"
    ACCURACY = "accuracy"  # task quality: scores and errors over an evaluation set


# The order a reader scans a pair in (the report's columns and trends): cost first, quality last.
FAMILY_ORDER: tuple[Family, ...] = (Family.LATENCY, Family.THROUGHPUT, Family.ENERGY, Family.POWER,
                                    Family.FOOTPRINT, Family.ACCURACY)


class Direction(str, Enum):
    LOWER = "lower"  # lower is better: times, energies, sizes, errors
    HIGHER = "higher"  # higher is better: fps, scores


@dataclass(frozen=True)
class MetricSpec:
    """What the vocabulary knows of one metric. `direction` None: unknown (the gate will not judge it)."""

    name: str
    unit: str
    family: Family
    direction: Direction | None
    origin: str  # where the facts came from: "registered", "built-in", "suffix _ms", "budget", "unknown"

    @property
    def higher_is_better(self) -> bool | None:
        return None if self.direction is None else self.direction is Direction.HIGHER


def how_to_declare(metric: str) -> str:
    """The sentence every "direction unknown" message ends with."""
    return (f"declare which way {metric} is better: a budget limit with only `min` (higher is better) or only "
            f"`max` (lower is better), a `direction = \"higher\"` or `\"lower\"` key in its budget limit, or "
            f"`pytest_edgehil.results.vocabulary.register_metric({metric!r}, direction=\"higher\")` in a conftest")


# ------------------------------------------------------------------------------------------- the tables

# Unit suffixes: (suffix, unit, family, direction). Longest suffixes first where one ends another.
_SUFFIXES: tuple[tuple[str, str, Family, Direction | None], ...] = (
    ("_ms", "ms", Family.LATENCY, Direction.LOWER),
    ("_us", "µs", Family.LATENCY, Direction.LOWER),
    ("_mj", "mJ", Family.ENERGY, Direction.LOWER),
    ("_uj", "µJ", Family.ENERGY, Direction.LOWER),
    ("_mw", "mW", Family.POWER, Direction.LOWER),
    ("_fps", "fps", Family.THROUGHPUT, Direction.HIGHER),
    ("_kib", "KiB", Family.FOOTPRINT, Direction.LOWER),  # 1024 bytes: what device flash and RAM are sized in
    ("_kb", "KB", Family.FOOTPRINT, Direction.LOWER),
    ("_bytes", "B", Family.FOOTPRINT, Direction.LOWER),
    ("_macs", "MAC", Family.FOOTPRINT, Direction.LOWER),
    ("_params", "", Family.FOOTPRINT, Direction.LOWER),
    # A length has no direction of its own (an error shrinks, a reach grows): unit and family only.
    ("_cm", "cm", Family.ACCURACY, None),
    ("_mm", "mm", Family.ACCURACY, None),
)

# The metrics the reference suites record whose facts a suffix does not (fully) give.
_BUILT_IN: dict[str, tuple[str, Family, Direction]] = {
    "fps": ("fps", Family.THROUGHPUT, Direction.HIGHER),
    "roc_auc": ("", Family.ACCURACY, Direction.HIGHER),
    "binary_accuracy": ("", Family.ACCURACY, Direction.HIGHER),
    "chase_roc_auc": ("", Family.ACCURACY, Direction.HIGHER),
    "chase_binary_accuracy": ("", Family.ACCURACY, Direction.HIGHER),
    "gaze_error_cm": ("cm", Family.ACCURACY, Direction.LOWER),  # TinyTracker's mean gaze error on screen
    "quantization_loss_cm": ("cm", Family.ACCURACY, Direction.LOWER),  # int8 mean gaze error − float's
    "quantization_gap_cm": ("cm", Family.ACCURACY, Direction.LOWER),  # int8 vs float gaze points
    "parameters": ("", Family.FOOTPRINT, Direction.LOWER),
    "macs": ("MAC", Family.FOOTPRINT, Direction.LOWER),
    # The low-res head A/B (suites/test_head_ab.py): the head's binary accuracy and fps as multiples of its
    # base's on the same board (1.055: +5.5 %; 0.8: 25 -> 20 fps).
    "base_binary_accuracy": ("", Family.ACCURACY, Direction.HIGHER),
    "head_quality_ratio": ("x", Family.ACCURACY, Direction.HIGHER),
    "head_fps_ratio": ("x", Family.THROUGHPUT, Direction.HIGHER),
}

# Differences of two figures that are often 0 (int8 loses no accuracy: a loss of 0 cm). A relative change
# from 0 is unbounded, so a loss of 0.001 cm would block a merge that its budget (<= 0.16 cm) passes; the
# figures they are differences of (gaze_error_cm) are gated. Their budgets hold them; the gate shows them
# without blocking.
UNGATED_METRICS: frozenset[str] = frozenset({"quantization_loss_cm", "quantization_gap_cm"})

# Every metric name the reference suites and the shipped budgets use; tests check that all parts of the
# package agree on each of them.
BUILT_IN_METRICS: tuple[str, ...] = (
    "inference_ms", "end_to_end_ms", "readout_ms", "retrieval_ms", "trace_inference_ms", "fps",
    "inference_mj", "end_to_end_mj", "inference_mw", "end_to_end_mw",
    "roc_auc", "binary_accuracy", "chase_roc_auc", "chase_binary_accuracy",
    "gaze_error_cm", "quantization_loss_cm", "quantization_gap_cm", "model_kib", "peak_activation_kib", "parameters", "macs",
    "base_fps", "head_fps", "base_binary_accuracy", "head_quality_ratio", "head_extra_params", "head_fps_ratio",
)

# Old name -> new name of built-in metrics that were renamed. The footprint suite divided bytes by 1024
# and called the result `model_kb` in "KB"; the figure is KiB and the names now say so. A budget table or
# a baseline results file with an old name is read under the new one (the numbers are the same KiB).
RENAMED_METRICS: dict[str, str] = {"model_kb": "model_kib", "peak_activation_kb": "peak_activation_kib"}


def current_name(metric: str) -> str:
    """`metric`'s name today: the new name of a renamed built-in metric, else `metric` itself."""
    return RENAMED_METRICS.get(metric, metric)


_registered: dict[str, MetricSpec] = {}


def register_metric(name: str, *, direction: Direction | str, unit: str = "",
                    family: Family | str = Family.ACCURACY, replace_existing: bool = False) -> MetricSpec:
    """Declare a metric the vocabulary does not know (or a built-in's facts, with `replace_existing`).

    `direction` is "higher" or "lower"; `family` one of `Family`'s values (default accuracy, for task
    metrics such as `top1`). Registering the same facts twice is harmless; different facts for a name
    already registered raise `ConfigError` unless `replace_existing`.
    """
    try:
        spec = MetricSpec(name=name, unit=unit, family=Family(family), direction=Direction(direction),
                          origin="registered")
    except ValueError as exc:
        raise ConfigError(f"register_metric({name!r}): {exc}; direction is one of "
                          f"{[d.value for d in Direction]}, family one of {[f.value for f in Family]}") from None
    old = _registered.get(name)
    if old is not None and old != spec and not replace_existing:
        was = old.direction.value if old.direction else "?"
        raise ConfigError(f"register_metric({name!r}): already registered as {was}-is-better "
                          f"{old.family.value} in {old.unit or 'no unit'}; pass replace_existing=True to change it")
    _registered[name] = spec
    return spec


def unregister_metric(name: str) -> None:
    """Forget a registration (tests, and conftests that register for one run only)."""
    _registered.pop(name, None)


# Facts derived from the name alone (built-in, suffix, unknown) never change: kept, since the gate asks for
# each record's twice (10,000 lookups for a 5,000-record night). Registrations are looked at first.
_derived: dict[str, MetricSpec] = {}


def lookup(metric: str) -> MetricSpec:
    """The vocabulary's facts on `metric` alone (no budget): registered, built-in, suffix, else unknown."""
    if metric in _registered:
        return _registered[metric]
    spec = _derived.get(metric)
    if spec is None:
        spec = _derived[metric] = _derive(metric)
    return spec


def _derive(metric: str) -> MetricSpec:
    if metric in _BUILT_IN:
        unit, family, direction = _BUILT_IN[metric]
        return MetricSpec(metric, unit, family, direction, "built-in")
    for suffix, unit, family, maybe_direction in _SUFFIXES:
        if metric.endswith(suffix):
            return MetricSpec(metric, unit, family, maybe_direction, f"suffix {suffix}")
    return MetricSpec(metric, "", Family.ACCURACY, None, "unknown")


def unit_of(metric: str) -> str:
    return lookup(metric).unit


def family_of(metric: str) -> Family:
    return lookup(metric).family


def direction_from_limit(limit: Limit) -> Direction | None:
    """What a budget limit says of direction: its `direction` key, else `min` only ⇒ higher, `max` only
    ⇒ lower; a two-sided band without the key says nothing."""
    if limit.direction is not None:
        return Direction(limit.direction)
    if limit.min is not None and limit.max is None:
        return Direction.HIGHER
    if limit.max is not None and limit.min is None:
        return Direction.LOWER
    return None


def resolve(metric: str, limit: Limit | None = None) -> MetricSpec:
    """The facts on `metric` a record carries: the vocabulary's, with a direction from `limit` where the
    vocabulary has none. Raises `ConfigError` when an explicit `direction` key contradicts a known one."""
    spec = lookup(metric)
    if limit is None:
        return spec
    if spec.direction is not None:
        if limit.direction is not None and Direction(limit.direction) is not spec.direction:
            raise ConfigError(f"budget limit {metric}: direction = {limit.direction!r}, but {metric} is "
                              f"{spec.direction.value}-is-better ({spec.origin}); drop the key or name the "
                              "metric differently")
        return spec
    direction = direction_from_limit(limit)
    return spec if direction is None else replace(spec, direction=direction, origin="budget")


def parse_direction(value: object, where: str) -> str:
    """Validate a `direction` value read from a file; returns "higher" or "lower"."""
    try:
        return Direction(str(value)).value
    except ValueError:
        raise ConfigError(f"{where}: direction = {value!r}; write \"higher\" or \"lower\"") from None
