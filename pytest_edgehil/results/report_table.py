"""The report's main table: pairs as rows grouped by device, metrics grouped by family, one column each.

Why family columns and not one column per metric: a TinyTracker run records 16+ metrics, and at 1400 px
a column per metric showed 7 of them, the rest behind a horizontal scroll (with the MARGINAL cells). A
column per family (six at most, in the vocabulary's reading order) fits any screen from ~1000 px; in it
each metric is a small block: name, value, the published figure beside it, the budget, the margin and
the verdict colour. Within one device group every row lists the same metrics in the same order (a
metric a pair lacks shows as "—"), so the blocks line up down the group. A metric a pair recorded more
than once (an `--edgehil-ab` test beside the energy suite: two measurements with two values) shows one
block per record, each labelled with the test it came from, as the terminal summary's `from` column does:
showing one of them would hide the other's value and verdict. HTML only; no matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.report_runs import ResultsRun
from pytest_edgehil.results.store import ResultRecord
from pytest_edgehil.results.summary import family_of, format_against, format_value, metric_order, origin_label
from pytest_edgehil.results.vocabulary import FAMILY_ORDER

STATUSES = ("pass", "marginal", "fail", "info")  # info: measured, no budget to check against
STATUS_LABELS = {"pass": "pass", "marginal": "MARGINAL", "fail": "FAIL", "info": "no budget"}

TABLE_CSS = """
table.results{border-collapse:collapse;font-size:.8rem;width:100%;table-layout:fixed}
table.results thead th{background:#eef1f4;padding:.35rem .45rem;text-align:left;position:sticky;top:0;z-index:1}
table.results th.pair-head{width:10.5rem} .family-head .units{font-weight:400;color:#5b6670;margin-left:.3rem}
tr.device-row th{background:#dfe5ec;text-align:left;padding:.3rem .45rem;font-size:.85rem}
tr.device-row .kind{font-weight:400;color:#47515b;margin-left:.5rem}
th.pair{text-align:left;vertical-align:top;padding:.35rem .45rem;background:#f7f8fa;border:1px solid #d8dde3;
  overflow-wrap:anywhere} th.pair .id{display:block;font-weight:400;color:#5b6670;font-size:.72rem}
td.family-cell{border:1px solid #d8dde3;padding:.2rem;vertical-align:top}
.m{padding:.2rem .3rem;margin:.12rem 0;border-radius:.2rem;overflow-wrap:anywhere}
.m .name{font-size:.72rem;color:#2d3640} .m .value{font-weight:600;font-size:.88rem}
.m .vs,.m .ci{font-size:.7rem;color:#3d4650} .m .verdict{font-size:.68rem;font-weight:700;letter-spacing:.03em}
.m.absent{color:#99a;background:#fff;font-size:.72rem} .m .from{font-size:.68rem;color:#3d4650;font-style:italic}
.pass{background:#e3f4e8} .marginal{background:#fff0c2} .fail{background:#f9d3cf} .info{background:#f4f5f7}
.m.fail .verdict{color:#a02418} .m.marginal .verdict{color:#7a5200}
.legend span{display:inline-block;padding:.1rem .5rem;margin-right:.4rem;border:1px solid #d8dde3;font-size:.8rem}
"""


def _with_unit(value: float, unit: str) -> str:
    return format_value(value) + (f" {unit}" if unit else "")


def metric_html(rec: MetricRecord | None, metric: str, origin: str = "") -> str:
    """One metric's block: name, value, published figure, budget, margin, verdict (colour and word);
    `origin` (`summary.origin_label`), where the pair recorded the metric more than once: which test it is."""
    if rec is None:
        return f'<div class="m absent" data-metric="{escape(metric)}">{escape(metric)} —</div>'
    status = rec.status if rec.status in STATUSES else "info"
    vs = []
    if rec.published is not None:
        vs.append(f"published {_with_unit(rec.published, rec.unit)}")
    vs.append(f"budget {rec.bound}" if rec.bound else "no budget")
    if rec.margin_rel is not None:
        vs.append(f"margin {rec.margin_rel:+.1%}")
    shown = format_against(rec.value, rec.limit_min, rec.limit_max) + (f" {rec.unit}" if rec.unit else "")
    parts = [f'<div class="name">{escape(rec.metric)}</div>',
             f'<div class="value">{escape(shown)}</div>',
             f'<div class="vs">{escape(" · ".join(vs))}</div>']
    if origin:
        parts.insert(1, f'<div class="from">from {escape(origin)}</div>')
    if rec.ci_low is not None and rec.ci_high is not None:
        parts.append(f'<div class="ci">95 % CI {format_value(rec.ci_low)}–{format_value(rec.ci_high)}</div>')
    if status != "info":
        parts.append(f'<div class="verdict">{STATUS_LABELS[status]}</div>')
    title = f"n={rec.samples}" if rec.samples is not None else ""
    if rec.source:
        title += f"; budget source: {rec.source}"
    tag = f' data-origin="{escape(origin)}"' if origin else ""
    return (f'<div class="m {status}" data-metric="{escape(rec.metric)}"{tag} title="{escape(title.strip("; "))}">'
            f'{"".join(parts)}</div>')


def _blocks(records: Sequence[ResultRecord] | None, metric: str) -> str:
    """The blocks of one pair's metric: "—" when absent, one per record, labelled when there are several."""
    if not records:
        return metric_html(None, metric)
    if len(records) == 1:
        return metric_html(records[0], metric)
    return "".join(metric_html(r, metric, _origin(r)) for r in records)


def _origin(record: ResultRecord) -> str:
    return origin_label(record, record.test or "(test not recorded)")  # files from before records named it


def _named(record: ResultRecord, repeated: bool) -> str:
    """`pair metric`, with the test it came from where the pair recorded the metric more than once."""
    return f"{record.pair} {record.metric}" + (f" ({_origin(record)})" if repeated else "")


def _families(records: Sequence[MetricRecord]) -> list[tuple[str, list[str], list[str]]]:
    """(family, its metrics in reading order, its units) for the families present, in FAMILY_ORDER."""
    order = metric_order(records)
    out = []
    for family in FAMILY_ORDER:
        metrics = [m for m in order if family_of(next(r for r in records if r.metric == m)) is family]
        if metrics:
            units = sorted({r.unit for r in records if r.metric in metrics and r.unit})
            out.append((family.value, metrics, units))
    return out


def _device_label(records: Sequence[ResultRecord]) -> str:
    first = records[0]
    firmware = sorted({str((r.context or {}).get("device_firmware")) for r in records
                       if (r.context or {}).get("device_firmware")})
    extra = [f"kind {first.kind}"] if first.kind and first.kind != first.device else []
    extra += [f"firmware {', '.join(firmware)}"] if firmware else []
    extra += [", ".join(sorted({r.backend for r in records}))]
    return f'{escape(first.device or "?")}<span class="kind">{escape(" · ".join(extra))}</span>'


def table_html(newest: ResultsRun) -> str:
    """Counts, legend and the grouped table of the newest run: every record, counted and shown (a pair ×
    metric recorded twice is two measurements, each block labelled with its test)."""
    latest = newest.all_by_pair_metric()
    records = [r for group in latest.values() for r in group]
    if not records:
        return '<p class="note">The newest results file holds no records.</p>'
    families = _families(records)
    head = ('<tr><th class="pair-head">pair</th>' + "".join(
        f'<th class="family-head" data-family="{f}">{f}<span class="units">{escape(", ".join(u))}</span></th>'
        for f, _, u in families) + "</tr>")
    bodies = []
    for device in sorted({r.device for r in records}):
        group = [r for r in records if r.device == device]
        rows = [f'<tr class="device-row"><th colspan="{len(families) + 1}">{_device_label(group)}</th></tr>']
        group_metrics = {r.metric for r in group}
        for pair in sorted({r.pair for r in group}):
            model = next(r.model for r in group if r.pair == pair)
            cells = "".join(
                f'<td class="family-cell" data-family="{f}">'
                + "".join(_blocks(latest.get((pair, m)), m) for m in metrics if m in group_metrics) + "</td>"
                for f, metrics, _ in families)
            rows.append(f'<tr data-pair="{escape(pair)}"><th class="pair" scope="row">{escape(model or pair)}'
                        f'<span class="id">{escape(pair)}</span></th>{cells}</tr>')
        bodies.append(f'<tbody data-device="{escape(device)}">{"".join(rows)}</tbody>')
    counts = {s: sum(r.status == s for r in records) for s in STATUSES}
    failing = sorted(_named(r, len(latest[r.key]) > 1) for r in records if r.status == "fail")
    count_html = "".join(f"<span>{counts[s]} {STATUS_LABELS[s]}</span>" for s in STATUSES)
    fail_html = f'<p class="note">over budget: {escape(", ".join(failing))}</p>' if failing else ""
    legend = "".join(f'<span class="{s}">{STATUS_LABELS[s]}</span>' for s in STATUSES)
    return (f'<p class="counts">{count_html}</p>{fail_html}<div class="legend">{legend}</div>'
            f'<table class="results" id="results-table"><thead>{head}</thead>{"".join(bodies)}</table>')
