"""The report's trend plots: one metric across runs, a row per pair, drawn as inline SVG markup.

Why SVG written here and not matplotlib: a nightly history of 200 pairs × 25 metrics is 5,000 rows, and
a matplotlib subplot costs 50–100 ms to lay out and rasterise, minutes per report; these rows are a
polyline, a few bands and lines and three labels, which text does in microseconds. The markup is inline
(no URL, no script: the page stays self-contained) and each element carries a class (`budget-line`,
`budget-fail`, `marginal-band`, `baseline`, `published`, `values`, `ci`, `over-budget`) and each row its
pair and y range as data attributes, so what the page shows can be checked from its text. No numpy, no
matplotlib, no pytest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape

from pytest_edgehil.results.gate_units import convert, parse_unit
from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.report_runs import ResultsRun, utc_label
from pytest_edgehil.results.store import ResultRecord
from pytest_edgehil.results.summary import format_value

MAX_TREND_TICKS = 8
MIN_TREND_SPAN_REL = 0.10  # a y axis spans at least 10 % of the level: the gate's thresholds are 5-10 %
BUDGET_FAIL_RGB = "#f2b8b0"  # beyond the budget
MARGINAL_RGB = "#ffe08a"  # inside it, within the marginal band
BUDGET_LINE_RGB = "#a02418"
RING_RGB = "#c0392b"
LINE_RGB = "#1f4e79"

# Geometry, in CSS pixels: the size matplotlib gave a 4.6-inch figure at 110 dpi, ~105 px per pair.
WIDTH, LEFT, RIGHT = 506, 58, 8
TITLE_H, ROW_H, ROW_GAP, AXIS_H = 22, 86, 8, 30

Table = Mapping[tuple[str, str], ResultRecord]


def trend_tables(runs: Sequence[ResultsRun]) -> list[dict[tuple[str, str], ResultRecord]]:
    """Each run's records keyed by (trend row, metric). A row is a pair; where any run shown recorded a
    pair's metric from more than one test with different values (an `--edgehil-ab` test beside the energy
    suite), that metric's rows are `pair · test` in every run (its node id without parameters), so each row follows
    one test's measurement rather than whichever record came first that night. Equal values from two tests
    (the footprint suite's `model_kib`) stay one row."""
    grouped = [run.all_by_pair_metric() for run in runs]
    split = {key for table in grouped for key, group in table.items()
             if len({_origin(r) for r in group}) > 1 and len({r.value for r in group}) > 1}
    tables: list[dict[tuple[str, str], ResultRecord]] = []
    for table in grouped:
        rows: dict[tuple[str, str], ResultRecord] = {}
        for (pair, metric), group in table.items():
            for record in group:
                row = f"{pair} · {_origin(record)}" if (pair, metric) in split else pair
                rows.setdefault((row, metric), record)
        tables.append(rows)
    return _in_newest_units(tables)


def _in_newest_units(tables: list[dict[tuple[str, str], ResultRecord]]) -> list[dict[tuple[str, str], ResultRecord]]:
    """Each row's records in the unit of its newest night, where an older night's is of the same dimension
    (J against mJ: `gate_units`, as the gate compares them); one of another dimension stays as recorded. A
    row is drawn on one axis titled with one unit: a night in J beside nights in mJ read as a 1000x drop."""
    newest: dict[tuple[str, str], str] = {}
    for table in tables:
        newest.update((key, record.unit) for key, record in table.items())
    if all(record.unit == newest[key] for table in tables for key, record in table.items()):
        return tables  # the common case: one unit throughout
    converted = []
    for table in tables:
        rows = dict(table)
        for key, record in table.items():
            unit, target = parse_unit(record.unit), parse_unit(newest[key])
            if record.unit != newest[key] and unit and target and unit.dimension == target.dimension:
                rows[key] = convert(record, newest[key], unit.factor / target.factor)
        converted.append(rows)
    return converted


def _origin(record: ResultRecord) -> str:
    """The test without its parameter id. Not `summary.origin_label`'s A/B mark: a history store reads the
    older runs without their context, where the mark comes from, and one test's row would break in two."""
    return (record.test or "(test not recorded)").partition("[")[0]


def run_labels(runs: Sequence[ResultsRun]) -> list[str]:
    """Tick labels: date and minute, with seconds only when two runs would otherwise read the same."""
    labels = [run.label for run in runs]
    if len(set(labels)) < len(labels):
        labels = [utc_label(run.started, run.source, seconds=True) for run in runs]
    return labels


def budget_lines(record: MetricRecord) -> tuple[float | None, float | None, float | None]:
    """(min, max, marginal_rel) of the record's budget as numbers; Nones for an older record or no budget."""
    return record.limit_min, record.limit_max, record.marginal_rel


def _y_range(values: Sequence[float], extra: Sequence[float]) -> tuple[float, float]:
    """Axis limits holding every value, every budget bound and baseline in `extra`, and at least
    MIN_TREND_SPAN_REL of the level, so run-to-run noise of 0.02 % does not fill the plot as a trend."""
    points = [*values, *extra]
    lo, hi = min(points), max(points)
    level = max(abs(v) for v in points) or 1.0
    span = max(hi - lo, MIN_TREND_SPAN_REL * level)
    mid = (lo + hi) / 2
    pad = 0.12 * span
    return mid - span / 2 - pad, mid + span / 2 + pad


def _row(pair: str, metric: str, tables: Sequence[Table], top: float, x_of: list[float], dot: str) -> str:
    """One pair's row: budget bands and bound, baseline, published figure, CI bars, the values, rings."""
    points = [(x, table[(pair, metric)]) for x, table in enumerate(tables) if (pair, metric) in table]
    newest = points[-1][1]
    limit_min, limit_max, marginal = budget_lines(newest)
    # The gate's baseline is the run before the newest, not this pair's previous point: where the newest
    # run lacks the metric (killed, failed test) that point is the night before last; where the run before
    # it lacks the metric, there is no baseline (the gate says NEW), so no line.
    before_newest = tables[-2].get((pair, metric)) if len(tables) > 1 else None
    baseline = before_newest.value if before_newest is not None else None
    ys = [rec.value for _, rec in points]
    extra = [v for v in (limit_min, limit_max, baseline, newest.published) if v is not None]
    extra += [rec.ci_low for _, rec in points if rec.ci_low is not None]
    extra += [rec.ci_high for _, rec in points if rec.ci_high is not None]
    lo_ax, hi_ax = _y_range(ys, extra)
    scale = ROW_H / (hi_ax - lo_ax)

    def y_of(value: float) -> float:
        return round(top + (hi_ax - value) * scale, 1)

    left, right = LEFT, WIDTH - RIGHT
    parts = [f'<g class="trend-row" data-pair="{escape(pair)}" data-y-min="{lo_ax!r}" data-y-max="{hi_ax!r}">',
             (f'<rect class="axes" x="{left}" y="{top}" width="{right - left}" height="{ROW_H}" fill="#fff" '
              'stroke="#c9d0d6"/>')]

    def band(css: str, colour: str, opacity: float, a: float, b: float) -> None:
        y0, y1 = sorted((y_of(a), y_of(b)))
        parts.append(f'<rect class="{css}" x="{left}" y="{y0}" width="{right - left}" height="{round(y1 - y0, 1)}" '
                     f'fill="{colour}" fill-opacity="{opacity}"/>')

    def hline(css: str, value: float, colour: str, dash: str = "") -> None:
        y = y_of(value)
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line class="{css}" x1="{left}" x2="{right}" y1="{y}" y2="{y}" stroke="{colour}"{dashes}/>')

    band_rel = marginal or 0.0
    if limit_max is not None:
        band("budget-fail", BUDGET_FAIL_RGB, 0.55, limit_max, hi_ax)
        band("marginal-band", MARGINAL_RGB, 0.6, limit_max - band_rel * abs(limit_max), limit_max)
        hline("budget-line", limit_max, BUDGET_LINE_RGB)
    if limit_min is not None:
        band("budget-fail", BUDGET_FAIL_RGB, 0.55, lo_ax, limit_min)
        band("marginal-band", MARGINAL_RGB, 0.6, limit_min, limit_min + band_rel * abs(limit_min))
        hline("budget-line", limit_min, BUDGET_LINE_RGB)
    if baseline is not None:
        hline("baseline", baseline, "#555555", "5 3")
    if newest.published is not None:
        hline("published", newest.published, "#2e7d32", "1.5 2")
    bars = "".join(f"M{x_of[x]} {y_of(rec.ci_low if rec.ci_low is not None else rec.value)}"
                   f"V{y_of(rec.ci_high if rec.ci_high is not None else rec.value)}"
                   for x, rec in points if rec.ci_low is not None or rec.ci_high is not None)
    if bars:
        parts.append(f'<path class="ci" d="{bars}" stroke="{LINE_RGB}" stroke-width="1"/>')
    coords = " ".join(f"{x_of[x]},{y_of(rec.value)}" for x, rec in points)
    parts.append(f'<polyline class="values" points="{coords}" fill="none" stroke="{LINE_RGB}" stroke-width="1.3" '
                 f'marker-start="url(#{dot})" marker-mid="url(#{dot})" marker-end="url(#{dot})"/>')
    parts += [f'<circle class="over-budget" cx="{x_of[x]}" cy="{y_of(rec.value)}" r="5.5" fill="none" '
              f'stroke="{RING_RGB}" stroke-width="1.6"/>' for x, rec in points if rec.status == "fail"]
    for value, anchor in ((hi_ax, "hanging"), (lo_ax, "auto")):
        parts.append(f'<text class="tick" x="{left - 4}" y="{y_of(value)}" text-anchor="end" '
                     f'dominant-baseline="{anchor}">{escape(format_value(value))}</text>')
    parts.append(f'<text class="pair" x="{left + 4}" y="{top + 11}">{escape(pair)}</text></g>')
    return "".join(parts)


def trend_plot(metric: str, unit: str, runs: Sequence[ResultsRun], tables: Sequence[Table] | None = None,
               pairs: Sequence[str] | None = None) -> str:
    """One metric across runs (oldest first), a row per pair on its own y scale, CI bars where recorded;
    SVG markup to place inline in the page. `tables`: `trend_tables(runs)`, when the caller has
    them already, and `pairs` the pairs that recorded the metric (the report computes both once for all
metrics).

    Own scales because pairs differ by orders of magnitude (0.2 ms on one device, 30 ms on another): on
    a shared axis a 5 % drift of the small one is a flat line. Each row shows the newest record's budget
    (red beyond it, yellow its marginal band), the baseline (the run before the newest: what the gate
    compares with) as a dashed line, and the published figure as a dotted one; the axis always holds the
    budget and spans at least 10 % of the level, so noise does not read as a trend.
    """
    tables = trend_tables(runs) if tables is None else tables
    if pairs is None:
        pairs = sorted({pair for table in tables for pair, m in table if m == metric})
    height = TITLE_H + len(pairs) * (ROW_H + ROW_GAP) + AXIS_H
    step = (WIDTH - RIGHT - LEFT) / max(len(runs), 1)
    x_of = [round(LEFT + (i + 0.5) * step, 1) for i in range(len(runs))]
    title = metric + (f" ({unit})" if unit else "")
    dot = "trend-dot-" + re.sub(r"[^A-Za-z0-9_-]", "_", metric)  # ids are page-wide: one per metric
    rows = "".join(_row(pair, metric, tables, TITLE_H + i * (ROW_H + ROW_GAP), x_of, dot)
                   for i, pair in enumerate(pairs))
    labels = run_labels(runs)
    tick_step = max(1, -(-len(runs) // MAX_TREND_TICKS))
    axis_y = TITLE_H + len(pairs) * (ROW_H + ROW_GAP)
    ticks = "".join(f'<text class="run" x="{x_of[i]}" y="{axis_y + 2}" text-anchor="middle" dominant-baseline="hanging">'
                    f"{escape(labels[i])}</text>" for i in range(0, len(runs), tick_step))
    # No xmlns: inline SVG in HTML needs none, and the page carries no URL at all.
    return (f'<svg class="trend" data-metric="{escape(metric)}" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="trend of {escape(title)}" font-family="sans-serif" font-size="9">'
            f'<defs><marker id="{dot}" markerWidth="6" markerHeight="6" refX="3" refY="3" '
            f'markerUnits="userSpaceOnUse"><circle cx="3" cy="3" r="2.4" fill="{LINE_RGB}"/></marker></defs>'
            f'<text class="title" x="{LEFT}" y="15" font-size="12">{escape(title)}</text>{rows}{ticks}</svg>')
