"""The report's plots: a power trace with its inference windows, and one metric's trend across runs.

matplotlib is driven through `Figure` + the Agg canvas directly, never pyplot, so building a report
neither opens windows nor changes the global backend of a process that imports this module; it is
imported inside the functions, so reading results files does not pay for it. Each plot comes back as a
PNG data URI for the self-contained page.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_edgehil.results.report_runs import ResultsRun, Trace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MIN_WINDOW_SPAN_FRACTION = 0.004  # inference windows narrower than this share of the plot are widened to show
MAX_TREND_TICKS = 8


def _png_data_uri(fig: Figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def trace_plot(trace: Trace) -> str:
    """Power over time with each inference window shaded; a PNG data URI."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 2.3), layout="constrained")
    ax = fig.add_subplot()
    time_ms = [t * 1e3 for t in trace.time_s]
    ax.plot(time_ms, [p * 1e3 for p in trace.power_w], color="#1f4e79", linewidth=0.9)
    span_ms = (max(time_ms) - min(time_ms)) if time_ms else 1.0
    # A 0.2 ms window on a 200 ms trace is under a pixel wide: widen it around its centre so it shows.
    min_width_ms = MIN_WINDOW_SPAN_FRACTION * span_ms
    for i, (t0, t1) in enumerate(trace.windows_s):
        lo, hi = t0 * 1e3, t1 * 1e3
        if hi - lo < min_width_ms:
            mid = (lo + hi) / 2
            lo, hi = mid - min_width_ms / 2, mid + min_width_ms / 2
        ax.axvspan(lo, hi, color="#f0a030", alpha=0.45, linewidth=0, label="inference window" if i == 0 else None)
    ax.set_xlabel("time since trigger (ms)")
    ax.set_ylabel("power (mW)")
    ax.set_title(f"{trace.pair} ({trace.backend})", fontsize=10, loc="left")
    ax.grid(True, alpha=0.3)
    if trace.windows_s:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
    return _png_data_uri(fig)


def run_labels(runs: Sequence[ResultsRun]) -> list[str]:
    """Tick labels: date and minute, with seconds only when two runs would otherwise read the same."""
    labels = [run.label for run in runs]
    if len(set(labels)) < len(labels):
        labels = [run.started.strftime("%Y-%m-%d %H:%M:%S") if run.started else run.source for run in runs]
    return labels


def trend_plot(metric: str, unit: str, runs: Sequence[ResultsRun]) -> str:
    """One metric across runs, a row per pair on its own y scale, CI error bars where recorded; a PNG URI.

    Own scales because pairs differ by orders of magnitude (0.2 ms on one device, 30 ms on another): on
    a shared axis a 5 % drift of the small one is a flat line.
    """
    from matplotlib.figure import Figure

    tables = [run.by_pair_metric() for run in runs]
    pairs = sorted({pair for table in tables for pair, m in table if m == metric})
    fig = Figure(figsize=(4.6, 0.55 + 0.85 * len(pairs)), layout="constrained")
    axes = fig.subplots(len(pairs), 1, sharex=True, squeeze=False)[:, 0]
    for ax, pair in zip(axes, pairs):
        points = [(x, table[(pair, metric)]) for x, table in enumerate(tables) if (pair, metric) in table]
        ys = [rec.value for _, rec in points]
        lo = [rec.value - rec.ci_low if rec.ci_low is not None else 0.0 for _, rec in points]
        hi = [rec.ci_high - rec.value if rec.ci_high is not None else 0.0 for _, rec in points]
        ax.errorbar([x for x, _ in points], ys, yerr=[lo, hi], marker="o", markersize=3.5, linewidth=1.1,
                    capsize=2.5, color="#1f4e79")
        failed = [(x, rec.value) for x, rec in points if rec.status == "fail"]
        if failed:  # ring the over-budget nights so they stand out in the line
            ax.scatter([x for x, _ in failed], [y for _, y in failed], s=70, facecolors="none",
                       edgecolors="#c0392b", linewidths=1.5, zorder=5)
        ax.text(0.01, 0.93, pair, transform=ax.transAxes, fontsize=7.5, va="top",
                bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.5})
        ax.tick_params(axis="y", labelsize=7)
        ax.ticklabel_format(axis="y", useOffset=False)  # "263.2", not "0.02 + 2.632e2"
        ax.margins(y=0.25)
        ax.grid(True, alpha=0.3)
    labels = run_labels(runs)
    step = max(1, -(-len(runs) // MAX_TREND_TICKS))
    ticks = list(range(0, len(runs), step))
    axes[-1].set_xticks(ticks, [labels[i].replace(" ", "\n") for i in ticks], fontsize=7)
    axes[-1].set_xlim(-0.5, len(runs) - 0.5)
    axes[0].set_title(metric + (f" ({unit})" if unit else ""), fontsize=10, loc="left")
    return _png_data_uri(fig)
