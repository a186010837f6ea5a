"""The report's power trace plot: a trace with its stage windows (the trends are `report_trends.py`).

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

from pytest_edgehil.results.report_runs import Trace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MIN_WINDOW_SPAN_FRACTION = 0.004  # inference windows narrower than this share of the plot are widened to show
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
    # The inference shade last, over the others: widened to the minimum shown width, the retrieval's
    # (0.24 ms after a 0.23 ms inference) covered all of it but a pixel-wide sliver beside the window.
    for name, windows in sorted(stages.items(), key=lambda item: item[0] == "inference"):
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
