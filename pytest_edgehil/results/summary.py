"""The terminal summary table: model × device × metric, value against budget."""

from __future__ import annotations

from collections.abc import Iterable

from pytest_edgehil.results.records import MetricRecord

_MARK = {"pass": "ok", "marginal": "MARGINAL", "fail": "FAIL", "info": "-"}


def format_value(value: float) -> str:
    return f"{value:.4g}"


def summary_lines(records: Iterable[MetricRecord]) -> list[str]:
    rows = [("pair", "metric", "value", "budget", "margin", "verdict", "backend")]
    for r in sorted(records, key=lambda r: (r.pair, r.metric)):
        value = format_value(r.value) + (f" {r.unit}" if r.unit else "")
        margin = f"{r.margin_rel:+.1%}" if r.margin_rel is not None else ""
        rows.append((r.pair, r.metric, value, r.bound or "(none)", margin, _MARK.get(r.status, r.status), r.backend))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines
