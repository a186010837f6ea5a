"""The report's plots: a power trace with its inference windows, and one metric's trend across runs.

matplotlib is driven through `Figure` + the Agg canvas directly, never pyplot, so building a report
neither opens windows nor changes the global backend of a process that imports this module; it is
imported inside the functions, so reading results files does not pay for it. Each plot comes back as a
PNG data URI for the self-contained page. A trace plot also says where its axes lie in the image and
what they span (`PlotAxes`), so the page can carry the pixel-to-mW mapping beside the picture and a
screenshot of the rendered page can be read back in mW (tests/test_report_trace_screenshot.py).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.report_runs import ResultsRun, Trace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MIN_WINDOW_SPAN_FRACTION = 0.004  # inference windows narrower than this share of the plot are widened to show
MAX_TREND_TICKS = 8
PLOT_DPI = 110  # the figure's own dpi, so the layout drawn is the layout PlotAxes reads back after saving
TRACE_LINE_RGB = "#1f4e79"  # the power line, on the trace and its zoomed panel


@dataclass(frozen=True)
class PlotAxes:
    """Where one axes lies in a plot's PNG and what it spans: enough to map a pixel back to data.

    `box_px` is (left, top, right, bottom) of the axes' data area in image pixels, origin at the image's
    top-left corner (as a browser or Pillow counts); `x_lim`/`y_lim` are the axis limits in the plot's
    units (ms and mW on a trace). A point (x, y) is drawn at column left + (x - x0) / (x1 - x0) * width
    and row bottom - (y - y0) / (y1 - y0) * height.
    """

    name: str
    box_px: tuple[float, float, float, float]
    x_lim: tuple[float, float]
    y_lim: tuple[float, float]


@dataclass(frozen=True)
class Plot:
    """A rendered plot: its PNG data URI, its size in pixels, and the axes drawn in it."""

    uri: str
    size_px: tuple[int, int]
    axes: tuple[PlotAxes, ...]


def _png_data_uri(fig: Figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _render(fig: Figure, named_axes: Sequence[tuple[str, Any]]) -> Plot:
    """Save the figure, then read each axes' box and limits as drawn (constrained layout runs at save)."""
    uri = _png_data_uri(fig)
    width_px, height_px = (round(v) for v in fig.get_size_inches() * fig.dpi)
    axes = []
    for name, ax in named_axes:
        pos = ax.get_position()  # figure fraction, origin bottom-left
        left, top, right, bottom = (round(float(v), 2) for v in (
            pos.x0 * width_px, (1 - pos.y1) * height_px, pos.x1 * width_px, (1 - pos.y0) * height_px))
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        axes.append(PlotAxes(name, (left, top, right, bottom), (float(x0), float(x1)), (float(y0), float(y1))))
    return Plot(uri, (width_px, height_px), tuple(axes))


STAGE_COLOURS = {"readout": "#7fb3d5", "inference": "#f0a030", "retrieval": "#9b59b6"}


def _shade(ax: Any, windows: Sequence[tuple[float, float]], colour: str, label: str, min_width_ms: float) -> None:
    """Shade windows (s) on a ms axis; ones under `min_width_ms` widened around their centre to show."""
    for i, (t0, t1) in enumerate(windows):
        lo, hi = t0 * 1e3, t1 * 1e3
        if hi - lo < min_width_ms:
            mid = (lo + hi) / 2
            lo, hi = mid - min_width_ms / 2, mid + min_width_ms / 2
        ax.axvspan(lo, hi, color=colour, alpha=0.45, linewidth=0, label=label if i == 0 else None)


def _stages(trace: Trace) -> dict[str, list[tuple[float, float]]]:
    """The stage windows to shade: the recorded ones, else the inference windows alone (older files)."""
    return trace.stages_s or ({"inference": list(trace.windows_s)} if trace.windows_s else {})


def trace_plot(trace: Trace) -> str:
    """`trace_figure`'s PNG data URI alone."""
    return trace_figure(trace).uri


def trace_figure(trace: Trace) -> Plot:
    """Power over time with readout, inference and retrieval shaded and labelled; beside it, one inference
    zoomed at full resolution (when the trace carries it); the PNG with its axes ("trace" in ms and mW,
    and "zoom" when drawn).

    The points are peak-detect decimated (`results.decimate`), so a dip narrower than a pixel still
    reaches its depth. Time 0 is the trigger; samples before it are the pre-trigger record (the idle
    level, and the readout of the first frame, which starts before its trigger edge).
    """
    from matplotlib.figure import Figure

    zoomed = len(trace.zoom_time_s) > 1
    fig = Figure(figsize=(10.5 if zoomed else 7.2, 2.6), dpi=PLOT_DPI, layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[2.6, 1]) if zoomed else [fig.add_subplot()]
    ax = axes[0]
    time_ms = [t * 1e3 for t in trace.time_s]
    ax.plot(time_ms, [p * 1e3 for p in trace.power_w], color=TRACE_LINE_RGB, linewidth=0.8)
    span_ms = (max(time_ms) - min(time_ms)) if time_ms else 1.0
    stages = _stages(trace)
    for name, windows in stages.items():
        _shade(ax, windows, STAGE_COLOURS.get(name, "#bbbbbb"), name, MIN_WINDOW_SPAN_FRACTION * span_ms)
    ax.axvline(0.0, color="#555555", linewidth=0.8, linestyle=":", label="trigger")
    ax.set_xlabel("time since trigger (ms)")
    ax.set_ylabel("power (mW)")
    ax.set_title(f"{trace.pair} ({trace.backend})", fontsize=10, loc="left")
    ax.grid(True, alpha=0.3)
    if stages:
        ax.legend(loc="lower right", fontsize=7, framealpha=0.85, ncol=2)
    if zoomed:
        zx = [t * 1e3 for t in trace.zoom_time_s]
        zy = [p * 1e3 for p in trace.zoom_power_w]
        zax = axes[1]
        zax.plot(zx, zy, color=TRACE_LINE_RGB, linewidth=0.9, marker=".", markersize=2.5)
        lo, hi = min(zx), max(zx)
        for name, windows in stages.items():
            inside = [(max(a, lo / 1e3), min(b, hi / 1e3)) for a, b in windows if b * 1e3 > lo and a * 1e3 < hi]
            _shade(zax, inside, STAGE_COLOURS.get(name, "#bbbbbb"), name, 0.0)
            for a, b in inside:
                zax.text((a + b) / 2 * 1e3, 0.98, name, transform=zax.get_xaxis_transform(), ha="center",
                         va="top", fontsize=7, color="#333333")
        zax.set_xlim(lo, hi)
        zax.set_xlabel("time since trigger (ms)")
        zax.set_title("one inference, full resolution", fontsize=9, loc="left")
        zax.grid(True, alpha=0.3)
    # the caption (analyzer, interval, uncertainty) is the page's text, not pixels
    return _render(fig, [("trace", ax), *([("zoom", axes[1])] if zoomed else [])])


def run_labels(runs: Sequence[ResultsRun]) -> list[str]:
    """Tick labels: date and minute, with seconds only when two runs would otherwise read the same."""
    labels = [run.label for run in runs]
    if len(set(labels)) < len(labels):
        labels = [run.started.strftime("%Y-%m-%d %H:%M:%S") if run.started else run.source for run in runs]
    return labels


MIN_TREND_SPAN_REL = 0.10  # a y axis spans at least 10 % of the level: the gate's thresholds are 5-10 %
BUDGET_FAIL_RGB = "#f2b8b0"  # beyond the budget
MARGINAL_RGB = "#ffe08a"  # inside it, within the marginal band


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


def _draw_budget(ax: Any, lo_ax: float, hi_ax: float, limit_min: float | None, limit_max: float | None,
                 marginal: float | None) -> None:
    """Shade what fails (beyond a bound) and the marginal band inside it; the bound as a line."""
    band = marginal or 0.0
    if limit_max is not None:
        ax.axhspan(limit_max, hi_ax, color=BUDGET_FAIL_RGB, alpha=0.55, linewidth=0)
        ax.axhspan(limit_max - band * abs(limit_max), limit_max, color=MARGINAL_RGB, alpha=0.6, linewidth=0)
        ax.axhline(limit_max, color="#a02418", linewidth=0.9)
    if limit_min is not None:
        ax.axhspan(lo_ax, limit_min, color=BUDGET_FAIL_RGB, alpha=0.55, linewidth=0)
        ax.axhspan(limit_min, limit_min + band * abs(limit_min), color=MARGINAL_RGB, alpha=0.6, linewidth=0)
        ax.axhline(limit_min, color="#a02418", linewidth=0.9)


def trend_plot(metric: str, unit: str, runs: Sequence[ResultsRun]) -> str:
    """One metric across runs, a row per pair on its own y scale, CI error bars where recorded; a PNG URI.

    Own scales because pairs differ by orders of magnitude (0.2 ms on one device, 30 ms on another): on
    a shared axis a 5 % drift of the small one is a flat line. Each row shows the newest record's budget
    (red beyond it, yellow its marginal band), the baseline (the run before the newest: what the gate
    compares with) as a dashed line, and the published figure as a dotted one; the axis always holds the
    budget and spans at least 10 % of the level, so noise does not read as a trend.
    """
    from matplotlib.figure import Figure

    tables = [run.by_pair_metric() for run in runs]
    pairs = sorted({pair for table in tables for pair, m in table if m == metric})
    fig = Figure(figsize=(4.6, 0.55 + 0.95 * len(pairs)), dpi=PLOT_DPI, layout="constrained")
    axes = fig.subplots(len(pairs), 1, sharex=True, squeeze=False)[:, 0]
    for ax, pair in zip(axes, pairs):
        points = [(x, table[(pair, metric)]) for x, table in enumerate(tables) if (pair, metric) in table]
        newest = points[-1][1]
        limit_min, limit_max, marginal = budget_lines(newest)
        baseline = points[-2][1].value if len(points) > 1 else None
        ys = [rec.value for _, rec in points]
        extra = [v for v in (limit_min, limit_max, baseline, newest.published) if v is not None]
        extra += [rec.ci_low for _, rec in points if rec.ci_low is not None]
        extra += [rec.ci_high for _, rec in points if rec.ci_high is not None]
        lo_ax, hi_ax = _y_range(ys, extra)
        _draw_budget(ax, lo_ax, hi_ax, limit_min, limit_max, marginal)
        if baseline is not None:
            ax.axhline(baseline, color="#555555", linewidth=0.9, linestyle="--")
        if newest.published is not None:
            ax.axhline(newest.published, color="#2e7d32", linewidth=0.9, linestyle=":")
        lo = [rec.value - rec.ci_low if rec.ci_low is not None else 0.0 for _, rec in points]
        hi = [rec.ci_high - rec.value if rec.ci_high is not None else 0.0 for _, rec in points]
        ax.errorbar([x for x, _ in points], ys, yerr=[lo, hi], marker="o", markersize=3.5, linewidth=1.1,
                    capsize=2.5, color="#1f4e79")
        failed = [(x, rec.value) for x, rec in points if rec.status == "fail"]
        if failed:  # ring the over-budget nights so they stand out in the line
            ax.scatter([x for x, _ in failed], [y for _, y in failed], s=70, facecolors="none",
                       edgecolors="#c0392b", linewidths=1.5, zorder=5)
        ax.set_ylim(lo_ax, hi_ax)
        ax.text(0.01, 0.93, pair, transform=ax.transAxes, fontsize=7.5, va="top",
                bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.5})
        ax.tick_params(axis="y", labelsize=7)
        ax.ticklabel_format(axis="y", useOffset=False)  # "263.2", not "0.02 + 2.632e2"
        ax.grid(True, alpha=0.3)
    labels = run_labels(runs)
    step = max(1, -(-len(runs) // MAX_TREND_TICKS))
    ticks = list(range(0, len(runs), step))
    axes[-1].set_xticks(ticks, [labels[i].replace(" ", "\n") for i in ticks], fontsize=7)
    axes[-1].set_xlim(-0.5, len(runs) - 0.5)
    axes[0].set_title(metric + (f" ({unit})" if unit else ""), fontsize=10, loc="left")
    return _png_data_uri(fig)
