"""The nightly HTML report: `edgehil report RESULTS… --html out.html`.

One self-contained page (CSS inline, plots as base64 PNG, no external URL) so it survives being a CI
artifact opened from a zip: the newest run's pair × metric table coloured against budgets, its power
traces with the inference windows marked, and trend plots over every run given. A run is one results
file, or a directory of them (a CI matrix writes one file per bench job).

matplotlib is driven through `Figure` + the Agg canvas directly, never pyplot, so building a report
neither opens windows nor changes the global backend of a process that imports this module; it is
imported lazily, like the results reader (it pulls in pytest and scikit-learn), so `edgehil inspect` does
not pay for them. Results files are read with `results.load_results`, the gate's own reader, so the
report and the gate never disagree about what a file holds.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_edgehil.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pytest_edgehil.results.store import ResultRecord

STATUSES = ("pass", "marginal", "fail", "info")  # info: measured, no budget to check against
STATUS_LABELS = {"pass": "pass", "marginal": "marginal", "fail": "FAIL", "info": "no budget"}
# Column order of the table and the trends: the way a reader scans a pair, cost first, quality last.
FAMILY_BY_UNIT = {"ms": "latency", "µs": "latency", "fps": "latency", "mJ": "energy", "mW": "power",
                  "KB": "footprint", "B": "footprint", "MAC": "footprint"}
FAMILY_ORDER = ("latency", "energy", "power", "footprint", "accuracy")
MIN_WINDOW_SPAN_FRACTION = 0.004  # inference windows narrower than this share of the plot are widened to show
MAX_TREND_TICKS = 8


@dataclass(frozen=True)
class Trace:
    pair: str
    time_s: list[float]
    power_w: list[float]
    windows_s: list[tuple[float, float]]
    backend: str


@dataclass(frozen=True)
class ResultsRun:
    """One run (a results file, or a directory of them) as the report needs it."""

    source: str  # the file name, shown where a run has no start time
    started: datetime | None
    backend: str
    git_commit: str | None
    edgehil_version: str
    complete: bool  # false when the run was killed (or is still running): the table lacks what it never got to
    records: tuple[ResultRecord, ...]
    traces: tuple[Trace, ...]

    @property
    def label(self) -> str:
        return self.started.strftime("%Y-%m-%d %H:%M") if self.started else self.source

    def by_pair_metric(self) -> dict[tuple[str, str], ResultRecord]:
        """(pair, metric) -> record; of a metric recorded twice for a pair the first counts, as in the gate."""
        table: dict[tuple[str, str], ResultRecord] = {}
        for record in self.records:
            table.setdefault((record.pair, record.metric), record)
        return table


def _parse_started(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        started = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Naive and aware times cannot be compared; a writer that gave no offset is taken to mean UTC.
    return started if started.tzinfo else started.replace(tzinfo=timezone.utc)


def _trace(raw: dict[str, Any], where: Path, default_backend: str) -> Trace:
    try:
        return Trace(pair=str(raw["pair"]), time_s=[float(x) for x in raw["time_s"]],
                     power_w=[float(x) for x in raw["power_w"]],
                     windows_s=[(float(a), float(b)) for a, b in raw.get("windows_s", [])],
                     backend=str(raw.get("backend") or default_backend))
    except (TypeError, KeyError, ValueError) as exc:
        raise ConfigError(f"results file {where}: trace of {raw.get('pair', '?')!r} is malformed ({exc!r}); "
                          "regenerate it with `pytest --edgehil-save PATH`") from None


def read_results(path: Path) -> ResultsRun:
    """One results file, read and validated by `results.load_results` (the gate's own reader)."""
    from pytest_edgehil.results.store import load_results  # lazy: it pulls in the recording stack

    results = load_results(path)
    run = results.run
    return ResultsRun(source=Path(path).name, started=_parse_started(run.started_at), backend=run.backend,
                      git_commit=run.git_commit, edgehil_version=run.edgehil_version, complete=run.complete,
                      records=tuple(results.records),
                      traces=tuple(_trace(t, Path(path), run.backend) for t in results.traces))


def read_night(path: Path) -> ResultsRun:
    """A results file, or a directory whose *.json files (one per device job of a CI matrix) are one run."""
    path = Path(path)
    if not path.is_dir():
        return read_results(path)
    runs = [read_results(f) for f in sorted(path.glob("*.json"))]
    if not runs:
        raise ConfigError(f"results directory {path}: no *.json results files in it; pass the directory that "
                          "holds one night's --edgehil-save files")
    starts = [run.started for run in runs if run.started is not None]
    return ResultsRun(
        source=path.name, started=min(starts) if len(starts) == len(runs) else None,
        backend=backends.pop() if len(backends := {run.backend for run in runs}) == 1 else "MIXED",
        git_commit=", ".join(sorted({run.git_commit for run in runs if run.git_commit})) or None,
        edgehil_version=", ".join(sorted({run.edgehil_version for run in runs if run.edgehil_version})),
        complete=all(run.complete for run in runs), records=tuple(r for run in runs for r in run.records), traces=tuple(t for run in runs for t in run.traces))


def order_runs(runs: Sequence[ResultsRun]) -> list[ResultsRun]:
    """Oldest first by start time; in the order given when any run lacks one (then the last is newest)."""
    if all(run.started is not None for run in runs):
        return sorted(runs, key=lambda run: run.started)  # type: ignore[arg-type, return-value]
    return list(runs)


def family_of(record: ResultRecord) -> str:
    return FAMILY_BY_UNIT.get(record.unit, "accuracy")


def metric_columns(records: Sequence[ResultRecord]) -> list[str]:
    family = {r.metric: family_of(r) for r in records}
    return sorted(family, key=lambda m: (FAMILY_ORDER.index(family[m]), m))


def format_value(value: float) -> str:
    return f"{value:.4g}"  # as the terminal summary prints it (summary.py), so the two read alike


def _with_unit(value: float, unit: str) -> str:
    return format_value(value) + (f" {unit}" if unit else "")


# ----------------------------------------------------------------------------------------------- plots


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


# ------------------------------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#1d232a;background:#fff}
h1{font-size:1.45rem;margin:0 0 .4rem} h2{font-size:1.15rem;margin:1.8rem 0 .6rem;border-bottom:1px solid #d8dde3}
.meta{border-collapse:collapse;font-size:.9rem} .meta th{text-align:left;padding:.1rem 1rem .1rem 0;color:#5b6670}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:.3rem;font-weight:600;font-size:.85rem}
.badge.SIMULATED{background:#fff1d6;color:#7a4b00} .badge.HW{background:#d9f2e0;color:#145a2a}
.badge.MIXED{background:#e4e0f5;color:#3b2a7a} .incomplete{color:#a02418;font-weight:600}
.counts span{margin-right:1rem} .note{color:#5b6670;font-size:.85rem}
.scroll{overflow-x:auto} table.results{border-collapse:collapse;font-size:.82rem}
table.results th{background:#eef1f4;padding:.35rem .5rem;text-align:left;position:sticky;top:0}
table.results td{border:1px solid #d8dde3;padding:.3rem .5rem;vertical-align:top;min-width:7.5rem}
td.pair{font-weight:600;white-space:nowrap;background:#f7f8fa}
.cell .value{font-weight:600;font-size:.92rem} .cell div{white-space:nowrap}
.cell .ci,.cell .bound{color:#47515b} .cell .verdict{font-size:.72rem;text-transform:uppercase;letter-spacing:.03em}
.pass{background:#e3f4e8} .marginal{background:#fff0c2} .fail{background:#f9d3cf}
td.fail .verdict{color:#a02418;font-weight:700} .info{background:#f4f5f7} td.absent{background:#fff;color:#aab}
.legend span{display:inline-block;padding:.1rem .5rem;margin-right:.4rem;border:1px solid #d8dde3;font-size:.8rem}
.plots{display:flex;flex-wrap:wrap;gap:.8rem} figure{margin:0} figcaption{font-size:.78rem;color:#5b6670}
details{margin-top:.8rem;font-size:.82rem} details td{padding:.1rem .6rem .1rem 0;font-family:monospace}
"""


def _header_html(newest: ResultsRun, runs: Sequence[ResultsRun], ordered_by_time: bool) -> str:
    backend = escape(newest.backend or "unknown")
    started = newest.started.isoformat(sep=" ", timespec="seconds") if newest.started else "(not recorded)"
    rows = [("backend", f'<span class="badge {backend}">{backend}</span>'),
            ("git commit", escape(newest.git_commit or "(not recorded)")),
            ("run started", escape(started) + ("" if newest.complete else
                             ' <span class="incomplete">did not finish: killed, timed out or still running; '
                             "the table shows what it measured</span>")),
            ("pytest-edgehil", escape(newest.edgehil_version or "?")),
            ("results", escape(newest.source)),
            ("trend over", (f"{len(runs)} run{'s' if len(runs) != 1 else ''} "
                            f"({'by run start time' if ordered_by_time else 'in the order given'})"))]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<h1>pytest-edgehil nightly report</h1><table class="meta">{body}</table>'


def _cell_html(rec: ResultRecord | None) -> str:
    if rec is None:
        return '<td class="cell absent">—</td>'
    status = rec.status if rec.status in STATUSES else "info"
    parts = [f'<div class="value">{escape(_with_unit(rec.value, rec.unit))}</div>']
    if rec.ci_low is not None and rec.ci_high is not None:
        parts.append(f'<div class="ci">95 % CI {format_value(rec.ci_low)}–{format_value(rec.ci_high)}</div>')
    parts.append(f'<div class="bound">budget {escape(rec.bound) if rec.bound else "(none)"}</div>')
    verdict = STATUS_LABELS.get(status, status)
    if rec.margin_rel is not None:
        verdict += f" · margin {rec.margin_rel:+.1%}"
    parts.append(f'<div class="verdict">{escape(verdict)}</div>')
    title = f"n={rec.samples}" if rec.samples is not None else ""
    if rec.source:
        title += f"; budget source: {rec.source}"
    return f'<td class="cell {status}" title="{escape(title.strip("; "))}">{"".join(parts)}</td>'


def _table_html(newest: ResultsRun) -> str:
    latest = newest.by_pair_metric()
    records = list(latest.values())
    if not records:
        return '<p class="note">The newest results file holds no records.</p>'
    columns = metric_columns(records)
    pairs = sorted({r.pair for r in records})
    head = "<th>pair</th>" + "".join(f"<th>{escape(m)}</th>" for m in columns)
    rows = "".join(f'<tr><td class="pair">{escape(p)}</td>'
                   + "".join(_cell_html(latest.get((p, m))) for m in columns) + "</tr>" for p in pairs)
    counts = {s: sum(r.status == s for r in records) for s in STATUSES}
    failing = sorted(f"{r.pair} {r.metric}" for r in records if r.status == "fail")
    count_html = "".join(f"<span>{counts[s]} {STATUS_LABELS[s]}</span>" for s in STATUSES)
    fail_html = (f'<p class="note">over budget: {escape(", ".join(failing))}</p>' if failing else "")
    legend = "".join(f'<span class="{s}">{STATUS_LABELS[s]}</span>' for s in STATUSES)
    return (f'<p class="counts">{count_html}</p>{fail_html}'
            f'<div class="legend">{legend}</div>'
            f'<div class="scroll"><table class="results" id="results-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>{_context_html(records)}")


def _context_html(records: Sequence[ResultRecord]) -> str:
    """What makes each pair's numbers comparable (model hash, firmware, instrument), folded away."""
    by_pair: dict[str, dict[str, object]] = {}
    for rec in records:
        by_pair.setdefault(rec.pair, {}).update(rec.context or {})
    rows = "".join(f"<tr><td>{escape(pair)}</td><td>{escape(key)}</td><td>{escape(str(value))}</td></tr>"
                   for pair, ctx in sorted(by_pair.items()) for key, value in sorted(ctx.items()))
    if not rows:
        return ""
    return f"<details><summary>measurement context per pair</summary><table>{rows}</table></details>"


def _figure_html(uri: str, alt: str, caption: str, css_class: str) -> str:
    return (f'<figure class="{css_class}"><img src="{uri}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _traces_html(newest: ResultsRun) -> str:
    if not newest.traces:
        return '<p class="note">No power traces in the newest results file (no energy suite ran).</p>'
    figures = []
    for trace in sorted(newest.traces, key=lambda t: t.pair):
        widths_ms = sorted((t1 - t0) * 1e3 for t0, t1 in trace.windows_s)
        median = f", median {format_value(widths_ms[len(widths_ms) // 2])} ms" if widths_ms else ""
        caption = (f"{len(trace.windows_s)} inference windows shaded{median} (narrow ones widened to "
                   f"{MIN_WINDOW_SPAN_FRACTION:.1%} of the axis to stay visible); {len(trace.time_s)} points "
                   "after decimation")
        figures.append(_figure_html(trace_plot(trace), f"power trace {trace.pair}", caption, "trace-plot"))
    return f'<div class="plots">{"".join(figures)}</div>'


def one_backend_per_pair(runs: Sequence[ResultsRun]) -> tuple[list[ResultsRun], list[str]]:
    """Keep each pair's points of its latest backend only, and say which were left out.

    Twin and bench numbers on one line would read as a regression or a miracle; filtering per pair
    (not per run) keeps the simulated pairs' trend when a night's hardware jobs did not run.
    """
    latest = {r.pair: r.backend for run in runs for r in run.records}
    left_out: dict[str, list[str]] = {}
    kept = []
    for run in runs:
        for r in run.records:
            if r.backend != latest[r.pair] and run.label not in left_out.setdefault(f"{r.pair} on {r.backend}", []):
                left_out[f"{r.pair} on {r.backend}"].append(run.label)
        kept.append(replace(run, records=tuple(r for r in run.records if r.backend == latest[r.pair])))
    return kept, [f"{what} ({', '.join(labels)})" for what, labels in left_out.items() if labels]


def _trends_html(runs: Sequence[ResultsRun]) -> str:
    if len(runs) < 2:
        return ('<p class="note">Trends need two or more runs; pass the series of nightly results files '
                "(or one directory per night) to `edgehil report`.</p>")
    kept, left_out = one_backend_per_pair(runs)
    note = (f'<p class="note">Left out, another backend than the pair\'s latest: {escape("; ".join(left_out))}</p>'
            if left_out else "")
    records = [r for run in kept for r in run.records]
    unit = {r.metric: r.unit for r in records}
    figures = [_figure_html(trend_plot(m, unit[m], kept), f"trend {m}",
                            "error bars: 95 % CI of the median where recorded; red rings: over budget",
                            "trend-plot") for m in metric_columns(records)]
    return note + f'<div class="plots">{"".join(figures)}</div>'


def build_report_html(runs: Sequence[ResultsRun]) -> str:
    """The whole page for these runs; the newest (by start time, else the last given) fills table and traces."""
    if not runs:
        raise ConfigError("edgehil report: no results files given; pass one or more files written by "
                          "--edgehil-save")
    ordered = order_runs(runs)
    by_time = all(run.started is not None for run in runs)
    newest = ordered[-1]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>pytest-edgehil report {escape(newest.label)}</title><style>{_CSS}</style></head><body>"
            f"{_header_html(newest, ordered, by_time)}"
            f"<h2>Pairs against budgets</h2>{_table_html(newest)}"
            f"<h2>Power traces</h2>{_traces_html(newest)}"
            f"<h2>Trends</h2>{_trends_html(ordered)}"
            "</body></html>\n")


def write_report(results_paths: Sequence[Path], html_path: Path) -> list[ResultsRun]:
    """Read the results files (or per-night directories), write the page atomically; return the runs."""
    runs = [read_night(Path(p)) for p in results_paths]
    page = build_report_html(runs)
    html_path = Path(html_path)
    tmp = html_path.with_name(f".{html_path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, html_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"edgehil report: cannot write {html_path} ({exc}); check the directory exists and "
                          "is writable") from None
    return runs


# --------------------------------------------------------------------------------------------- command


def _run_report(args: argparse.Namespace) -> int:
    runs = write_report([Path(p) for p in args.results], Path(args.html))
    newest = order_runs(runs)[-1]
    fails = sum(r.status == "fail" for r in newest.by_pair_metric().values())
    print(f"wrote {args.html}: {len(runs)} run(s), newest {newest.label} ({newest.backend}), "
          f"{len({r.pair for r in newest.records})} pairs, {fails} over budget")
    return 0


def add_report_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report", help="render results files into one self-contained HTML page",
        description="Render the newest run's pair x metric table (coloured against budgets) and power "
                    "traces, and trend plots across all the runs given, into one HTML page with no external "
                    "resources. A directory counts as one run made of the *.json files in it (one per "
                    "device job of a CI matrix).")
    parser.add_argument("results", nargs="+", metavar="RESULTS",
                        help="results JSON files written by --edgehil-save, or one directory of them per run")
    parser.add_argument("--html", required=True, metavar="OUT.html", help="where to write the page")
    parser.set_defaults(handler=_run_report)
