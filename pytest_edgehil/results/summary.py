"""The terminal summary table (model × device × metric, value against budget), and the number format and
metric order the HTML report shares with it, so the two read alike."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from pytest_edgehil.results.records import MetricRecord, paired_rounds
from pytest_edgehil.results.vocabulary import FAMILY_ORDER, Family

_MARK = {"pass": "ok", "marginal": "MARGINAL", "fail": "FAIL", "info": "-"}


def format_value(value: float) -> str:
    return f"{value:.4g}"


def _side(value: float, bound: float) -> int:
    return (value > bound) - (value < bound)


def format_against(value: float, limit_min: float | None, limit_max: float | None) -> str:
    """`format_value`, with as many more significant digits as it takes for the printed figure to stand
    where `value` stands against each limit (beyond, at or inside it).

    Why: 0.8590000000001652 ms fails `≤ 0.859 ms` and would print as 0.859 beside it; a reader gating a
    merge on the page must not see a value equal to its limit marked FAIL (or one past it marked ok).
    """
    bounds = [b for b in (limit_min, limit_max) if b is not None]
    for digits in range(4, 18):
        text = f"{value:.{digits}g}"
        if all(_side(float(text), b) == _side(value, b) for b in bounds):
            return text
    return repr(value)


def family_of(record: MetricRecord) -> Family:
    """The record's family (as recorded; the vocabulary's for records of older results files)."""
    return record.spec.family


def metric_order(records: Sequence[MetricRecord]) -> list[str]:
    """Metric names the way a reader scans a pair: by family (cost first, quality last), then by name."""
    last = {r.metric: r for r in records}  # the last record of a metric decides, as it always did
    family = {metric: family_of(r) for metric, r in last.items()}  # once per metric: a history has 150,000
    return sorted(family, key=lambda m: (FAMILY_ORDER.index(family[m]), m))


def summary_lines(records: Iterable[MetricRecord], origins: Sequence[str] | None = None) -> list[str]:
    """The table's lines: a header, a rule, one row per record (by pair, then `metric_order`).

    `origins`: the node id of the test that made each record, one per record in the same order. Where the
    table holds one pair's metric more than once (an `--edgehil-ab` test beside the energy suite: two
    measurements, both kept), a last column `from` names each row's test, without its parameter id (the
    pair column has it), and `(A/B candidate)` on a same-session A/B record, the candidate's side (the
    baseline's figures are in the A/B gate's table). ValueError when `origins` does not match `records`.
    """
    records = list(records)
    if origins is not None and len(origins) != len(records):
        raise ValueError(f"summary_lines: {len(origins)} origins for {len(records)} records; give one node id "
                         "per record")
    position = {m: i for i, m in enumerate(metric_order(records))}
    seen = Counter((r.pair, r.metric) for r in records)
    labelled = origins is not None and any(n > 1 for n in seen.values())
    rows = [("pair", "family", "metric", "value", "published", "budget", "margin", "verdict", "backend")
            + (("from",) if labelled else ())]
    for i in sorted(range(len(records)), key=lambda i: (records[i].pair, position[records[i].metric])):
        r = records[i]
        value = format_against(r.value, r.limit_min, r.limit_max) + (f" {r.unit}" if r.unit else "")
        published = f"{r.published:g}" + (f" {r.unit}" if r.unit else "") if r.published is not None else ""
        margin = f"{r.margin_rel:+.1%}" if r.margin_rel is not None else ""
        row = (r.pair, family_of(r).value, r.metric, value, published, r.bound or "(none)", margin,
               _MARK.get(r.status, r.status), r.backend)
        rows.append(row + ((origin_label(r, origins[i]),) if labelled and origins is not None else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def origin_label(record: MetricRecord, nodeid: str) -> str:
    """`test_ab.py::test_ab_inference_energy (A/B candidate)`: the test without its parameter id, and the side.

    The terminal summary and the HTML report (`report_table.py`) label a repeated pair × metric with it."""
    test = nodeid.partition("[")[0]
    return test + (" (A/B candidate)" if paired_rounds(record) is not None else "")
