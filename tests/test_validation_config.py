"""Every bad input of issue 9's findings, per file type: a ConfigError naming the file, the entry, the key,
what was seen and the fix; and, through pytest, a start-up UsageError (exit 4), never a run that passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_edgehil.config.budgets import load_budgets
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.kinds import load_kinds_file
from pytest_edgehil.config.lab import load_lab
from pytest_edgehil.config.pairs import check_budget_targets, generate_pairs
from pytest_edgehil.config.schema import describe_input
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.sim.profile import PROFILES_FILE, load_profiles

from .conftest import BUDGETS, MODELS

HW = 'kind = "coral"\nport = "/dev/ttyEDGEHIL-absent"\n'


def _raises(load, path: Path, content: str | bytes, fragments: tuple[str, ...]) -> str:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    for fragment in (str(path), *fragments):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "\n" not in message  # one line: a start-up error or `edgehil` reads as one
    return message


# --------------------------------------------------------------------------------------------- lab file

LAB_CASES = [
    ("simulated-string", f'[devices.c]\n{HW}simulated = "false"\n',
     ("[devices.c]", "`simulated` must be true or false", "got 'false'")),
    ("baud-string", f'[devices.c]\n{HW}baud = "fast"\n', ("[devices.c]", "`baud` must be an integer", "'fast'")),
    ("name-empty", f'[devices.""]\n{HW}', ("device name(s) ''", "letters, digits")),
    ("name-with-space-and-slash", f'[devices."a b/c"]\n{HW}', ("device name(s) 'a b/c'",)),
    ("baud-zero", f'[devices.c]\n{HW}baud = 0\n', ("[devices.c]", "`baud` must be > 0", "got 0")),
    # 4e9 and a 20-digit baud passed `> 0` and crashed pyserial (OverflowError) in every test of the board.
    ("baud-huge", f'[devices.c]\n{HW}baud = 4000000000\n', ("[devices.c]", "`baud` must be ≤ 100000000", "got 4000000000")),
    ("baud-20-digits", f'[devices.c]\n{HW}baud = 99999999999999999999\n', ("[devices.c]", "`baud`")),
    ("port-number", '[devices.c]\nkind = "coral"\nport = 5\n', ("[devices.c]", "`port` must be a string", "got 5")),
    ("devices-not-a-table", "devices = [1, 2]\n", ("`devices` must be a table", "got [1, 2]")),
    ("device-not-a-table", "[devices]\nc = 5\n", ("[devices.c]", "must be a table", "got 5")),
    ("missing-kind", '[devices.coral-2]\nport = "/dev/ttyACM1"\n',
     ("[devices.coral-2]", "missing kind", "coral, cortex-m4")),
    ("kind-typo", '[devices.c]\nkind = "corall"\nport = "/dev/x"\n',
     ("[devices.c]", "'corall' is not a known device kind", "did you mean 'coral'?")),
    ("unknown-key", f'[devices.c]\n{HW}buad = 9600\n', ("[devices.c]", "unknown key `buad`", "did you mean `baud`?")),
    ("section-typo", f'[device.c]\n{HW}', ("unknown key `device`", "did you mean `devices`?", "missing devices")),
    ("channel-zero", f'[devices.c]\n{HW}analyzer_channel = 0\n', ("[devices.c]", "`analyzer_channel` must be ≥ 1")),
    ("supply-nan", f'[devices.c]\n{HW}supply_v = nan\n', ("[devices.c]", "`supply_v` must be a finite number")),
    ("supply-negative", f'[devices.c]\n{HW}supply_v = -5.0\n', ("[devices.c]", "`supply_v` must be > 0")),
    ("lab-name-number", f'[lab]\nname = 3\n[devices.c]\n{HW}', ("[lab]", "`name` must be a string")),
    ("no-devices", '[lab]\nname = "x"\n', ("missing devices",)),
    ("empty-devices", "devices = {}\n", ("names no devices",)),
    ("no-port", '[devices.c]\nkind = "coral"\n', ("[devices.c]", "needs `port`", "simulated = true")),
    ("not-utf8", b'[devices.c]\nkind = "coral"\nport = "/dev/tty\xff"\n', ("not UTF-8", "0xff", "line 3")),
    ("not-toml", "[devices.c\n", ("not valid TOML",)),
]


@pytest.mark.parametrize(("content", "fragments"), [c[1:] for c in LAB_CASES], ids=[c[0] for c in LAB_CASES])
def test_bad_lab_file_names_entry_and_key(tmp_path: Path, content: str | bytes, fragments: tuple[str, ...]) -> None:
    _raises(load_lab, tmp_path / "lab.toml", content, fragments)


def test_a_string_false_never_turns_a_board_into_a_twin(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(f"[devices.c]\n{HW}simulated = false\n", encoding="utf-8")
    assert not load_lab(path).devices["c"].simulated  # the boolean is read as written ...
    path.write_text(f'[devices.c]\n{HW}simulated = "false"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="simulated"):  # ... and a string is refused, not coerced to True
        load_lab(path)


def test_device_named_after_its_kind_needs_no_kind_key(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text('[devices.coral]\nport = "/dev/x"\nbaud = 9600\n', encoding="utf-8")
    device = load_lab(path).devices["coral"]
    assert (device.kind, device.baud) == ("coral", 9600)


# ------------------------------------------------------------------------------------------ budget table

ENTRY = '[[budget]]\nmodel = "qsegment"\ndevice = "coral"\n[budget.limits]\n'
QC = "[[budget]] #1 (qsegment-coral)"
BUDGET_CASES = [
    ("max-nan", ENTRY + "inference_ms = { max = nan }\n", (QC, "`limits.inference_ms.max` must be a finite number")),
    ("max-inf", ENTRY + "inference_ms = { max = inf }\n", (QC, "finite number", "got inf")),
    ("min-above-max", ENTRY + "inference_ms = { min = 5.0, max = 3.0 }\n",
     (QC, "limits.inference_ms", "min = 5 is above max = 3")),
    ("negative-latency", ENTRY + "inference_ms = { max = -1 }\n", (QC, "inference_ms.max = -1", "never negative")),
    # Bounds no value can meet, found from outside: a score above 1, a negative error, an empty entry.
    ("score-above-one", ENTRY + "roc_auc = { min = 1.5 }\n", (QC, "roc_auc.min = 1.5", "fraction from 0 to 1")),
    ("negative-error", ENTRY + "gaze_error_cm = { max = -1 }\n", (QC, "gaze_error_cm.max = -1", "never negative")),
    ("no-limits", '[[budget]]\nmodel = "qsegment"\ndevice = "coral"\n', (QC, "has no limits")),
    ("empty-limits", ENTRY, (QC, "has no limits")),
    ("negative-energy-min", ENTRY + "end_to_end_mj = { min = -0.5, max = 3 }\n", (QC, "end_to_end_mj.min = -0.5")),
    ("max-with-unit", ENTRY + 'inference_ms = { max = "0.9 ms" }\n',
     (QC, "`limits.inference_ms.max` must be a number", "got '0.9 ms'")),
    ("max-bool", ENTRY + "inference_ms = { max = true }\n", (QC, "must be a number", "got True")),
    ("misspelt-metric", ENTRY + "inferance_ms = { max = 1.0 }\n",
     (QC, "unknown metric `inferance_ms`", "did you mean `inference_ms`?", "add `direction = ")),
    ("no-bound", ENTRY + 'inference_ms = { source = "x" }\n', (QC, "needs `max` and/or `min`")),
    ("bare-number", ENTRY + "inference_ms = 1.0\n", (QC, "write { max = 1.0 } or { min = 1.0 }")),
    ("marginal-one", ENTRY + "inference_ms = { max = 1.0, marginal = 1.0 }\n", (QC, "`limits.inference_ms.marginal` must be < 1")),
    ("marginal-negative", ENTRY + "inference_ms = { max = 1.0, marginal = -0.1 }\n", (QC, "must be ≥ 0")),
    ("limit-key-typo", ENTRY + "inference_ms = { max = 1.0, sourse = 'x' }\n",
     (QC, "unknown key `limits.inference_ms.sourse`", "did you mean `source`?")),
    ("direction-bad", ENTRY + "band = { min = 1.0, direction = 'up' }\n", (QC, "must be one of 'higher' or 'lower'")),
    ("defaults-marginal", "[defaults]\nmarginal = 2\n", ("[defaults]", "`marginal` must be < 1")),
    ("missing-device", '[[budget]]\nmodel = "qsegment"\n', ("[[budget]] #1", "missing device")),
    ("model-number", '[[budget]]\nmodel = 3\ndevice = "coral"\n', ("[[budget]] #1", "`model` must be a string")),
    ("budget-not-a-list", 'budget = "x"\n', ("`budget` must be a list",)),
    ("section-typo", '[[budgets]]\nmodel = "x"\n', ("unknown key `budgets`", "did you mean `budget`?")),
    ("duplicate", ENTRY + "inference_ms = { max = 1.0 }\n" + ENTRY + "inference_ms = { max = 2.0 }\n",
     ("[[budget]] #2 (qsegment-coral)", "a second budget for qsegment-coral", "#1")),
    ("not-utf8", ENTRY.encode() + b"inference_ms = { max = 1.0, source = '\xc3\x28' }\n", ("not UTF-8", "line 5")),
]


@pytest.mark.parametrize(("content", "fragments"), [c[1:] for c in BUDGET_CASES], ids=[c[0] for c in BUDGET_CASES])
def test_bad_budget_table_names_entry_and_key(tmp_path: Path, content: str | bytes, fragments: tuple[str, ...]) -> None:
    _raises(load_budgets, tmp_path / "budgets.toml", content, fragments)


def test_user_metrics_are_accepted_when_declared_or_unlike_any_builtin(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(ENTRY + "top1 = { min = 0.7 }\ninference_us = { max = 900.0, direction = 'lower' }\n"
                    "log_likelihood = { min = -3.5, max = -1.0 }\n", encoding="utf-8")
    (entry,) = load_budgets(path)
    assert sorted(entry.limits) == ["inference_us", "log_likelihood", "top1"]
    assert entry.limits["log_likelihood"].min == -3.5  # no unit, no family of costs: a negative bound is fine


def test_budget_entries_that_match_nothing_fail_listing_what_exists(tmp_path: Path) -> None:
    from pytest_edgehil.config.lab import simulated_lab

    catalog, lab = ModelCatalog(MODELS), simulated_lab()
    path = tmp_path / "budgets.toml"
    path.write_text(ENTRY.replace("qsegment", "qsegmnet") + "inference_ms = { max = 1.0 }\n"
                    + ENTRY.replace('"coral"', '"corla"') + "inference_ms = { max = 1.0 }\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        check_budget_targets(load_budgets(path), catalog, lab, [])
    message = str(info.value)
    for fragment in ("2 budget entries can never run", "[[budget]] #1 (qsegmnet-coral)", "did you mean 'qsegment'?",
                     "lowres_seg, qsegment, tinytracker", "[[budget]] #2 (qsegment-corla)", "did you mean 'coral'?",
                     "imx500", str(path)):
        assert fragment in message, (fragment, message)
    check_budget_targets(load_budgets(BUDGETS), catalog, lab, [])  # the shipped table passes


def test_a_model_given_by_path_carries_a_budget_by_stem_or_path(tmp_path: Path) -> None:
    from pytest_edgehil.config.lab import simulated_lab

    model = tmp_path / "nets" / "my_net.tflite"
    model.parent.mkdir()
    model.write_bytes((MODELS / "qsegment.tflite").read_bytes())
    lab, catalog = simulated_lab(), ModelCatalog(MODELS)
    for named in ("my_net", "nets/my_net.tflite"):
        path = tmp_path / "budgets.toml"
        path.write_text(f'[[budget]]\nmodel = "{named}"\ndevice = "coral"\n[budget.limits]\n'
                        "inference_ms = { max = 7.0 }\n", encoding="utf-8")
        budgets = load_budgets(path)
        check_budget_targets(budgets, catalog, lab, [str(model)])
        pairs = [p for p in generate_pairs(budgets, lab, [str(model)], ["coral"]) if p.device == "coral"]
        assert [(p.model_name, p.budget is not None) for p in pairs] == [("my_net", True)], named
        assert Path(pairs[0].model).resolve() == model.resolve()
    path.write_text('[[budget]]\nmodel = "nets/absent.tflite"\ndevice = "coral"\n[budget.limits]\n'
                    "inference_ms = { max = 7.0 }\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="absent.tflite'?: no such file"):
        check_budget_targets(load_budgets(path), catalog, lab, [])


# ------------------------------------------------------------------------------------------- model cards

CARD_CASES = [
    ("null", "null", ("must be a JSON object", "got null")),
    ("number", "5", ("must be a JSON object", "got 5")),
    ("list", "[1]", ("must be a JSON object", "got a list")),
    ("range-reversed", json.dumps({"input": {"range": [1.0, 0.0]}}), ("`input.range`", "low < high")),
    ("range-string", json.dumps({"input": {"range": "0..1"}}), ("`input.range` must be a list", "'0..1'")),
    ("range-per-channel-input", json.dumps({"input": {"range": [[0, 1], [0, 1]]}}), ("`input.range`", "one [low, high]")),
    ("macs-negative", json.dumps({"macs": -1}), ("`macs` must be ≥ 0", "got -1")),
    ("macs-string", json.dumps({"macs": "25M"}), ("`macs` must be an integer",)),
    ("task-typo", json.dumps({"tsak": "x"}), ("unknown key `tsak`", "did you mean `task`?")),
    ("input-key-typo", json.dumps({"input": {"shap": [1]}}), ("unknown key `input.shap`", "did you mean `shape`?")),
    ("metric-nan", '{"metrics": {"roc_auc": NaN}}', ("`metrics.roc_auc` must be a finite number",)),
    ("huge-integer", '{"parameters": ' + "9" * 401 + "}", ("`parameters` must be ≤", "an integer of 401 digits")),
    ("huge-integer-past-the-digit-limit", '{"parameters": ' + "9" * 5000 + "}", ("not valid JSON",)),
    ("not-json", "{", ("not valid JSON",)),
    ("not-utf8", b'{"task": "\xff"}', ("not UTF-8",)),
]


@pytest.mark.parametrize(("content", "fragments"), [c[1:] for c in CARD_CASES], ids=[c[0] for c in CARD_CASES])
def test_bad_model_card_names_the_key(tmp_path: Path, content: str | bytes, fragments: tuple[str, ...]) -> None:
    (tmp_path / "m.tflite").write_bytes((MODELS / "qsegment.tflite").read_bytes())
    _raises(lambda _: ModelCatalog(tmp_path).get("m"), tmp_path / "m.json", content, fragments)


def test_shipped_cards_pass_and_a_large_integer_is_described_not_printed() -> None:
    for name in ModelCatalog(MODELS).names():
        assert ModelCatalog(MODELS).get(name).card["name"] == name
    assert describe_input(10 ** 400) == "an integer of 401 digits"


# ------------------------------------------------------------------------------- kinds and twin profiles

def test_bad_kinds_file_names_the_kind_and_key(tmp_path: Path) -> None:
    _raises(load_kinds_file, tmp_path / "kinds.toml", '[kind.x]\ndisplay_name = "X"\nram_bytes = -1\n',
            ("[kind.x]", "`ram_bytes` must be ≥ 0"))
    _raises(load_kinds_file, tmp_path / "kinds.toml", '[kind.x]\ndisplay_name = "X"\nsuply_v = 3.3\n',
            ("[kind.x]", "unknown key `suply_v`", "did you mean `supply_v`?"))
    _raises(load_kinds_file, tmp_path / "kinds.toml", "[kind.x]\nram_bytes = 1\n", ("[kind.x]", "missing display_name"))


def test_bad_profiles_file_names_the_device_and_key(tmp_path: Path) -> None:
    shipped = PROFILES_FILE.read_text(encoding="utf-8")
    _raises(load_profiles, tmp_path / "p.toml", shipped.replace("jitter_rel = 0.01\n", "jitter_rel = -0.01\n", 1),
            ("[device.imx500]", "`jitter_rel` must be ≥ 0"))
    _raises(load_profiles, tmp_path / "p.toml", shipped.replace("idle_w = 0.30", 'idle_w = "0.30 W"', 1),
            ("[device.coral]", "`power.idle_w` must be a number"))
    _raises(load_profiles, tmp_path / "p.toml", shipped.replace("int8_macs_per_s = 0.25e9", "int8_macs_per_s = 0", 1),
            ("[device.spresense]", "`int8_macs_per_s` must be > 0"))
    assert set(load_profiles()) >= {"imx500", "coral"}


# ------------------------------------------------------------------------- through pytest: exit 4, at start-up

STARTUP_CASES = [
    ("lab", f'[devices.c]\n{HW}simulated = "false"\n', "*lab file*[[]devices.c[]]*`simulated` must be true or false*"),
    ("lab", "[devices]\nc = 5\n", "*lab file*[[]devices.c[]]*must be a table*"),
    ("budgets", ENTRY + "inference_ms = { max = nan }\n", "*budget table*#1 (qsegment-coral)*finite number*"),
    ("budgets", ENTRY + "inferance_ms = { max = 6.0 }\n", "*budget table*did you mean `inference_ms`?*"),
    ("budgets", ENTRY.replace("qsegment", "qsegmnet") + "inference_ms = { max = 6.0 }\n",
     "*budget entry can never run*did you mean 'qsegment'?*"),
]


@pytest.mark.parametrize(("which", "content", "pattern"), STARTUP_CASES)
def test_bad_input_is_a_usage_error_at_start_up(edgehil_project: pytest.Pytester, which: str, content: str,
                                                pattern: str) -> None:
    edgehil_project.makepyfile(test_x="def test_x():\n    pass\n")
    path = edgehil_project.path / f"{which}.toml"
    path.write_text(content, encoding="utf-8")
    result = edgehil_project.runpytest(f"--{which}={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-edgehil: {pattern}"])
    assert "Traceback" not in result.stderr.str() and "INTERNALERROR" not in result.stdout.str()


def test_bad_model_card_is_a_usage_error_at_start_up(edgehil_project: pytest.Pytester) -> None:
    models = edgehil_project.path / "models"
    models.mkdir()
    for name in ("qsegment", "tinytracker", "lowres_seg", "tinytracker_float"):
        (models / f"{name}.tflite").write_bytes((MODELS / f"{name}.tflite").read_bytes())
    (models / "qsegment.json").write_text("null", encoding="utf-8")
    edgehil_project.makeini(f"[pytest]\nedgehil_models_dir = {models}\nedgehil_budgets = {BUDGETS}\n")
    edgehil_project.makepyfile(test_x="def test_x():\n    pass\n")
    result = edgehil_project.runpytest("--device=coral")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-edgehil: model card *qsegment.json: must be a JSON object*got null*"])
