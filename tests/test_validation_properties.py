"""Properties of every input parser: whatever TOML/JSON-shaped value (or byte string) it is given, it
returns or raises `ConfigError`, never another exception. Keys are drawn mostly from the real ones so the
values reach the schemas' inner checks, not only the top-level "unknown key"."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_edgehil.config.budgets import budgets_from_data, load_budgets
from pytest_edgehil.config.catalog import card_from_data
from pytest_edgehil.config.lab import lab_from_data, load_lab
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.store import FORMAT, load_results, results_from_json

KEYS = ("lab", "devices", "name", "dataset_root", "kind", "simulated", "port", "usb_serial", "baud", "analyzer",
        "analyzer_channel", "supply_v", "current_range_a", "coral", "imx500", "budget", "defaults", "marginal",
        "model", "device", "limits", "note", "inference_ms", "top1", "max", "min", "published", "source",
        "direction", "task", "input", "output", "range", "shape", "macs", "parameters", "metrics", "format",
        "schema_version", "run", "records", "traces", "started_at", "backend", "pair", "metric", "value", "unit",
        "raw", "samples", "family", "time_s", "power_w", "windows_s", "complete")
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10 ** 30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["coral", "imx500", "qsegment", "higher", "lower", FORMAT, "SIMULATED", "ms"]))
KEY = st.sampled_from(KEYS) | st.text(max_size=8)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY, inner, max_size=5),
                      max_leaves=25)
TABLES = st.dictionaries(KEY, VALUES, max_size=6)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_config_errors(parse, value: object) -> None:
    try:
        parse(value)
    except ConfigError:
        pass


@PROPERTY
@given(TABLES)
def test_lab_parser_raises_only_config_errors(data: dict[str, object]) -> None:
    _only_config_errors(lambda d: lab_from_data(d, Path("lab.toml")), data)


@PROPERTY
@given(st.fixed_dictionaries({"budget": st.lists(TABLES, max_size=3)}, optional={"defaults": TABLES}))
def test_budget_parser_raises_only_config_errors(data: dict[str, object]) -> None:
    _only_config_errors(lambda d: budgets_from_data(d, Path("budgets.toml")), data)


@PROPERTY
@given(VALUES)
def test_card_parser_raises_only_config_errors(data: object) -> None:
    _only_config_errors(lambda d: card_from_data(d, "m.json"), data)


@PROPERTY
@given(st.fixed_dictionaries({"format": st.just(FORMAT), "schema_version": st.integers(-3, 3) | SCALARS},
                             optional={"run": TABLES, "records": st.lists(TABLES, max_size=3),
                                       "traces": st.lists(TABLES, max_size=2)}))
def test_results_parser_raises_only_config_errors(data: dict[str, object]) -> None:
    _only_config_errors(lambda d: results_from_json(d, "r.json"), data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_file_readers_raise_only_config_errors_on_any_bytes(tmp_path_factory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "input"
    path.write_bytes(content)
    for load in (load_lab, load_budgets, load_results):
        _only_config_errors(load, path)
