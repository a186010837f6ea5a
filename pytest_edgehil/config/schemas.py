"""Schemas of the configuration files: lab file, device kinds, budget table (model cards: `card_schemas.py`).

Every key, its type and range, in one place (docs/config-files.md is written from these). Checks that
need the registries (is this kind registered, does it have a twin, is this model in the catalog) are the
loaders' (`lab.py`, `budgets.py`, `pairs.py`); what a file says on its own is checked here. Imported only
inside the loaders: pydantic is not loaded by `import pytest_edgehil.plugin`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pytest_edgehil.config.budgets import DEFAULT_MARGINAL_REL
from pytest_edgehil.config.metric_hints import built_in_hint
from pytest_edgehil.config.schema import StrictModel
from pytest_edgehil.config.suggest import closest
from pytest_edgehil.results.vocabulary import BUILT_IN_METRICS, RENAMED_METRICS, Direction, Family, lookup

NonEmpty = Annotated[str, Field(min_length=1)]
# labgrid's rule for tag keys (labgrid.remote.common.TAG_KEY, anchored here); place names and tag values
# as labgrid-client takes them on a command line.
TAG_KEY = r"^[a-z][a-z0-9_]+$"
PLACE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_BAUD = 100_000_000  # 100 Mbaud: above any UART or USB-CDC rate, below the OS's C int
Finite = float  # every float is finite: StrictModel sets allow_inf_nan=False
# A size or count: what a 64-bit device or analysis can hold (a 401-digit "parameters" is a broken file).
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]

# ---------------------------------------------------------------------------------------------- lab file


class LabTable(StrictModel):
    """`[lab]`: the lab's name (default: the file's stem), where its datasets live, and the lab's own
    board kinds and twin calibrations (files relative to the lab file; docs/extending.md)."""

    name: NonEmpty | None = None
    dataset_root: NonEmpty | None = None  # relative to the lab file
    kinds: NonEmpty | None = None  # a kinds file (`[kind.NAME]` tables, as the shipped kinds.toml)
    profiles: NonEmpty | None = None  # a twin profiles file (`[device.KIND]` tables, as the shipped profiles.toml)
    # A labgrid coordinator, "HOST[:PORT]" (default port 20408): where `place`/`tags` devices are reserved.
    # Without it, labgrid's own LG_COORDINATOR environment variable (docs/lab-farm.md).
    coordinator: NonEmpty | None = None


class FaultTable(StrictModel):
    """One armed fault in `[[devices.NAME.faults.armed]]` (kinds: docs/faults.md, "Device link faults")."""

    kind: NonEmpty
    count: Annotated[int, Field(ge=1)] = 1
    after: Annotated[int, Field(ge=0)] = 0
    direction: Literal["", "request", "reply", "firmware"] = ""
    on: NonEmpty | None = None
    delay_s: Annotated[float, Field(ge=0)] = 0.5
    down_s: Annotated[float, Field(ge=0)] = 0.2
    wipe_flash: bool = False
    version: Annotated[int, Field(ge=0, le=255)] = 9


class FaultsTable(StrictModel):
    """`[devices.NAME.faults]`: faults the device's twin injects on its link (simulated devices only)."""

    rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    seed: Annotated[int, Field(ge=0)] = 0
    kinds: list[NonEmpty] | None = None  # rate mode draws among these; default: every kind
    delay_s: Annotated[float, Field(ge=0)] = 0.5
    down_s: Annotated[float, Field(ge=0)] = 0.2
    wipe_flash: bool = False
    armed: list[FaultTable] = Field(default_factory=list)


class DeviceTable(StrictModel):
    """`[devices.NAME]`: one board. `kind` defaults to NAME only where NAME is itself a kind."""

    kind: NonEmpty | None = None
    simulated: bool = False
    port: NonEmpty | None = None
    usb_serial: NonEmpty | None = None  # the USB descriptor's serial number: finds the port
    # The board's own serial number as its firmware reports it in HELLO (the records' `device_serial`):
    # checked at bring-up, so a board swapped onto another entry's port is refused, not measured.
    device_serial: NonEmpty | None = None
    # default: the kind's default_baud. Bounded by what a UART or USB-CDC line can be set to (the OS
    # takes a C int; 4e9 passed a bare `> 0` and crashed pyserial with OverflowError in every test).
    baud: Annotated[int, Field(gt=0, le=MAX_BAUD)] | None = None
    analyzer: NonEmpty | None = None
    analyzer_channel: Annotated[int, Field(ge=1)] = 1
    supply_v: Annotated[float, Field(gt=0)] | None = None
    current_range_a: Annotated[float, Field(gt=0)] | None = None
    faults: FaultsTable | None = None
    # A simulated device's analyzer twin speaks this driver's dialect (default: the N6705C's).
    twin_analyzer: Literal["keysight-n6705c", "rs-ngm202", "keithley-2281s"] | None = None
    # A USB power monitor on the supply, "KIND:ADDRESS" (instruments/monitor.py); a simulated device's
    # monitor twin instead of the SCPI analyzer twin.
    monitor: NonEmpty | None = None
    twin_monitor: Literal["ppk2", "lpm01a"] | None = None
    # An on-board agent (`edgehil agent`): the file holding the shared token (relative to the lab file, ~ ok).
    token_file: NonEmpty | None = None
    # Catalog models to run on this device without a budget (measured figures recorded, nothing asserted).
    models: list[NonEmpty] = Field(default_factory=list)
    # "eembc": the unmodified MLPerf Tiny reference firmware (text protocol) with `firmware_model` compiled in.
    protocol: Literal["edgehil", "eembc"] = "edgehil"
    firmware_model: NonEmpty | None = None
    # eembc: firmware built for energy mode (EE_CFG_ENERGY_MODE=1) toggles its timestamp GPIO instead of
    # printing m-lap-us; the monitor's digital input samples it. `timestamp_hold_us`: how long th_timestamp
    # holds the line low (the reference asks for >= 1 µs; a sampling monitor needs >= 2 of its intervals).
    eembc_mode: Literal["performance", "energy"] = "performance"
    timestamp_hold_us: Annotated[float, Field(gt=0)] | None = None
    # eembc: how th_results() prints m-results (link/eembc.py): "rounded" ("%0.3f") or "truncated" (the
    # keyword_spotting port's digits); default: the reference port's for `firmware_model` (kws01: truncated).
    eembc_results_print: Literal["rounded", "truncated"] | None = None
    # eembc: the port is EEMBC's IO manager (MLPerf Tiny's interface board, the energy setup), which relays
    # `dut CMD%` to the board (link/eembc.py); `baud` is then the host side of it.
    eembc_io_manager: bool = False
    # A board in a labgrid farm (docs/lab-farm.md): one named place, or any free place whose tags match.
    place: Annotated[str, Field(pattern=PLACE_NAME)] | None = None
    tags: dict[Annotated[str, Field(pattern=TAG_KEY)], Annotated[str, Field(pattern=PLACE_NAME)]] | None = None

    @model_validator(mode="after")
    def _one_way_to_reach(self) -> DeviceTable:
        farm = [key for key in ("place", "tags") if getattr(self, key) is not None]
        if len(farm) == 2:
            raise ValueError("give `place` (one named labgrid place) or `tags` (any free place with these tags), "
                             "not both")
        if self.tags is not None and not self.tags:
            raise ValueError("`tags = {}` matches every place of the farm; name at least one, e.g. "
                             "tags = { board = \"coral\" }")
        local = [key for key in ("port", "usb_serial") if getattr(self, key) is not None]
        if farm and (local or self.simulated):
            raise ValueError(f"`{farm[0]}` reaches the board through the labgrid coordinator; drop "
                             f"{' and '.join(f'`{k}`' for k in local) or '`simulated`'} (the place's "
                             "NetworkSerialPort gives the port)")
        return self


NonNegative = Annotated[float, Field(ge=0)]


class PhysicsTable(StrictModel):
    """`[physics]`: the simulated bench's effects (`sim.bench_physics`); an omitted key keeps its default."""

    ideal: bool = False  # start from every effect off instead of the realistic defaults
    clock_ppm: Annotated[float, Field(gt=-1e4, lt=1e4)] | None = None
    timer_resolution_s: NonNegative | None = None
    trigger_latency_s: NonNegative | None = None
    trigger_jitter_s: NonNegative | None = None
    sampling: Literal["instrument", "integrating", "point"] | None = None
    front_end_bandwidth_hz: NonNegative | None = None
    decoupling_tau_s: NonNegative | None = None
    layer_power_rel: Annotated[float, Field(ge=0, lt=1)] | None = None
    session_drift_rel: Annotated[float, Field(ge=0, lt=0.5)] | None = None
    load_ripple_rel: Annotated[float, Field(ge=0, lt=1)] | None = None
    load_ripple_hz: Annotated[float, Field(gt=0)] | None = None
    instrument_accuracy_rel: NonNegative | None = None
    instrument_drift_rel: NonNegative | None = None


class LabFile(StrictModel):
    lab: LabTable = LabTable()
    physics: PhysicsTable = PhysicsTable()
    devices: dict[str, DeviceTable]

    @field_validator("devices")
    @classmethod
    def _some_devices(cls, devices: dict[str, DeviceTable]) -> dict[str, DeviceTable]:
        if not devices:
            raise ValueError("names no devices; add a [devices.NAME] table per board")
        # A name is typed on the command line (--device), shown in test ids and used in lock-file names.
        bad = [name for name in devices if not DEVICE_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"device name(s) {', '.join(map(repr, bad))}: use letters, digits, '-', '_' and "
                             "'.', starting with a letter or digit (e.g. coral-1)")
        return devices


# ------------------------------------------------------------------------------------------ device kinds


class KindTable(StrictModel):
    """`[kind.NAME]` in kinds.toml: hardware facts. Sizes in bytes (0: unknown), voltage in volts."""

    display_name: NonEmpty
    ram_bytes: Count = 0
    flash_bytes: Count = 0
    default_baud: Annotated[int, Field(gt=0, le=MAX_BAUD)] = 115200
    supply_v: Annotated[float, Field(gt=0)] | None = None
    float_compute: bool = True  # false: the board runs quantized (integer) models only


class KindsFile(StrictModel):
    kind: dict[str, KindTable] = Field(default_factory=dict)


# ------------------------------------------------------------------------------------------ budget table

Marginal = Annotated[float, Field(ge=0, lt=1)]
Tolerance = Annotated[float, Field(gt=0, lt=1)]  # relative: 0.07 is 7 % of the published figure
# Families whose quantities are never negative: a negative bound can only be a typo (or a sign error).
_NON_NEGATIVE = (Family.LATENCY, Family.ENERGY, Family.POWER, Family.THROUGHPUT, Family.FOOTPRINT)


class LimitTable(StrictModel):
    """One metric's limit: `max` and/or `min` in the metric's unit, optional marginal band and provenance."""

    max: Finite | None = None
    min: Finite | None = None
    marginal: Marginal | None = None  # relative band inside the limit that passes with a warning
    published: Finite | None = None
    # With `published`: the limit is published × (1 ± tolerance) on the metric's bad side (budgets.py).
    tolerance: Tolerance | None = None
    source: str = ""
    direction: Literal["higher", "lower"] | None = None  # declares a metric of the user's own

    @model_validator(mode="before")
    @classmethod
    def _not_a_bare_number(cls, data: Any) -> Any:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            # ValueError, not TypeError: pydantic turns only ValueError into a validation error.
            raise ValueError(f"a bare number: write {{ max = {data} }} or {{ min = {data} }} so the "  # noqa: TRY004
                             "direction is explicit")
        return data

    @model_validator(mode="after")
    def _bounds(self) -> LimitTable:
        if self.tolerance is not None and self.published is None:
            raise ValueError(f"tolerance = {self.tolerance:g} without `published`: a tolerance is relative to "
                             "the published figure; add `published = …` or write `max`/`min` instead")
        if self.max is None and self.min is None and self.tolerance is None:
            raise ValueError("needs `max` and/or `min`, or `published` with a `tolerance` (a limit with "
                             "neither checks nothing)")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min = {self.min:g} is above max = {self.max:g}: no value can pass; swap them")
        return self


TYPO_CUTOFF = 0.75  # difflib ratio above which an undeclared name is taken for a misspelt built-in


def check_metric_names(limits: dict[str, LimitTable]) -> list[str]:
    """Problems with the metrics of one budget entry: a name that looks like a misspelt built-in
    (`inferance_ms`: its test would be skipped, silently), a negative bound of a cost.

    A name of the user's own is accepted when it is registered, declares `direction`, or resembles no
    built-in (`top1`, `map50`: task metrics whose direction their `min`/`max` gives, as the vocabulary
    documents); one that resembles a built-in must be declared to be taken as meant."""
    problems = []
    for metric, limit in limits.items():
        spec = lookup(metric)
        declared = (metric in BUILT_IN_METRICS or metric in RENAMED_METRICS  # an old name: renamed on load
                    or spec.origin == "registered" or limit.direction is not None)
        bounds = {"min": limit.min, "max": limit.max, "published": limit.published}
        said = None if declared else built_in_hint(metric, bounds, BUILT_IN_METRICS)
        hint = None if declared or said else closest(metric, BUILT_IN_METRICS, cutoff=TYPO_CUTOFF)
        if said is None and hint is not None:
            said = f"did you mean `{hint}`?"
        if said is not None:
            problems.append(
                f"unknown metric `{metric}`; {said} Built-in metrics: {', '.join(BUILT_IN_METRICS)}. "
                f"If {metric} is a metric of your own, add `direction = \"lower\"` or `\"higher\"` to its limit "
                f"(or call pytest_edgehil.results.vocabulary.register_metric({metric!r}, ...) in a conftest)")
            continue
        problem = published_bound_conflict(metric, limit, spec.direction)
        if problem:
            problems.append(problem)
            continue
        if spec.origin == "unknown":
            continue
        # A bound no value can meet fails every run (or, as a `max`, passes none): refuse it here.
        unit_free_score = spec.family is Family.ACCURACY and not spec.unit and spec.direction is not None
        for bound in ("max", "min", "published"):
            value = getattr(limit, bound)
            if value is None:
                continue
            if (spec.family in _NON_NEGATIVE or spec.family is Family.ACCURACY) and value < 0:
                article = "an" if spec.family.value[0] in "aeiou" else "a"
                problems.append(f"{metric}.{bound} = {value:g}: {article} {spec.family.value} figure"
                                f"{f' in {spec.unit}' if spec.unit else ''} is never negative")
            elif unit_free_score and value > 1:
                problems.append(f"{metric}.{bound} = {value:g}: {metric} is a fraction from 0 to 1 "
                                f"(write {value / 100:g} for {value:g} %)")
    return problems


def published_bound_conflict(metric: str, limit: LimitTable, direction: Direction | None) -> str | None:
    """Why `published` + `tolerance` contradicts an explicit bound of the same limit, or None.

    The tolerance sets the bound on the metric's bad side (`max` for lower-is-better, `min` for higher-is-
    better, both for a metric of unknown direction); an explicit bound on that side says the same thing
    twice, possibly differently, so it is refused. A bound on the other side (a sanity floor) is kept."""
    if limit.tolerance is None:
        return None
    if limit.direction is not None:
        direction = Direction(limit.direction)
    derived = {"max"} if direction is Direction.LOWER else {"min"} if direction is Direction.HIGHER else {"max", "min"}
    both = sorted(b for b in derived if getattr(limit, b) is not None)
    if not both:
        return None
    return (f"{metric}: `{both[0]} = {getattr(limit, both[0]):g}` and `published = {limit.published:g}` with "
            f"`tolerance = {limit.tolerance:g}` both set the {'upper' if both[0] == 'max' else 'lower'} bound; "
            f"keep one (the tolerance derives {' and '.join(sorted(derived))} from the published figure)")


class BudgetTable(StrictModel):
    """`[[budget]]`: the limits of one model on one device kind."""

    model: NonEmpty  # a catalog name, or a model file's stem or path (see docs/config-files.md)
    device: NonEmpty  # a device kind
    limits: dict[str, LimitTable] = Field(default_factory=dict, validate_default=True)
    note: str = ""
    replace: bool = False  # true: this entry replaces a lower layer's limits of the pair instead of extending them

    @field_validator("limits")
    @classmethod
    def _metrics(cls, limits: dict[str, LimitTable]) -> dict[str, LimitTable]:
        if not limits:  # every test of the pair would be skipped, and the run would exit 0
            raise ValueError("has no limits: add a [budget.limits] table with at least one metric "
                             "(e.g. inference_ms = { max = 5.0 }), or remove the entry")
        problems = check_metric_names(limits)
        if problems:
            raise ValueError("; ".join(problems))
        return limits


class DefaultsTable(StrictModel):
    marginal: Marginal = DEFAULT_MARGINAL_REL


class BudgetFile(StrictModel):
    defaults: DefaultsTable = DefaultsTable()
    budget: list[BudgetTable] = Field(default_factory=list)


def budget_label(index: str | int, raw: Any) -> str:
    """`[[budget]] #3 (qsegment-coral)`: the entry as a reader finds it in the file."""
    label = f"[[budget]] #{int(index) + 1}" if isinstance(index, int) else f"[[budget]] {index}"
    if isinstance(raw, dict) and isinstance(raw.get("model"), str) and isinstance(raw.get("device"), str):
        label += f" ({raw['model']}-{raw['device']})"
    return label
