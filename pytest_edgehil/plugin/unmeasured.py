"""Budgeted limits that no collected test measures: named at collection instead of passing in silence.

A limit is checked only by a test that records its metric, and a test is parametrized over a pair only
when it is marked with one of the pair's metrics. A limit on a metric no collected test is marked with
(a metric of your own without its test, `top5` beside a test of `top1`, a built-in the suites do not
record) would otherwise leave the run green with nothing said. Collection is the one moment that sees both
the budgets and the tests; the check runs before `-k` deselects, so it is about the files collected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_edgehil.config.pairs import Pair


def unmeasured_limits(pairs: Sequence[Pair], marked: Iterable[tuple[Pair, tuple[str, ...]]]) -> list[tuple[Pair, list[str]]]:
    """For each budgeted pair in `pairs` (the selected ones), the metrics its budget limits that no item in
    `marked` measures for it; `marked` holds (pair, marker metrics) per collected item, and an empty metric
    tuple (a marker without names) counts as measuring every metric. Pairs in `pairs`' order."""
    measured: dict[str, set[str]] = {}
    every: set[str] = set()  # pairs a marker without metric names measures wholly
    for pair, metrics in marked:
        if metrics:
            measured.setdefault(pair.id, set()).update(metrics)
        else:
            every.add(pair.id)
    found = []
    for pair in pairs:
        if pair.budget is None or pair.id in every:
            continue
        covered = measured.get(pair.id, set())
        missing = [m for m in pair.budget.limits if m not in covered]
        if missing:
            found.append((pair, missing))
    return found


def unmeasured_line(found: Sequence[tuple[Pair, list[str]]]) -> str:
    """The terminal line naming each pair and its unmeasured metrics, with what to do (one line)."""
    listed = "; ".join(f"{pair.id} {', '.join(metrics)}" for pair, metrics in found)
    return (f"edgehil: budgeted, measured by no collected test (nothing checks these limits): {listed}. A test "
            "marked @pytest.mark.edgehil_metrics(METRIC) must record each with edgehil_record.check; or collect "
            "the suite that does, or remove the limit (docs/budgets.md)")
