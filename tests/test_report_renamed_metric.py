"""The report over runs from before and after the model_kb → model_kib rename (results/report_runs.py).

The gate reads an old name as the new one (the figure is the same: file bytes / 1024). The report did not:
a history holding nights from before the rename drew `model_kb` (old nights only) and `model_kib` (new
nights only) as two trends of one footprint, each with half the nights, and the new trend had no baseline
line at the first night after the rename. Expected: one `model_kib` row per run, the old figure as recorded.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pytest_edgehil.results.report import read_results
from pytest_edgehil.results.report_trends import trend_tables

from .report_support import make_night, make_record, save

PAIR = "qsegment-imx500"


def night_with(night: int, metric: str, unit: str, kib: float):
    results = make_night(night, pairs=(PAIR,))
    results.records.append(replace(make_record(PAIR, "model_kib", kib), metric=metric, unit=unit))
    return results


def test_a_night_from_before_the_rename_is_on_the_same_trend(tmp_path: Path) -> None:
    old = save(tmp_path / "old.json", night_with(0, "model_kb", "KB", 612.5))
    new = save(tmp_path / "new.json", night_with(1, "model_kib", "KiB", 640.0))
    tables = trend_tables([read_results(old), read_results(new)])
    metrics = [sorted(m for _, m in table if m.startswith("model_")) for table in tables]
    assert metrics == [["model_kib"], ["model_kib"]], metrics
    assert [tables[i][(PAIR, "model_kib")].value for i in (0, 1)] == [612.5, 640.0]
    assert tables[0][(PAIR, "model_kib")].unit == "KiB"
