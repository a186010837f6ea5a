"""The metric vocabulary: one unit, family and direction per metric, read alike by budgets, records, the
gate, the terminal summary and the report; a user metric's direction from its budget or a declaration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_edgehil.config.budgets import Limit, load_budgets
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, GateStatus, compare_records, compare_results
from pytest_edgehil.results.report import ResultsRun, build_report_html
from pytest_edgehil.results.store import ResultRecord, results_from_json
from pytest_edgehil.results.summary import summary_lines
from pytest_edgehil.results.vocabulary import (
    BUILT_IN_METRICS,
    FAMILY_ORDER,
    Direction,
    Family,
    lookup,
    register_metric,
    resolve,
    unregister_metric,
)

from .conftest import BUDGETS, REPO
from .report_support import PageParser

DEFAULT = FailOn.parse(DEFAULT_FAIL_ON)
WITH_ACCURACY = FailOn.parse("energy:5%,power:5%,latency:10%,throughput:10%,accuracy:5%")


def record(metric: str, value: float, *, limit: Limit | None = None, spec_in_record: bool = True,
           pair: str = "qsegment-coral") -> ResultRecord:
    """A record as the Recorder makes it: unit, family and direction resolved with the pair's limit;
    `spec_in_record=False` gives one as results files of schema 1 hold it (no direction, no family)."""
    spec = resolve(metric, limit)
    extra = {"direction": spec.direction.value if spec.direction else None, "family": spec.family.value}
    return ResultRecord(pair=pair, model="qsegment", device="coral", kind="coral", metric=metric, value=value,
                        unit=spec.unit, backend="SIMULATED", status="info", samples=100,
                        **(extra if spec_in_record else {}))


# ------------------------------------------------------------------------------------- built-in metrics


def _names_the_suites_record() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "suites").glob("test_*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"check(?:_median)?\(\"(\w+)\"", text))
        for args in re.findall(r"edgehil_metrics\(([^)]*)\)", text):
            names |= set(re.findall(r"\"(\w+)\"", args))
    return names


def test_every_metric_the_suites_and_budgets_use_is_built_in_with_a_known_direction() -> None:
    used = _names_the_suites_record() | {m for e in load_budgets(BUDGETS) for m in e.limits}
    assert {"inference_ms", "fps", "inference_mw", "roc_auc", "model_kib"} <= used  # the scan found them
    assert used <= set(BUILT_IN_METRICS), f"add {sorted(used - set(BUILT_IN_METRICS))} to the vocabulary"
    unknown = [m for m in BUILT_IN_METRICS if lookup(m).direction is None]
    assert not unknown, f"built-in metrics without a direction: {unknown}"


def test_budgets_records_summary_report_and_gate_agree_on_every_built_in_metric() -> None:
    records = [record(m, 1.0) for m in BUILT_IN_METRICS]
    old_records = [record(m, 1.0, spec_in_record=False) for m in BUILT_IN_METRICS]
    rows = {line.split()[2]: line.split()[1] for line in summary_lines(records)[2:]}
    comparisons = {c.metric: c for c in compare_results(old_records, records, DEFAULT).comparisons}
    for metric in BUILT_IN_METRICS:
        spec = lookup(metric)
        limit = Limit(metric, max=1.0)
        assert limit.unit == spec.unit, metric  # budgets
        assert rows[metric] == spec.family.value, metric  # terminal summary
        assert comparisons[metric].family is spec.family, metric  # gate, new record vs schema-1 record
        assert comparisons[metric].direction is spec.direction, metric
        assert comparisons[metric].status is GateStatus.SAME, metric
    # The report's columns follow the vocabulary's family order.
    run = ResultsRun(source="x.json", started=None, backend="SIMULATED", git_commit=None, edgehil_version="",
                     complete=True, records=tuple(records), traces=())
    page = build_report_html([run])
    table = PageParser()
    table.feed(page)
    # Every metric is shown once, in the column of its vocabulary family (fps under throughput, *_mw power)...
    assert sorted(m for _, m in table.table()) == sorted(BUILT_IN_METRICS)
    assert table.families() == {m: lookup(m).family.value for m in BUILT_IN_METRICS}
    # ... and the family columns follow the vocabulary's family order.
    shown = [next(f for f in FAMILY_ORDER if head.startswith(f.value)) for head in table.family_heads]
    assert shown == [f for f in FAMILY_ORDER if f in {lookup(m).family for m in BUILT_IN_METRICS}]
    # The disagreements this vocabulary replaced.
    assert lookup("fps").family is Family.THROUGHPUT and lookup("fps").direction is Direction.HIGHER
    assert {lookup(m).family for m in BUILT_IN_METRICS if m.endswith("_mw")} == {Family.POWER}
    assert rows["fps"] == "throughput" and rows["inference_mw"] == "power"


# ------------------------------------------------------------------------------------- user metrics


@pytest.mark.parametrize(("limit", "direction"), [
    (Limit("top1", min=0.7), Direction.HIGHER),
    (Limit("boot_count", max=3.0), Direction.LOWER),
    (Limit("band", min=1.0, max=2.0), None),
    (Limit("band", min=1.0, max=2.0, direction="higher"), Direction.HIGHER),
    (Limit("top1", min=0.7, direction="lower"), Direction.LOWER),  # the declaration wins over the bound
])
def test_a_user_metrics_direction_comes_from_its_budget(limit: Limit, direction: Direction | None) -> None:
    assert lookup(limit.metric).direction is None  # not from the name
    assert limit.spec.direction is direction


def test_names_that_sound_like_scores_get_no_direction_without_a_declaration() -> None:
    for name in ("top1", "map50", "accuracy_top5", "f1", "recall", "iou"):
        assert lookup(name).direction is None, name
    # A built-in's direction cannot be flipped by a budget key.
    with pytest.raises(ConfigError, match="fps is higher-is-better"):
        resolve("fps", Limit("fps", min=20.0, direction="lower"))


def test_budget_direction_key_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text('[[budget]]\nmodel = "m"\ndevice = "coral"\n[budget.limits]\n'
                    'band = { min = 1.0, max = 2.0, direction = "higher" }\n', encoding="utf-8")
    (entry,) = load_budgets(path)
    assert entry.limits["band"].spec.direction is Direction.HIGHER
    path.write_text(path.read_text(encoding="utf-8").replace('"higher"', '"up"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"budgets.toml: \[\[budget\]\] #1 \(m-coral\): `limits.band.direction` must be one of 'higher' or 'lower', got 'up'"):
        load_budgets(path)
    path.write_text('[[budget]]\nmodel = "m"\ndevice = "coral"\n[budget.limits]\n'
                    'inference_ms = { max = 2.0, direction = "higher" }\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"#1 \(m-coral\): budget limit inference_ms: direction = 'higher'"):
        load_budgets(path)


def test_register_metric_declares_direction_and_rejects_a_conflicting_second_declaration() -> None:
    try:
        spec = register_metric("detections_per_s", direction="higher", family="throughput")
        assert lookup("detections_per_s") == spec and spec.family is Family.THROUGHPUT
        assert register_metric("detections_per_s", direction="higher", family="throughput") == spec
        with pytest.raises(ConfigError, match="already registered as higher-is-better throughput"):
            register_metric("detections_per_s", direction="lower", family="throughput")
        with pytest.raises(ConfigError, match="direction is one of"):
            register_metric("x_score", direction="up")
    finally:
        unregister_metric("detections_per_s")
    assert lookup("detections_per_s").direction is None


# ------------------------------------------------------------------------------------- the gate


def test_gate_judges_a_min_budget_metric_higher_is_better() -> None:
    top1, map50 = Limit("top1", min=0.70), Limit("map50", min=0.35)
    fell = compare_records(record("top1", 0.72, limit=top1), record("top1", 0.60, limit=top1), WITH_ACCURACY)
    assert fell.status is GateStatus.REGRESSED and fell.blocking and fell.higher_is_better
    assert fell.worse_change == pytest.approx(1 - 0.60 / 0.72)  # a 16.7 % fall
    rose = compare_records(record("map50", 0.40, limit=map50), record("map50", 0.45, limit=map50), WITH_ACCURACY)
    assert rose.status is GateStatus.IMPROVED and not rose.blocking
    # The same numbers with a `max` budget (an error rate, say) read the other way round.
    err = Limit("top1", max=0.9)
    assert compare_records(record("top1", 0.72, limit=err), record("top1", 0.60, limit=err),
                           WITH_ACCURACY).status is GateStatus.IMPROVED


def test_gate_gives_no_verdict_on_a_metric_of_unknown_direction() -> None:
    band = Limit("top1", min=0.5, max=0.9)  # two-sided, no `direction` key: unknown
    fell = compare_records(record("top1", 0.72, limit=band), record("top1", 0.60, limit=band), WITH_ACCURACY)
    assert fell.status is GateStatus.UNKNOWN and not fell.blocking
    assert "direction unknown" in fell.note and 'direction = "higher"' in fell.note and "register_metric" in fell.note
    assert fell.worse_change is None and "worse" not in fell.describe().split(";")[0]
    assert compare_records(record("top1", 0.72, limit=band), record("top1", 0.60, limit=band),
                           FailOn.parse("accuracy:5%,unknown")).blocking
    same = compare_records(record("top1", 0.72, limit=band), record("top1", 0.73, limit=band), WITH_ACCURACY)
    assert same.status is GateStatus.SAME  # within the cut either way: no direction needed


def test_records_of_schema_1_files_load_and_take_the_vocabulary() -> None:
    data = {"format": "pytest-edgehil results", "schema_version": 1,
            "run": {"started_at": "2025-01-01T00:00:00+00:00", "backend": "SIMULATED"},
            "records": [{"pair": "p", "metric": "fps", "value": 50.0, "unit": "fps"},
                        {"pair": "p", "metric": "top1", "value": 0.7, "unit": ""}]}
    fps, top1 = results_from_json(data).records
    assert (fps.spec.family, fps.spec.direction) == (Family.THROUGHPUT, Direction.HIGHER)
    assert (top1.spec.family, top1.spec.direction) == (Family.ACCURACY, None)
    data["records"][1]["direction"] = "sideways"
    with pytest.raises(ConfigError, match="`direction` must be"):
        results_from_json(data)


@pytest.mark.parametrize(("new", "status"), [(0.65, GateStatus.SAME), (0.64, GateStatus.REGRESSED),
                                             (0.80, GateStatus.IMPROVED), (0.78, GateStatus.SAME)])
def test_a_threshold_means_the_same_fraction_in_both_directions(new: float, status: GateStatus) -> None:
    # accuracy:10 %: top1 0.72 → 0.65 falls 9.7 % (inside), → 0.64 falls 11.1 % (past); rising past 10 %
    # is IMPROVED. The fall is measured against the baseline, as a latency rise is.
    top1 = Limit("top1", min=0.5)
    comparison = compare_records(record("top1", 0.72, limit=top1), record("top1", new, limit=top1),
                                 FailOn.parse("accuracy:10%"))
    assert comparison.status is status
    assert comparison.worse_change == pytest.approx(1 - new / 0.72)
    # And the latency side keeps its meaning: +9 % inside a 10 % threshold, +11 % past it.
    for value, expected in ((1.09, GateStatus.SAME), (1.11, GateStatus.REGRESSED)):
        fps_free = compare_records(record("model_kb", 1.0), record("model_kb", value), FailOn.parse("footprint:10%"))
        assert fps_free.status is expected
