"""pytest-html extras: each edgehil test's values as a table and its power trace as an image.

Active only when pytest-html is installed and `--html` was given; added to the call report (in the worker
under xdist: the extras travel with the report). The table uses the terminal summary's number format;
the image is the HTML report's own trace plot (`results/report_plots.trace_plot`), so the three agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_edgehil.results.records import MetricRecord


def wants_html_extras(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))


def values_table_html(records: Sequence[MetricRecord]) -> str:
    """An HTML table: metric, value, published, budget, margin, verdict (one row per record)."""
    from pytest_edgehil.results.summary import format_against

    def unit(r: MetricRecord) -> str:
        return f" {r.unit}" if r.unit else ""

    header = ("metric", "value", "published", "budget", "margin", "verdict", "bench")
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    for r in records:
        published = f"{r.published:g}{unit(r)}" if r.published is not None else ""
        margin = f"{r.margin_rel:+.1%}" if r.margin_rel is not None else ""
        cells = (r.metric, format_against(r.value, r.limit_min, r.limit_max) + unit(r), published, r.bound or "(none)", margin, r.status,
                 r.backend)
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return f'<table class="edgehil-values">{"".join(rows)}</table>'


def add_html_extras(item: pytest.Item, report: pytest.TestReport) -> None:
    """Append the value table and one trace image per recorded trace to `report.extras`."""
    import pytest_html  # only called when the html plugin is loaded

    from pytest_edgehil.results.records import TRACE_PROPERTY, records_from_properties
    from pytest_edgehil.results.report_plots import trace_plot
    from pytest_edgehil.results.report_runs import trace_from_dict

    extras: list[Any] = list(getattr(report, "extras", []))
    records = records_from_properties(report.user_properties)
    if records:
        extras.append(pytest_html.extras.html(values_table_html(records)))
    for key, raw in report.user_properties:
        if key != TRACE_PROPERTY or not isinstance(raw, dict):
            continue
        trace = trace_from_dict(raw, report.nodeid, "")
        uri = trace_plot(trace)
        extras.append(pytest_html.extras.png(uri.split(",", 1)[1], name=f"power trace {trace.pair}"))
    report.extras = extras  # type: ignore[attr-defined]  # pytest-html reads this attribute
