"""The HTML report shows every record of a pair × metric, labelled by the test it came from.

An `--edgehil-ab` run beside the energy suite records qsegment-imx500's `inference_mj` twice: the A/B
test's candidate side and the energy suite's own measurement, two windows with two values. The report
showed the first only, unlabelled, so one measurement (and its verdict) was hidden; the terminal summary
names both (`test_summary_origin.py`). The figures expected here are read from the results file's JSON,
not through the report's reader.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html import unescape

import numpy as np
import pytest

from pytest_edgehil.results.history import History
from pytest_edgehil.results.records import ab_context
from pytest_edgehil.results.report import build_report_html, read_results, write_report
from pytest_edgehil.results.report_runs import ResultsRun
from pytest_edgehil.results.summary import format_value

from .conftest import MODELS, REPO
from .report_support import make_night, make_record, parse, save
from .test_gate_ab import project, run_ab, shipped_baseline

ENERGY_SUITE = (REPO / "suites" / "test_energy.py").read_text(encoding="utf-8")
PAIR = "qsegment-imx500"
AB_TEST = f"suites/test_ab.py::test_ab_inference_energy[{PAIR}]"
ENERGY_TEST = f"suites/test_energy.py::test_inference_energy[{PAIR}]"


def _ab_twin(record, value: float):
    """`record` as the A/B test's candidate side of it: another test, another value, the paired rounds."""
    return replace(record, value=value, test=AB_TEST, raw=[value] * 3,
                   context={**(record.context or {}), **ab_context([[value * 0.99]], [[value]],
                                                                   baseline_sha256="cd" * 32, source="main")})


def _night_with_duplicate(tmp_path, night: int, value_energy: float, value_ab: float):
    results = make_night(night, pairs=(PAIR,))
    energy = replace(make_record(PAIR, "inference_mj", value_energy), test=ENERGY_TEST)
    others = [r for r in results.records if r.metric != "inference_mj"]
    results.records = [_ab_twin(energy, value_ab), *others, energy]  # the A/B record first, as test_ab.py sorts
    return read_results(save(tmp_path / f"night-{night}.json", results))


def _blocks(page: str, metric: str) -> list[dict]:
    return [b for b in parse(page).blocks if b["pair"] == PAIR and b["metric"] == metric and "absent" not in b["class"]]


def test_both_records_of_a_repeated_metric_are_shown_each_labelled(tmp_path) -> None:
    run = _night_with_duplicate(tmp_path, 0, 0.0114, 0.0131)
    blocks = _blocks(build_report_html([run]), "inference_mj")
    assert sorted((b["origin"], float(b["text"].split("mJ")[0].split()[-1])) for b in blocks) == [
        ("suites/test_ab.py::test_ab_inference_energy (A/B candidate)", 0.0131),
        ("suites/test_energy.py::test_inference_energy", 0.0114)]
    assert all("from " + b["origin"] in unescape(b["text"]) for b in blocks)
    # A metric recorded once carries no label: the pair row says all there is.
    (power,) = _blocks(build_report_html([run]), "inference_mw")
    assert power["origin"] == "" and " from " not in power["text"]


def test_the_counts_and_the_over_budget_line_count_each_record(tmp_path) -> None:
    run = _night_with_duplicate(tmp_path, 0, 0.0114, 0.0131)
    fail_ab = replace(next(r for r in run.records if r.test == AB_TEST), status="fail")
    run = replace(run, records=tuple(fail_ab if r.test == AB_TEST else r for r in run.records))
    page = unescape(build_report_html([run]))
    counts = re.search(r'<p class="counts">(.*?)</p>', page)
    assert counts is not None
    shown = {label: int(n) for n, label in re.findall(r"<span>(\d+) ([^<]+)</span>", counts.group(1))}
    assert sum(shown.values()) == len(run.records)
    assert shown["FAIL"] == 1
    assert f"over budget: {PAIR} inference_mj (suites/test_ab.py::test_ab_inference_energy (A/B candidate))" in page


@pytest.mark.parametrize("through", ["files", "history"])
def test_trend_rows_follow_each_test_across_nights(tmp_path, through: str) -> None:
    """Through a history store too, which reads the older runs without their context (the A/B mark's
    source): one test's row must not break in two there."""
    runs = [_night_with_duplicate(tmp_path, night, 0.0114 + 0.0001 * night, 0.0131 + 0.0001 * night)
            for night in range(3)]
    if through == "files":
        page = build_report_html(runs)
    else:
        out = tmp_path / "report.html"
        with History(tmp_path / "history.sqlite") as history:
            write_report([tmp_path / f"night-{night}.json" for night in range(3)], out, history=history)
        page = out.read_text(encoding="utf-8")
    svg = re.search(r'<svg class="trend" data-metric="inference_mj".*?</svg>', page)
    assert svg is not None
    rows = {unescape(pair): body for pair, body in re.findall(r'<g class="trend-row" data-pair="([^"]+)"(.*?)</g>',
                                                               svg.group(0))}
    assert set(rows) == {f"{PAIR} · suites/test_ab.py::test_ab_inference_energy",
                         f"{PAIR} · suites/test_energy.py::test_inference_energy"}
    for pair, body in rows.items():
        y_min = float(re.search(r'data-y-min="([^"]+)"', f'data-pair="x"{body}').group(1))
        y_max = float(re.search(r'data-y-max="([^"]+)"', f'data-pair="x"{body}').group(1))
        expected = [0.0131 + 0.0001 * n for n in range(3)] if "test_ab" in pair else [0.0114 + 0.0001 * n for n in range(3)]
        assert y_min < min(expected) and max(expected) < y_max, (pair, y_min, y_max)
        # The other test's values lie off this row's axis: the row is one test's series, not a mix.
        other = [0.0114 + 0.0001 * n for n in range(3)] if "test_ab" in pair else [0.0131 + 0.0001 * n for n in range(3)]
        assert all(not y_min <= v <= y_max for v in other), (pair, y_min, y_max)


def test_an_ab_run_beside_the_energy_suite_shows_both_energies_in_the_report(pytester: pytest.Pytester) -> None:
    project(pytester, MODELS / "qsegment.tflite")
    pytester.makepyfile(test_energy=ENERGY_SUITE)
    base = shipped_baseline(pytester)
    out = pytester.path / "run.json"
    result = run_ab(pytester, str(base), f"--edgehil-save={out}")
    assert result.ret == pytest.ExitCode.OK
    saved = json.loads(out.read_text(encoding="utf-8"))["records"]
    expected = sorted((r["test"].partition("[")[0] + (" (A/B candidate)" if "ab" in (r["context"] or {}) else ""),
                       format_value(r["value"])) for r in saved if r["pair"] == PAIR and r["metric"] == "inference_mj")
    assert len(expected) == 2 and expected[0][1] != expected[1][1], expected
    run: ResultsRun = read_results(out)
    blocks = _blocks(build_report_html([run]), "inference_mj")
    shown = sorted((b["origin"], b["text"].split("mJ")[0].split()[-1]) for b in blocks)
    assert shown == expected
    assert np.isfinite([float(v) for _, v in shown]).all()
