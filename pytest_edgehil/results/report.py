"""The nightly HTML report: `edgehil report RESULTS… --html out.html`.

One self-contained page (CSS inline, trace plots as base64 PNG, trends as inline SVG, no external URL,
no script) so it survives being a CI artifact opened from a zip, laid out for the question "what changed, and is it OK?": at the
top the gate's verdicts on the newest run against the one before and what changed under the numbers
(`report_gate.py`); then the newest run's pairs as rows grouped by device, metrics grouped by family,
each with its published figure and budget, coloured by verdict (`report_table.py`); its power traces;
trend plots over every run given with the budget, marginal band and baseline. A run is one results file,
or a directory of them (a CI matrix writes one file per bench job): `report_runs.py` reads them,
`report_plots.py` draws the traces (matplotlib, imported only when drawing), `report_trends.py` writes
the trends as SVG (5,000 rows for 200 pairs × 25 metrics: matplotlib took minutes), this module assembles
the page.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.document_text import write_atomically
from pytest_edgehil.results.records import AB_CONTEXT
from pytest_edgehil.results.report_gate import GATE_CSS, gate_html
from pytest_edgehil.results.report_plots import (
    MIN_WINDOW_SPAN_FRACTION,
    Plot,
    trace_figure,
    trace_plot,
)
from pytest_edgehil.results.report_runs import (
    ResultsRun,
    Trace,
    each_run_once,
    order_runs,
    read_night,
    read_nights_from_history,
    read_results,
)
from pytest_edgehil.results.report_table import STATUS_LABELS, STATUSES, TABLE_CSS, table_html
from pytest_edgehil.results.report_trends import trend_plot, trend_tables
from pytest_edgehil.results.store import ResultRecord
from pytest_edgehil.results.summary import format_value, metric_order

if TYPE_CHECKING:
    from pytest_edgehil.results.history import History

DEFAULT_LAST = 30  # runs a report of the history store alone shows: a month of nights

__all__ = ["STATUSES", "STATUS_LABELS", "ResultsRun", "Trace", "add_report_command", "build_report_html", "order_runs", "read_night",
           "read_results", "trace_plot", "trend_plot", "write_report"]

# ------------------------------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#1d232a;background:#fff}
h1{font-size:1.45rem;margin:0 0 .4rem} h2{font-size:1.15rem;margin:1.8rem 0 .6rem;border-bottom:1px solid #d8dde3}
.meta{border-collapse:collapse;font-size:.9rem} .meta th{text-align:left;padding:.1rem 1rem .1rem 0;color:#5b6670}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:.3rem;font-weight:600;font-size:.85rem}
.badge.SIMULATED{background:#fff1d6;color:#7a4b00} .badge.HW{background:#d9f2e0;color:#145a2a}
.badge.MIXED{background:#e4e0f5;color:#3b2a7a} .incomplete{color:#a02418;font-weight:600}
.counts span{margin-right:1rem} .note{color:#5b6670;font-size:.85rem}
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


def _table_html(newest: ResultsRun) -> str:
    return table_html(newest) + _context_html(newest.records)


def _context_html(records: Sequence[ResultRecord]) -> str:
    """What makes each pair's numbers comparable (model hash, firmware, instrument), folded away. An A/B
    record's paired rounds (its `ab` key) are the A/B gate's samples, not context: left out."""
    by_pair: dict[str, dict[str, object]] = {}
    for rec in records:
        by_pair.setdefault(rec.pair, {}).update({k: v for k, v in (rec.context or {}).items() if k != AB_CONTEXT})
    rows = "".join(f"<tr><td>{escape(pair)}</td><td>{escape(key)}</td><td>{escape(str(value))}</td></tr>"
                   for pair, ctx in sorted(by_pair.items()) for key, value in sorted(ctx.items()))
    if not rows:
        return ""
    return f"<details><summary>measurement context per pair</summary><table>{rows}</table></details>"


def _figure_html(uri: str, alt: str, caption: str, css_class: str, plot: Plot | None = None) -> str:
    """A figure with its caption; a plot's axes (pixel box and limits, `PlotAxes`) ride along as JSON in
    `data-axes`, so a reader of the page (or a screenshot test) can turn a pixel back into ms and mW."""
    axes = (f' width="{plot.size_px[0]}" height="{plot.size_px[1]}" data-axes="'
            f'{escape(json.dumps([asdict(a) for a in plot.axes]))}"' if plot else "")
    return (f'<figure class="{css_class}"><img src="{uri}" alt="{escape(alt)}"{axes}>'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _traces_html(newest: ResultsRun) -> str:
    if not newest.traces:
        return ('<p class="note">No power traces in the newest results file: traces are kept by the energy '
                "tests, which run for pairs with an energy or power budget.</p>")
    figures, seen = [], set()
    for trace in sorted(newest.traces, key=lambda t: t.pair):
        if trace.pair in seen:
            continue  # the inference and end-to-end energy tests share one acquisition: show it once
        seen.add(trace.pair)
        widths_ms = sorted((t1 - t0) * 1e3 for t0, t1 in trace.windows_s)
        median = f", median {format_value(widths_ms[len(widths_ms) // 2])} ms" if widths_ms else ""
        caption = (f"{len(trace.windows_s)} inferences{median}; stages shaded (windows narrower than "
                   f"{MIN_WINDOW_SPAN_FRACTION:.1%} of the axis widened to stay visible); {len(trace.time_s)} "
                   "points, min/max decimated so every dip and spike keeps its depth; dotted line: trigger")
        if trace.caption:
            caption = f"{trace.caption}. {caption}"
        plot = trace_figure(trace)
        figures.append(_figure_html(plot.uri, f"power trace {trace.pair}", caption, "trace-plot", plot))
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
    tables = trend_tables(kept)  # once for all metrics, not once per metric
    pairs: dict[str, set[str]] = {}
    for table in tables:
        for pair, metric in table:
            pairs.setdefault(metric, set()).add(pair)
    caption = escape("error bars: 95 % CI of the median where recorded; red: beyond the budget, yellow: its marginal "
                     "band; dashed: baseline (the run before the newest); dotted green: published figure; red rings: "
                     "over budget")
    figures = [f'<figure class="trend-plot">{trend_plot(m, unit[m], kept, tables, sorted(pairs[m]))}<figcaption>{caption}</figcaption>'
               "</figure>" for m in metric_order(records)]
    return note + f'<div class="plots">{"".join(figures)}</div>'


def build_report_html(runs: Sequence[ResultsRun]) -> str:
    """The whole page for these runs; the newest (by start time, else the last given) fills table and traces."""
    if not runs:
        raise ConfigError("no results files given; pass one or more files written by "
                          "--edgehil-save")
    ordered = order_runs(runs)
    by_time = all(run.started is not None for run in runs)
    newest = ordered[-1]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>pytest-edgehil report {escape(newest.label)}</title><style>{_CSS}{TABLE_CSS}{GATE_CSS}</style>"
            f"</head><body>{_header_html(newest, ordered, by_time)}"
            f"<h2>What changed, and is it OK?</h2>{gate_html(ordered)}"
            f"<h2>Pairs against budgets, by device</h2>{_table_html(newest)}"
            f"<h2>Power traces</h2>{_traces_html(newest)}"
            f"<h2>Trends</h2>{_trends_html(ordered)}"
            "</body></html>\n")


def write_report(results_paths: Sequence[Path], html_path: Path, *, history: History | None = None,
                 last: int | None = None) -> list[ResultsRun]:
    """Read the results files (or per-night directories), write the page atomically; return the runs.
    With a history store, the runs are read from it (files it does not hold are imported first), and
    `last` adds the newest runs it holds besides them."""
    if history is not None:
        runs = read_nights_from_history(history, [Path(p) for p in results_paths], last)
        if not runs:
            raise ConfigError(f"the history store {history.path} holds no runs; pass results files "
                              "to import, or point --history at the store your runs are added to")
    else:
        runs = each_run_once([read_night(Path(p)) for p in results_paths])
    page = build_report_html(runs)
    html_path = Path(html_path)
    try:
        write_atomically(html_path, page)
    except OSError as exc:
        raise ConfigError(f"cannot write {html_path} ({exc}); check the directory exists and "
                          "is writable") from None
    return runs


# --------------------------------------------------------------------------------------------- command


def _run_report(args: argparse.Namespace) -> int:
    from pytest_edgehil.results.history_cli import HISTORY_ENV, open_for_command

    with open_for_command(args.history) as history:
        if history is None and args.last is not None:
            raise ConfigError("edgehil report --last: the newest runs come from a history store: give "
                              f"--history PATH (or set ${HISTORY_ENV})")
        if history is None and not args.results:
            raise ConfigError("no results files given; pass one or more files written by "
                              "--edgehil-save, or a history store with --history PATH")
        last = args.last if args.last is not None else (None if args.results else DEFAULT_LAST)
        runs = write_report([Path(p) for p in args.results], Path(args.html), history=history, last=last)
    newest = order_runs(runs)[-1]
    fails = sum(r.status == "fail" for r in newest.records)
    print(f"wrote {args.html}: {len(runs)} run(s), newest {newest.label} ({newest.backend}), "
          f"{len({r.pair for r in newest.records})} pairs, {fails} over budget")
    return 0


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of runs: give a whole number >= 1")
    return int(text)


def add_report_command(subparsers: Any) -> None:
    from pytest_edgehil.results.history_cli import DEFAULT_HISTORY, HISTORY_ENV

    parser = subparsers.add_parser(
        "report", help="render results files into one self-contained HTML page",
        description="Render the gate verdicts of the newest run against the one before, its pairs grouped by device "
                    "(metrics by family, coloured against budgets, published figures beside them) and power "
                    "traces, and trend plots across all the runs given, into one HTML page with no external "
                    "resources. A directory counts as one run made of the *.json files in it (one per "
                    "device job of a CI matrix). With a history store (docs/gate.md), runs are read from it "
                    "and each results file is validated once, when the store first sees it.")
    parser.add_argument("results", nargs="*", metavar="RESULTS",
                        help="results JSON files written by --edgehil-save, or one directory of them per run "
                             "(none: the newest runs of the history store)")
    parser.add_argument("--html", required=True, metavar="OUT.html", help="where to write the page")
    parser.add_argument("--history", metavar="PATH|off", default=None,
                        help=f"history store to read runs from and import RESULTS into (default ${HISTORY_ENV}, "
                             f"else ./{DEFAULT_HISTORY} when it exists; 'off': read the files only)")
    parser.add_argument("--last", type=_count, metavar="N", default=None,
                        help=f"also show the N newest runs of the history store (default {DEFAULT_LAST} when "
                             "no RESULTS are given)")
    parser.set_defaults(handler=_run_report)
