"""Write the key tables of docs/lab.md, docs/budgets.md and docs/extending.md from the schemas.

Every key, its type, range and default come from the pydantic models (`config/schemas.py`,
`sim/profile_schema.py`, through `model_json_schema()`); the metric table from the vocabulary
(`results/vocabulary.py`). Only a key's one-line meaning is written by hand: `MEANINGS` below, else the
comment on the field's line in the schema, else the model's field description. A key added to a schema
appears in the docs on the next run (with "(undocumented)" until it has a meaning), and
tests/test_config_docs.py fails while the docs in the repository are stale.

Each table sits between `<!-- BEGIN GENERATED: NAME -->` and `<!-- END GENERATED: NAME -->` in its doc;
the prose around it is edited by hand. Usage: `python scripts/write_config_docs.py` (rewrite) or
`python scripts/write_config_docs.py --check` (exit 1 naming the stale docs).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pytest_edgehil.config import schemas
from pytest_edgehil.results.vocabulary import BUILT_IN_METRICS, lookup
from pytest_edgehil.sim import profile_schema

DOCS = Path(__file__).resolve().parent.parent / "docs"

# Meanings a field's line does not say (or says for a programmer, not a lab). Key: "Model.field".
MEANINGS: dict[str, str] = {
    "LabTable.name": "the lab's name in headers and results (default: the file's stem)",
    "LabTable.dataset_root": "dataset directory (e.g. CHASE_DB1), relative to the lab file",
    "LabTable.kinds": "a file of your own board kinds (`[kind.NAME]` tables, keys below), relative to the lab "
                      "file; see docs/extending.md",
    "LabTable.coordinator": "the labgrid coordinator, \"HOST[:PORT]\" (default port 20408), of the devices "
                            "that name `place` or `tags` (default: $LG_COORDINATOR); see docs/lab-farm.md",
    "DeviceTable.place": "a labgrid place that is this board, reserved through the coordinator instead of a "
                         "`port` (docs/lab-farm.md)",
    "DeviceTable.tags": "any free labgrid place whose tags match (e.g. `{ board = \"coral\" }`), instead of a "
                        "`port`; the place's tags may carry the analyzer wiring (docs/lab-farm.md)",
    "DeviceTable.models": "catalog models to run on this device without a budget (measured figures recorded, "
                          "nothing asserted)",
    "DeviceTable.protocol": "`\"eembc\"`: the unmodified MLPerf Tiny reference firmware (text protocol) with "
                            "`firmware_model` compiled in; `\"edgehil\"`: the framed protocol",
    "DeviceTable.firmware_model": "eembc: the catalog model compiled into the firmware (checked against its "
                                  "`profile%` answer at start-up)",
    "DeviceTable.eembc_mode": "eembc: `\"energy\"` for firmware built for energy mode (EE_CFG_ENERGY_MODE=1), "
                              "which toggles its timestamp GPIO instead of printing m-lap-us",
    "DeviceTable.timestamp_hold_us": "eembc energy mode: how long th_timestamp holds the line low (≥ 1 µs; a "
                                     "sampling monitor needs ≥ 2 of its intervals)",
    "DeviceTable.eembc_results_print": "eembc: how the firmware's th_results() prints m-results: `\"rounded\"` "
                                       "(`%0.3f`) or `\"truncated\"` (the keyword_spotting port's digits); "
                                       "default: the reference port's for `firmware_model` (kws01: truncated)",
    "DeviceTable.eembc_io_manager": "eembc: the port is EEMBC's IO manager (MLPerf Tiny's interface board, the "
                                    "energy setup), which relays `dut CMD%` to the board; `baud` is its host side "
                                    "(docs/hardware.md)",
    "DeviceTable.monitor": "a USB power monitor on the supply, \"KIND:ADDRESS\" (e.g. a PPK2), instead of a SCPI "
                           "analyzer (docs/instruments.md)",
    "DeviceTable.twin_monitor": "a simulated device's monitor twin (`ppk2`, `lpm01a`) instead of the SCPI "
                                "analyzer twin",
    "DeviceTable.token_file": "an on-board agent (`edgehil agent`): the file holding the shared token (relative "
                              "to the lab file, ~ expanded)",
    "LabTable.profiles": "a file of twin calibrations (`[device.KIND]` tables, keys below), relative to the lab "
                         "file: gives your kind a twin, or recalibrates a shipped one",
    "DeviceTable.kind": "what the board is (a registered kind: `imx500`, `coral`, … or one from `[lab] kinds`); "
                        "may be left out only when NAME is itself a kind name",
    "DeviceTable.simulated": "`true`: the kind's twin on a pseudo-terminal (the kind must have a twin profile)",
    "DeviceTable.port": "pyserial URL or device path (`/dev/ttyACM0`, `socket://host:4000`, `rfc2217://…`); a "
                        "hardware device needs `port` or `usb_serial`",
    "DeviceTable.usb_serial": "the serial number in the board's USB descriptor (what `lsusb -v` and "
                              "/dev/serial/by-id show), used to find its port; preferred over `port`, since "
                              "USB-CDC boards come back under a new name after a reset",
    "DeviceTable.device_serial": "the board's own serial number as its firmware reports it in HELLO (the "
                                 "records' `device_serial`; the run summary prints it while unstated): when "
                                 "given, a board that reports another is refused before any test "
                                 "(`WrongBoard`: boards swapped between ports); not for `protocol = \"eembc\"`, nor "
                                 "with farm `tags` (name the `place`)",
    "DeviceTable.baud": "serial speed (default: the kind's `default_baud`)",
    "DeviceTable.analyzer": "VISA resource of the power analyzer on this board's supply (docs/instruments.md)",
    "DeviceTable.analyzer_channel": "the analyzer channel feeding the board",
    "DeviceTable.supply_v": "supply voltage in volts (default: the kind's `supply_v`)",
    "DeviceTable.current_range_a": "the largest current the board draws, in A (picks the analyzer's range, the "
                                   "smallest that holds it: its offset is in every figure's uncertainty; on a "
                                   "simulated device, its twin's too)",
    "DeviceTable.faults": "faults the twin injects on its link (simulated devices only; docs/faults.md)",
    "DeviceTable.twin_analyzer": "a simulated device's analyzer twin speaks this driver's SCPI dialect "
                                 "(default keysight-n6705c)",
    "FaultsTable.rate": "probability that a frame is faulted (rate mode)",
    "FaultsTable.seed": "seed of the rate mode's draws",
    "FaultsTable.kinds": "the fault kinds rate mode draws among (default: every kind; docs/faults.md)",
    "FaultsTable.delay_s": "how long a `delay` fault holds a frame, in s",
    "FaultsTable.down_s": "how long a `reboot` keeps the port away, in s",
    "FaultsTable.wipe_flash": "a `reboot` also loses the flash (the model is uploaded again)",
    "FaultsTable.armed": "faults fired at given frames: one `[[devices.NAME.faults.armed]]` table each",
    "FaultTable.kind": "the fault (docs/faults.md, \"Device link faults\")",
    "FaultTable.count": "how many frames it hits",
    "FaultTable.after": "how many matching frames pass before it fires",
    "FaultTable.direction": "`request`, `reply` or `firmware` (empty: whichever the kind acts on)",
    "FaultTable.on": "only frames of this request type (`RUN`, `LOAD_CHUNK`, …)",
    "FaultTable.delay_s": "as `delay_s` above, for this fault",
    "FaultTable.down_s": "as `down_s` above, for this fault",
    "FaultTable.wipe_flash": "as `wipe_flash` above, for this fault",
    "FaultTable.version": "the protocol version a `bad-version` reply claims",
    "PhysicsTable.ideal": "start from every effect off instead of the realistic defaults",
    "PhysicsTable.clock_ppm": "the device timer runs this many ppm fast against the analyzer (default 20)",
    "PhysicsTable.timer_resolution_s": "tick of the device's stage-edge timer (default 0.25e-6)",
    "PhysicsTable.trigger_latency_s": "GPIO write to analyzer trigger: t = 0 lags the true edge (default 2e-6)",
    "PhysicsTable.trigger_jitter_s": "Gaussian jitter of each trigger (default 0.2e-6)",
    "PhysicsTable.sampling": "`instrument`: as the analyzer's data sheet says (default; the N6781A averages a "
                             "conversion every 5.12 µs, the others integrate); `integrating`: each sample the mean "
                             "over its interval; `point`: the value at the instant",
    "PhysicsTable.front_end_bandwidth_hz": "the analyzer front end's first-order low-pass (default 200e3; 0: none)",
    "PhysicsTable.decoupling_tau_s": "RC between analyzer and load (default 3e-6)",
    "PhysicsTable.layer_power_rel": "inference power varies by op type within the stage by ± this (default 0.05)",
    "PhysicsTable.session_drift_rel": "σ of one power factor drawn per bench session (default 0.015)",
    "PhysicsTable.load_ripple_rel": "amplitude of a periodic part of the load's power, × its idle power (default 0)",
    "PhysicsTable.load_ripple_hz": "rate of that periodic part: a DC-DC's power-save bursts, a timer, a PWM (default 1e3)",
    "PhysicsTable.instrument_accuracy_rel": "the analyzer's own offset and gain errors, drawn per session within this "
                                            "× its data sheet (default 1; 0: an exact instrument)",
    "PhysicsTable.instrument_drift_rel": "1/f drift of the current offset, rms this × the range's offset figure "
                                         "(default 0)",
    "KindTable.display_name": "the board's name in headers and HELLO",
    "KindTable.ram_bytes": "activation memory (tensor arena) a model may use, bytes (0: unknown)",
    "KindTable.flash_bytes": "model storage, bytes (0: unknown)",
    "KindTable.default_baud": "serial speed when the lab's device gives no `baud`",
    "KindTable.supply_v": "nominal supply in volts (a twin needs it; a lab device may give its own)",
    "KindTable.float_compute": "`false`: the board runs quantized (integer) models only (an NPU with no float "
                               "path, as the IMX500): a model computing in float is refused before its upload, "
                               "and by the kind's twin at LOAD",
    "ProfileTable.frame_readout": "per input frame shape `\"HxWxC\"`: the sensor readout of one such frame "
                                  "(its sensor mode): `readout_s`, `readout_w`",
    "ProfileTable.firmware": "the firmware string the twin reports (goes into records' context)",
    "ProfileTable.int8_macs_per_s": "int8 multiply-accumulates per second",
    "ProfileTable.inference_overhead_s": "fixed cost of every inference (invoke, DMA set-up), s",
    "ProfileTable.float_slowdown": "how much slower a float model computes than its int8 twin (≥ 1)",
    "ProfileTable.elementwise_ops_per_s": "elements per second of non-MAC work (absent: one MAC's time each)",
    "ProfileTable.readout_s": "sensor/frame readout before each inference, s",
    "ProfileTable.retrieval_fixed_s": "fixed part of reading the result back, s",
    "ProfileTable.retrieval_bytes_per_s": "rate of reading the output tensor back, bytes/s",
    "ProfileTable.jitter_rel": "relative jitter of each stage's time",
    "ProfileTable.source": "where the figures come from (shown in docs and captions)",
    "ProfileTable.power": "mean supply power per stage: `[device.KIND.power]`",
    "StagePowerTable.idle_w": "between frames, W",
    "StagePowerTable.readout_w": "during readout, W",
    "StagePowerTable.inference_w": "during inference, W",
    "StagePowerTable.retrieval_w": "during retrieval, W",
    "DefaultsTable.marginal": "the default marginal band: a value inside its limit but closer to it than this "
                              "fraction passes with a warning (MARGINAL)",
    "BudgetTable.model": "a model in the catalog (`qsegment`, `my_net` for `fixtures/models/my_net.tflite`), or the "
                         "stem or path of a model given with `--model PATH.tflite` (a path is relative to the table)",
    "BudgetTable.device": "a device **kind**, not a lab device name: every lab device of this kind gets the budget",
    "BudgetTable.limits": "`[budget.limits]`: one limit per metric (keys below); at least one",
    "BudgetTable.note": "free text",
    "BudgetTable.replace": "in a layered table: `true` drops the lower table's limits of this pair instead of "
                           "extending them (see \"How budget tables merge\")",
    "LimitTable.max": "upper bound, in the metric's unit",
    "LimitTable.min": "lower bound, in the metric's unit (at least one of `max`/`min`; `min ≤ max`; bounds of "
                      "latency, energy, power, throughput and footprint metrics are ≥ 0)",
    "LimitTable.tolerance": "with `published`: the limit is published × (1 ± tolerance) on the metric's bad "
                            "side",
    "LimitTable.marginal": "this limit's marginal band (default: `[defaults] marginal` of the same file)",
    "LimitTable.published": "the published figure (paper, datasheet) the limit derives from; shown beside the "
                            "measured value in the terminal, results and report",
    "LimitTable.source": "where the limit comes from (shown with every failure)",
    "LimitTable.direction": "which way is better: declares a metric of your own; must agree with a built-in's",
}


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """`field: type  # comment` lines of the model's source: the comment, per field."""
    found = {}
    for line in inspect.getsource(model).splitlines():
        match = re.match(r"\s{4}(\w+):[^#]*#\s*(.+)$", line)
        if match and not match.group(2).startswith(("noqa", "type:")):
            found[match.group(1)] = match.group(2).strip()
    return found


def _bounds(schema: dict[str, Any]) -> list[str]:
    out = []
    for key, text in (("minimum", "≥ {}"), ("exclusiveMinimum", "> {}"), ("maximum", "≤ {}"),
                      ("exclusiveMaximum", "< {}")):
        if key in schema:
            value = schema[key]
            out.append(text.format(f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else value))
    if schema.get("minLength") == 1:
        out.append("not empty")
    return out


def _type_text(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    texts = []
    for option in options:
        if "$ref" in option:
            texts.append("table")
            continue
        if "enum" in option:
            texts.append(" or ".join(f'`"{v}"`' for v in option["enum"]))
            continue
        kind = option.get("type", "any")
        if kind == "array":
            kind = f"list of {_type_text(option.get('items', {}), defs)}"
        elif kind == "object":
            kind = "table"
        kind = {"number": "number", "integer": "integer", "string": "string", "boolean": "boolean"}.get(kind, kind)
        bounds = _bounds(option)
        texts.append(kind + (f", {' and '.join(bounds)}" if bounds else ""))
    return " or ".join(texts) or "any"


def _default_text(schema: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in schema or schema["default"] is None:
        return "optional"
    value = schema["default"]
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, (list, dict)):
        return "empty" if not value else f"`{value}`"
    return f"`{value}`"


def key_table(model: type[BaseModel], prefix: str = "") -> str:
    """A Markdown table of `model`'s keys: key, type and range, default, meaning."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    comments = _comments(model)
    required = set(schema.get("required", []))
    rows = ["| key | type, range | default | meaning |", "|---|---|---|---|"]
    for name, prop in schema["properties"].items():
        meaning = (MEANINGS.get(f"{model.__name__}.{name}") or comments.get(name)
                   or model.model_fields[name].description or "(undocumented)")
        meaning = meaning.replace("|", "\\|")  # a pipe would end the Markdown cell
        rows.append(f"| `{prefix}{name}` | {_type_text(prop, defs)} | {_default_text(prop, name in required)} "
                    f"| {meaning} |")
    return "\n".join(rows)


def metric_table() -> str:
    """The built-in metrics with unit, family and direction, from the vocabulary."""
    rows = ["| metric | unit | family | better |", "|---|---|---|---|"]
    for metric in BUILT_IN_METRICS:
        spec = lookup(metric)
        better = spec.direction.value if spec.direction else "from the budget"
        rows.append(f"| `{metric}` | {spec.unit or '—'} | {spec.family.value} | {better} |")
    return "\n".join(rows)


def suffix_table() -> str:
    """What a metric name of your own gets from its suffix (the vocabulary's suffix rule)."""
    from pytest_edgehil.results import vocabulary

    rows = ["| name ends in | unit | family | better |", "|---|---|---|---|"]
    for suffix, unit, family, direction in vocabulary._SUFFIXES:
        rows.append(f"| `{suffix}` | {unit or '—'} | {family.value} | "
                    f"{direction.value if direction else 'from the budget'} |")
    return "\n".join(rows)


GENERATED: dict[str, dict[str, Callable[[], str]]] = {
    "lab.md": {
        "lab": lambda: key_table(schemas.LabTable, "[lab] "),
        "devices": lambda: key_table(schemas.DeviceTable),
        "faults": lambda: key_table(schemas.FaultsTable),
        "armed": lambda: key_table(schemas.FaultTable),
        "physics": lambda: key_table(schemas.PhysicsTable),
        "kinds": lambda: key_table(schemas.KindTable),
        "profiles": lambda: key_table(profile_schema.ProfileTable),
        "power": lambda: key_table(profile_schema.StagePowerTable),
    },
    "budgets.md": {
        "budget-file": lambda: key_table(schemas.DefaultsTable, "[defaults] "),
        "budget": lambda: key_table(schemas.BudgetTable),
        "limit": lambda: key_table(schemas.LimitTable),
        "metrics": metric_table,
        "suffixes": suffix_table,
    },
}

_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(.*?)(<!-- END GENERATED: (?P=name) -->)", re.DOTALL)


def render(doc: str, text: str) -> str:
    """`text` with each generated block of `doc` rewritten; KeyError naming a block the script lacks."""
    makers = GENERATED[doc]

    def fill(match: re.Match[str]) -> str:
        return f"{match.group(1)}{makers[match.group('name')]()}\n{match.group(4)}"

    names = {m.group("name") for m in _BLOCK.finditer(text)}
    missing = set(makers) - names
    if missing:
        raise KeyError(f"docs/{doc} lacks the generated block(s) {sorted(missing)}")
    return _BLOCK.sub(fill, text)


def stale_docs(docs: Path = DOCS) -> list[str]:
    return [doc for doc in GENERATED if render(doc, (docs / doc).read_text(encoding="utf-8"))
            != (docs / doc).read_text(encoding="utf-8")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a doc is stale, writing nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_docs()
        for doc in stale:
            print(f"docs/{doc} is stale: run python scripts/write_config_docs.py", file=sys.stderr)
        return 1 if stale else 0
    for doc in GENERATED:
        path = DOCS / doc
        path.write_text(render(doc, path.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote docs/{doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
