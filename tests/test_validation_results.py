"""Results files and baselines from outside: every bad one is a ConfigError naming the record and field,
and `edgehil compare` / `edgehil report` exit 2 with one line (1 is `compare`'s "regression")."""

from __future__ import annotations

import json
import math
import typing
from pathlib import Path

import pytest

from pytest_edgehil.cli import EXIT_ERROR, EXIT_OK, main
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.store import FORMAT, SCHEMA_VERSION, load_results
from pytest_edgehil.results.vocabulary import Family

RUN = {"started_at": "2025-05-10T02:00:00+00:00", "backend": "SIMULATED", "complete": True}
RECORD = {"pair": "qsegment-coral", "metric": "inference_ms", "value": 5.0, "unit": "ms", "raw": [5.0, 5.1]}


def _file(**patch: object) -> dict[str, object]:
    return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "run": dict(RUN), "records": [dict(RECORD)],
            "traces": [], **patch}


def _record(**patch: object) -> dict[str, object]:
    return _file(records=[dict(RECORD), {**RECORD, **patch}])


BIG = "9" * 401
CASES = [
    ("schema-version-0", json.dumps(_file(schema_version=0)), ("`schema_version` must be ≥ 1", "got 0")),
    ("schema-version-negative", json.dumps(_file(schema_version=-3)), ("`schema_version` must be ≥ 1", "got -3")),
    ("schema-version-bool", json.dumps(_file(schema_version=True)), ("`schema_version` must be an integer",)),
    ("schema-version-newer", json.dumps(_file(schema_version=SCHEMA_VERSION + 1)), ("written by a newer",)),
    ("not-utf8", json.dumps(_file()).encode().replace(b"SIMULATED", b"SIMUL\xe9TED"), ("not UTF-8", "0xe9")),
    ("401-digit-value", json.dumps(_file()).replace('"value": 5.0', f'"value": {BIG}'),
     ("record #1", "`value` must be a number", "an integer of 401 digits")),
    ("integer-past-the-digit-limit", json.dumps(_file()).replace('"value": 5.0', '"value": ' + "9" * 5000),
     ("not valid JSON",)),
    ("nan-sample", json.dumps(_record(raw=[1.0, float("nan")])), ("record #2", "`raw[]` must be a finite number", "(item 2)")),
    ("value-string", json.dumps(_record(value="5 ms")), ("record #2", "`value` must be a number", "'5 ms'")),
    ("samples-negative", json.dumps(_record(samples=-1)), ("record #2", "`samples` must be ≥ 0")),
    # Found from outside: accepted, and compared as SAME (the gate reads `raw`) or as a count.
    ("negative-latency-value", json.dumps(_record(value=-5.45, family="latency")),
     ("record #2", "inference_ms (a latency figure) is negative (-5.45)")),
    ("negative-energy-sample", json.dumps(_record(metric="inference_mj", unit="mJ", family="energy",
                                                  raw=[0.05, -0.05])), ("record #2", "is negative (-0.05)")),
    # Found by a new-user review: a score of -5 was compared as UNKNOWN and the gate passed.
    ("negative-score", json.dumps(_record(metric="roc_auc", unit="", family="accuracy", value=-5.0)),
     ("record #2", "roc_auc (an accuracy figure) is negative (-5)")),
    ("samples-401-digits", json.dumps(_record(samples=int(BIG))), ("record #2", "not a count of measurements")),
    ("unit-number", json.dumps(_record(unit=5)), ("record #2", "`unit` must be a string", "got 5")),
    ("direction-bad", json.dumps(_record(direction="up")), ("record #2", "`direction` must be one of")),
    ("family-bad", json.dumps(_record(family="speed")), ("record #2", "`family` must be one of")),
    ("context-list", json.dumps(_record(context=[1])), ("record #2", "`context` must be an object")),
    ("record-not-object", json.dumps(_file(records=[5])), ("record #1", "must be an object", "got 5")),
    ("records-missing", json.dumps({k: v for k, v in _file().items() if k != "records"}), ("missing records",)),
    ("run-complete-string", json.dumps(_file(run={**RUN, "complete": "yes"})),
     ("run: `complete` must be true or false",)),
    ("run-devices-string", json.dumps(_file(run={**RUN, "devices": "coral"})), ("run: `devices` must be a list",)),
    ("run-seed-float", json.dumps(_file(run={**RUN, "seed": 1.5})), ("run: `seed` must be an integer",)),
    ("trace-power-strings", json.dumps(_file(traces=[{"pair": "p", "time_s": [0.0], "power_w": ["1 W"]}])),
     ("trace #1", "`power_w[]` must be a number")),
    ("trace-lengths", json.dumps(_file(traces=[{"pair": "p", "time_s": [0.0, 1.0], "power_w": [1.0]}])),
     ("trace #1", "1 power samples for 2 times")),
    ("trace-window-shape", json.dumps(_file(traces=[{"pair": "p", "time_s": [0.0], "power_w": [1.0],
                                                     "windows_s": [[0.0]]}])), ("trace #1", "`windows_s[]`")),
    ("top-level-list", "[]", ("not a pytest-edgehil results file",)),
]
IDS = [c[0] for c in CASES]


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(("content", "fragments"), [c[1:] for c in CASES], ids=IDS)
def test_bad_results_file_names_the_record_and_field(tmp_path: Path, content: str | bytes,
                                                     fragments: tuple[str, ...]) -> None:
    path = _write(tmp_path / "base.json", content)
    with pytest.raises(ConfigError) as info:
        load_results(path)
    message = str(info.value)
    for fragment in (f"results file {path}", *fragments):
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize(("content", "fragments"), [c[1:] for c in CASES], ids=IDS)
@pytest.mark.parametrize("command", ["compare", "report"])
def test_compare_and_report_exit_2_on_a_bad_file_never_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         command: str, content: str | bytes,
                                                         fragments: tuple[str, ...]) -> None:
    good = _write(tmp_path / "good.json", json.dumps(_file()))
    bad = _write(tmp_path / "bad.json", content)
    argv = ["compare", str(good), str(bad)] if command == "compare" else \
        ["report", str(bad), "--html", str(tmp_path / "r.html")]
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"edgehil {command}: error: results file {bad}") and fragments[0] in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_valid_file_with_keys_of_a_newer_minor_version_still_compares(tmp_path: Path) -> None:
    newer = _file(run={**RUN, "run_id": "20250510-0200-abc"}, records=[{**RECORD, "p99": 6.0}])
    base = _write(tmp_path / "base.json", json.dumps(_file()))
    new = _write(tmp_path / "new.json", json.dumps(newer))
    assert main(["compare", str(base), str(new)]) == EXIT_OK
    assert load_results(new).records[0].raw == [5.0, 5.1]


def test_a_null_value_still_reads_as_nan(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", json.dumps(_file(records=[{**RECORD, "value": None, "raw": None}])))
    assert math.isnan(load_results(path).records[0].value)  # written as null when not finite (fps of an empty run)


def test_record_families_are_the_vocabularys() -> None:
    from pytest_edgehil.results.schema import RecordSchema

    annotation = RecordSchema.model_fields["family"].annotation
    assert set(typing.get_args(annotation)) == {f.value for f in Family} | {""}
