"""What the terminal says beyond the summary table: the `-v` result word and the latency split line.

Plain functions over `MetricRecord`s (no pytest), so the plugin's hooks stay thin and the lines are
tested without a run. Numbers use the summary table's format (`summary.format_value`), so a value reads
the same in the `-v` line, the table and the HTML report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.summary import format_against, format_value

# The on-device stages of one frame, in the order they happen (measure/latency.py records each).
LATENCY_STAGES = (("readout", "readout_ms"), ("inference", "inference_ms"), ("retrieval", "retrieval_ms"))
END_TO_END = "end_to_end_ms"
TRACE_INFERENCE = "trace_inference_ms"  # the inference stage timed on the power trace (measure/energy.py)
_STATUS_WORD = {"marginal": "MARGINAL", "fail": "OVER BUDGET"}


def _with_unit(value: float, unit: str) -> str:
    return format_value(value) + (f" {unit}" if unit else "")


def value_vs_budget(record: MetricRecord) -> str:
    """`inference_ms 0.859 ms vs ≤ 0.886 ms (+3.0%)`; `fps 52.7 fps (no budget)` for a record without one."""
    if not record.bound:
        return f"{record.metric} {_with_unit(record.value, record.unit)} (no budget)"
    value = format_against(record.value, record.limit_min, record.limit_max)
    text = f"{record.metric} {value}" + (f" {record.unit}" if record.unit else "")
    margin = f" ({record.margin_rel:+.1%})" if record.margin_rel is not None else ""
    return f"{text} vs {record.bound}{margin}"


def result_word(outcome: str, records: Sequence[MetricRecord], backend: str) -> str:
    """The `-v` word of a test that recorded something: its tightest budgeted value, then the bench.

    `PASSED inference_ms 0.859 ms vs ≤ 0.886 ms (+3.0%) [SIMULATED]`; a test recording several values
    shows the one nearest its limit (the one that would fail first) and how many more the summary holds.
    """
    budgeted = sorted((r for r in records if r.margin_rel is not None), key=lambda r: r.margin_rel or 0.0)
    shown = budgeted[0] if budgeted else (records[0] if records else None)
    if outcome == "failed" and not any(r.status == "fail" for r in records):
        # The test failed on something else (a check after its records, a device that refused): a figure
        # inside its budget would read as the reason. The word alone leaves room for pytest's own message.
        shown = None
    parts = [outcome.upper()]
    if shown is not None:
        if shown.status in _STATUS_WORD:
            parts.append(_STATUS_WORD[shown.status])
        parts.append(value_vs_budget(shown))
        if len(records) > 1:
            parts.append(f"+{len(records) - 1} more")
    parts.append(f"[{backend}]")
    return " ".join(parts)


def _ms(value: float) -> str:
    return f"{value:.2f}"


def latency_split_lines(records: Iterable[MetricRecord]) -> list[str]:
    """One line per pair that measured its stages: `tinytracker-imx500: readout 17.86 + inference 0.86 +
    retrieval 0.24 = 18.97 ms (published 19)`.

    Each figure is that stage's median over the runs; the total is the measured end-to-end median (the
    medians of the parts need not add up to it exactly), with the budget's published figure when it has
    one. A pair with fewer than two of these figures is left out; a stage it did not measure reads `?`,
    except an inference the device timer did not time but the power trace did (`trace_inference_ms`, a
    pair with no inference budget), which is shown with its source.
    """
    by_pair: dict[str, dict[str, MetricRecord]] = {}
    traced: dict[str, MetricRecord] = {}
    for r in records:
        if r.metric == END_TO_END or r.metric in {m for _, m in LATENCY_STAGES}:
            by_pair.setdefault(r.pair, {})[r.metric] = r
        elif r.metric == TRACE_INFERENCE:
            traced[r.pair] = r
    lines = []
    for pair in sorted(by_pair):
        found = by_pair[pair]
        if len(found) < 2:
            continue  # one latency figure (inference alone) is no split: the table row says it all
        stages = " + ".join(f"{name} {_stage_text(found, traced.get(pair), m)}" for name, m in LATENCY_STAGES)
        total = found.get(END_TO_END)
        line = f"{pair}: {stages}"
        if total is not None:
            line += f" = {_ms(total.value)} ms"
            if total.published is not None:
                line += f" (published {total.published:g})"
        else:
            line += " ms (end to end not measured)"
        lines.append(line)
    return lines


def _stage_text(found: dict[str, MetricRecord], traced: MetricRecord | None, metric: str) -> str:
    """One stage's figure in the split: the device timer's, else for the inference the trace's, else `?`."""
    if metric in found:
        return _ms(found[metric].value)
    if metric == "inference_ms" and traced is not None:
        return f"{_ms(traced.value)} (power trace)"
    return "?"
