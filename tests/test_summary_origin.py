"""A summary table that holds one pair's metric twice says where each row came from.

An A/B run (`--edgehil-ab`) beside the energy suite records `inference_mj` and `inference_mw` of
qsegment-imx500 twice: once from the A/B test (the candidate's samples of the interleaved rounds) and once
from the energy suite's own measurement. They are two measurements (different windows, different values),
so both stay, each row naming its test, and the A/B row which side it is.
"""

from __future__ import annotations

import re

import pytest

from pytest_edgehil.results.records import MetricRecord, ab_context
from pytest_edgehil.results.summary import summary_lines

from .conftest import MODELS, REPO
from .test_gate_ab import project, run_ab, shipped_baseline

ENERGY_SUITE = (REPO / "suites" / "test_energy.py").read_text(encoding="utf-8")


def _rows(lines: list[str], pair: str, metric: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line) for line in lines if line.startswith(pair) and f"  {metric}  " in line]


def test_an_ab_run_beside_the_energy_suite_labels_each_duplicate_row(pytester: pytest.Pytester) -> None:
    project(pytester, MODELS / "qsegment.tflite")
    pytester.makepyfile(test_energy=ENERGY_SUITE)
    base = shipped_baseline(pytester)
    result = run_ab(pytester, str(base))
    assert result.ret == pytest.ExitCode.OK
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "edgehil summary" in line)
    table = lines[start + 1:]
    header = re.split(r"\s{2,}", table[0])
    assert header[-1] == "from", header
    for metric in ("inference_mj", "inference_mw"):
        rows = _rows(table, "qsegment-imx500", metric)
        assert len(rows) == 2, rows
        origins = sorted(row[-1] for row in rows)
        assert origins == ["test_ab.py::test_ab_inference_energy (A/B candidate)",
                           "test_energy.py::test_inference_energy"], rows
    # A metric recorded once says where it came from too (the column is the table's, not the row's).
    (e2e,) = _rows(table, "qsegment-imx500", "end_to_end_mj")
    assert e2e[-1] == "test_energy.py::test_end_to_end_energy"


def _record(metric: str, value: float, **extra: object) -> MetricRecord:
    return MetricRecord(pair="m-d", model="m", device="d", kind="d", metric=metric, value=value, unit="mJ",
                        backend="SIMULATED", status="info", **extra)  # type: ignore[arg-type]


def test_the_origin_column_appears_only_where_a_pair_metric_repeats() -> None:
    once = [_record("inference_mj", 1.0), _record("end_to_end_mj", 2.0)]
    plain = summary_lines(once, origins=["t.py::test_a[m-d]", "t.py::test_b[m-d]"])
    assert "from" not in re.split(r"\s{2,}", plain[0])
    assert plain == summary_lines(once)
    twice = [_record("inference_mj", 1.0), _record("inference_mj", 1.5, context=ab_context(
        [[1.4]], [[1.5]], baseline_sha256="ab" * 32, source="main"))]
    lines = summary_lines(twice, origins=["t.py::test_energy[m-d]", "t.py::test_ab[m-d]"])
    rows = {row[3]: row[-1] for row in (re.split(r"\s{2,}", line) for line in lines[2:])}
    assert rows == {"1 mJ": "t.py::test_energy", "1.5 mJ": "t.py::test_ab (A/B candidate)"}
