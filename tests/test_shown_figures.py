"""Every figure shown (terminal table, `-v` line, failure message, HTML table and trends, `edgehil compare`)
reads as the recorded one: a value beside its budget is on the same side of it as the recorded value, a
trend's baseline is the run before the newest, a baseline figure is the one the ratio was taken against.
Expected values are computed here from the recorded data, never by the code under test."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import pytest

from pytest_edgehil.cli import main
from pytest_edgehil.config.budgets import Limit
from pytest_edgehil.plugin.html_extras import values_table_html
from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.report import build_report_html
from pytest_edgehil.results.report_runs import read_results
from pytest_edgehil.results.report_table import metric_html
from pytest_edgehil.results.report_trends import ROW_H, trend_plot
from pytest_edgehil.results.summary import summary_lines
from pytest_edgehil.results.terminal import value_vs_budget

from .report_support import make_night, save, write_nights

# A 0.25 µs device timer's 859.0 µs median comes out of float arithmetic as 0.8590000000001652 ms (a real
# run, seed 3): over a budget of max = 0.859 by 2e-13, so FAIL, though 4 digits print it as 0.859.
JUST_OVER = (0.8590000000001652, Limit("inference_ms", max=0.859, source="edge"))
JUST_UNDER_MIN = (0.9199996, Limit("roc_auc", min=0.92, source="edge"))


def _record(value: float, limit: Limit) -> MetricRecord:
    # The verdict from the recorded numbers themselves, not from Limit.check (the code under test).
    fails = (limit.max is not None and value > limit.max) or (limit.min is not None and value < limit.min)
    unit = limit.unit
    bound = " and ".join(([f"≥ {limit.min:g}"] if limit.min is not None else [])
                         + ([f"≤ {limit.max:g}"] if limit.max is not None else []))
    return MetricRecord(pair="p-d", model="p", device="d", kind="d", metric=limit.metric, value=value, unit=unit,
                        backend="SIMULATED", status="fail" if fails else "pass",
                        bound=bound + (f" {unit}" if unit else ""), margin_rel=-1e-9 if fails else 0.01,
                        limit_min=limit.min, limit_max=limit.max, marginal_rel=0.0)


def _number_before(text: str, anchor: str) -> float:
    """The number printed right before `anchor` (`0.859 ms vs`, `= 0.9200 vs budget`)."""
    match = re.search(r"([0-9][0-9.e+-]*)\s*(?:ms\s*)?" + re.escape(anchor), text)
    assert match, f"no number before {anchor!r} in {text!r}"
    return float(match.group(1))


def _reads_as_recorded(shown: float, value: float, limit: Limit) -> None:
    """The figure shown stands where the recorded value stands against each bound: beyond it, at it or
    inside it, so a reader comparing the printed value with the printed budget gets the verdict."""
    for bound in (limit.min, limit.max):
        if bound is not None:
            side = (value > bound) - (value < bound)
            assert (shown > bound) - (shown < bound) == side, (shown, value, bound)


@pytest.mark.parametrize(("value", "limit"), [JUST_OVER, JUST_UNDER_MIN])
def test_a_value_just_past_its_limit_is_not_printed_as_the_limit(value: float, limit: Limit) -> None:
    record = _record(value, limit)
    assert record.status == "fail"
    row = next(line for line in summary_lines([record]) if line.startswith("p-d"))
    cells = re.split(r"\s{2,}", row)
    _reads_as_recorded(float(cells[3].split()[0]), value, limit)
    assert "FAIL" in cells
    _reads_as_recorded(_number_before(value_vs_budget(record), " vs "), value, limit)
    block = metric_html(record, record.metric)
    shown = re.search(r'<div class="value">([^ <]+)', block)
    assert shown
    _reads_as_recorded(float(shown.group(1)), value, limit)
    extras_row = re.search(r"<td>inference_ms</td><td>([^ <]+)|<td>roc_auc</td><td>([^ <]+)", values_table_html([record]))
    assert extras_row
    _reads_as_recorded(float(extras_row.group(1) or extras_row.group(2)), value, limit)
    message = limit.check(value).describe(device="d", model="p", backend="SIMULATED")
    _reads_as_recorded(_number_before(message, " vs budget"), value, limit)


def test_a_value_inside_its_limit_still_reads_four_digits() -> None:
    value, limit = 0.8571234, Limit("inference_ms", max=0.859)
    assert value_vs_budget(_record(value, limit)).startswith("inference_ms 0.8571 ms vs ≤ 0.859 ms")


def _baseline_value(svg: str, pair: str) -> tuple[float | None, float]:
    """The value the dashed baseline line of `pair`'s row stands for, read back through the row's y range,
    and how far off that reading can be (y is written to 0.1 px)."""
    row = re.search(rf'<g class="trend-row" data-pair="{re.escape(pair)}" data-y-min="([^"]+)" '
                    rf'data-y-max="([^"]+)"><rect class="axes" x="[^"]+" y="([^"]+)"(.*?)</g>', svg)
    assert row, svg[:400]
    lo, hi, top, body = float(row.group(1)), float(row.group(2)), float(row.group(3)), row.group(4)
    line = re.search(r'<line class="baseline" x1="[^"]+" x2="[^"]+" y1="([^"]+)"', body)
    per_px = (hi - lo) / ROW_H
    return (None if line is None else hi - (float(line.group(1)) - top) * per_px), 0.051 * per_px


def test_the_trend_baseline_is_the_run_before_the_newest_even_where_a_pair_lacks_a_night(tmp_path: Path) -> None:
    pair = "qsegment-imx500"
    nights = [make_night(i) for i in range(4)]
    # Night 3 (the newest, killed) lacks the metric for this pair; night 2 has it: the gate's baseline.
    nights[3].records = [r for r in nights[3].records if not (r.pair == pair and r.metric == "inference_mw")]
    runs = [read_results(p) for p in write_nights(tmp_path, nights)]
    before_newest = next(r.value for r in nights[2].records if r.pair == pair and r.metric == "inference_mw")
    shown, tolerance = _baseline_value(trend_plot("inference_mw", "mW", runs), pair)
    assert shown is not None
    assert abs(shown - before_newest) <= tolerance, (shown, before_newest)

    # The run before the newest lacks it: nothing to compare with, so no baseline line (not night 1's).
    nights = [make_night(i) for i in range(4)]
    nights[2].records = [r for r in nights[2].records if not (r.pair == pair and r.metric == "inference_mw")]
    (tmp_path / "gap").mkdir()
    runs = [read_results(p) for p in write_nights(tmp_path / "gap", nights)]
    assert _baseline_value(trend_plot("inference_mw", "mW", runs), pair)[0] is None
    page = build_report_html(runs)
    assert f"{pair} inference_mw: measured in this run" in page  # the gate says NEW: it has no baseline either


def test_compare_shows_the_baseline_the_ratio_was_taken_against(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Over several baseline sessions the ratio is the new median over the sessions' centre (the geometric
    mean of their medians, docs/gate.md): that centre is the baseline figure, not the latest session's."""
    drifts = [1.00, 0.97, 1.00, 1.06]  # the latest session ran 6 % high: its figure is not the baseline
    base_dir = tmp_path / "nightly"
    base_dir.mkdir()
    paths = [save(base_dir / f"n{i}.json", make_night(i, drift=d)) for i, d in enumerate(drifts)]
    new = save(tmp_path / "new.json", make_night(9, drift=1.0))
    assert main(["compare", str(base_dir), str(new), "--history", "off", "--json"]) in (0, 1)
    shown = {(c["pair"], c["metric"]): c for c in json.loads(capsys.readouterr().out)["comparisons"]}
    assert main(["compare", str(base_dir), str(new), "--history", "off"]) in (0, 1)
    text = capsys.readouterr().out
    sessions = [json.loads(p.read_text())["records"] for p in paths]
    checked = 0
    for (pair, metric), c in shown.items():
        raws = [next(r["raw"] for r in recs if r["pair"] == pair and r["metric"] == metric) for recs in sessions]
        if not all(raws) or not c["method"].startswith("session medians"):
            continue
        centre = math.exp(statistics.fmean(math.log(statistics.median(raw)) for raw in raws))
        assert c["base_value"] == pytest.approx(centre, rel=1e-9), (pair, metric)
        assert c["ratio"] == pytest.approx(c["new_value"] / c["base_value"], rel=1e-9)
        row = next(line for line in text.splitlines() if re.match(rf"{re.escape(pair)}\s+{metric}\s", line))
        assert re.split(r"\s{2,}", row)[2].split()[0] == f"{centre:.4g}", row
        checked += 1
    assert checked >= 6


def test_a_one_session_baseline_still_shows_its_recorded_value(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    base, new = write_nights(tmp_path, [make_night(0), make_night(1, drift=1.02)])
    assert main(["compare", str(base), str(new), "--history", "off", "--json"]) in (0, 1)
    shown = json.loads(capsys.readouterr().out)["comparisons"]
    recorded = {(r["pair"], r["metric"]): r["value"] for r in json.loads(base.read_text())["records"]}
    assert {(c["pair"], c["metric"]): c["base_value"] for c in shown} == recorded
