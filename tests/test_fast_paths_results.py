"""The batched gate and the one-pass results reader give what the per-record code and the long way give.

`edgehil compare` and `edgehil report` compare thousands of records at once (`gate._compare_many`,
`session_stats.session_tests`, `gate_stats.drifts_past`) and read results files with one pydantic pass
(`store._load_fast`); these tests hold them to the per-record statistics and to the validating reader.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, compare_records, compare_sessions
from pytest_edgehil.results.gate_stats import drift_of, drifts_past
from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.schema import RecordSchema
from pytest_edgehil.results.session_stats import log_median, log_median_se, session_test, session_tests
from pytest_edgehil.results.store import (
    ResultRecord,
    ResultsWriter,
    RunInfo,
    dump_document,
    load_results,
    results_from_json,
)


def samples(kind: int, n: int, level: float) -> list[float]:
    """Deterministic sample shapes: steady, a slow drift within the run, a step, noisy, constant."""
    t = np.arange(n)
    shapes = [level * (1 + 0.01 * np.sin(t * 1.7)),
              level * (1 + 0.2 * t / max(n - 1, 1)) + 0.001 * np.cos(t * 2.3),  # drifts 20 % through the run
              level * np.where(t < n // 2, 1.0, 1.3) + 0.002 * np.sin(t),
              level * (1 + 0.05 * np.sin(t * 12.9898) * np.cos(t * 78.233)),
              np.full(n, level)]
    return [float(x) for x in shapes[kind % len(shapes)]]


def record(pair: str, metric: str, raw: list[float], family: str = "latency") -> ResultRecord:
    rec = MetricRecord(pair=pair, model="m", device="d", kind="k", metric=metric, value=float(np.median(raw)) if raw
                       else 1.0, unit="ms", backend="SIMULATED", status="pass", raw=raw or None,
                       direction="lower", family=family)
    return ResultRecord.from_metric_record(rec)


def sessions_and_new() -> tuple[list[list[ResultRecord]], list[ResultRecord]]:
    sessions: list[list[ResultRecord]] = [[], [], []]
    new: list[ResultRecord] = []
    for i in range(40):
        pair, metric, n = f"p{i % 7}", f"metric_{i}_ms", (2, 7, 30, 50)[i % 4]
        for s, session in enumerate(sessions):
            if i % 9 == 0 and s == 0:
                continue  # a pair missing from the oldest session
            session.append(record(pair, metric, samples(i + s, n, 1.0 + 0.01 * s)))
        new.append(record(pair, metric, samples(i + 3 * (i % 2), n, 1.0 + (0.2 if i % 5 == 0 else 0.0))))
    new.append(record("p0", "only_new_ms", samples(0, 30, 1.0)))
    return sessions, new


@pytest.mark.parametrize("count", [1, 3])
def test_the_batched_gate_gives_the_per_record_verdicts(count: int) -> None:
    sessions, new = sessions_and_new()
    sessions = sessions[-count:]
    fail_on = FailOn.parse(DEFAULT_FAIL_ON)
    report = compare_sessions(sessions, new, fail_on)
    assert len(report.comparisons) == len({r.key for s in sessions for r in s} | {r.key for r in new})
    drifted = 0
    for comparison in report.comparisons:
        key = (comparison.pair, comparison.metric)
        bases = [next(r for r in s if r.key == key) for s in sessions if any(r.key == key for r in s)]
        news = [r for r in new if r.key == key]
        if not bases or not news:
            continue
        alone = compare_records(bases, news[0], fail_on)
        assert (alone.status, alone.blocking, alone.note, alone.method) == \
               (comparison.status, comparison.blocking, comparison.note, comparison.method)
        for field in ("ratio", "ci_low", "ci_high", "p_value"):
            a, b = getattr(alone, field), getattr(comparison, field)
            assert (a is None and b is None) or a == pytest.approx(b, rel=1e-12, nan_ok=True), field
        drifted += "drifted" in comparison.note
    assert drifted > 0, "the drifting shapes exercise the Kruskal-Wallis path"


def test_session_tests_match_the_per_case_test_and_the_scalar_medians() -> None:
    cases = [([samples(k, n, 1.0 + 0.01 * j) for j in range(sessions)], samples(k + 1, n, 1.05))
             for k in range(5) for n in (2, 9, 40) for sessions in (1, 2, 5)]
    batched = session_tests(cases)
    for (base, new), test in zip(cases, batched):
        assert session_test(base, new) == test
        x = np.asarray(new)
        assert log_median(new) == pytest.approx(math.log(float(np.median(x))), rel=1e-14)
        mad = float(np.median(np.abs(np.log(x) - np.median(np.log(x)))))
        assert log_median_se(new) == pytest.approx(math.sqrt(math.pi / 2) * 1.4826 * mad / math.sqrt(x.size),
                                                   rel=1e-12, abs=1e-300)
    assert log_median([-1.0, 0.0, 1.0]) != log_median([-1.0, 0.0, 1.0])  # NaN: no log of a median ≤ 0
    with pytest.raises(ValueError, match="at least one baseline session"):
        session_tests([([], [1.0, 2.0])])


def test_drifts_past_is_drift_of_wherever_it_can_exceed_the_limit() -> None:
    arrays = [np.asarray(samples(k, n, level)) for k in range(5) for n in (4, 10, 25, 50) for level in (1.0, -1.0)]
    for limit in (0.0, 0.05, 0.5):
        past = drifts_past(arrays, [limit] * len(arrays))
        for array, fast in zip(arrays, past):
            exact = drift_of(array)
            if exact > limit:
                assert fast == pytest.approx(exact, rel=1e-12)
            else:
                assert fast <= limit
    assert any(drift_of(a) > 0.05 for a in arrays)


def test_record_schema_and_result_record_have_the_same_fields() -> None:
    """The reader copies validated records field for field into ResultRecord (store._results_file)."""
    assert set(RecordSchema.model_fields) == {f.name for f in fields(ResultRecord)}


def test_the_one_pass_reader_reads_what_the_validating_reader_reads(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    writer = ResultsWriter(path, RunInfo(started_at="2026-01-01T02:00:00+00:00", backend="SIMULATED"))
    recs = [record(f"p{i}", f"metric_{i}_ms", samples(i, 20, 1.0)) for i in range(12)]
    recs.append(ResultRecord.from_metric_record(MetricRecord(
        pair="p0", model="m", device="d", kind="k", metric="fps", value=math.nan, unit="fps", backend="SIMULATED",
        status="info", family="throughput", direction="higher")))
    writer.add(recs, traces=[{"pair": "p0", "time_s": [0.0, 1.0], "power_w": [0.5, 0.6]}])
    writer.finish(0)
    fast = load_results(path)
    slow = results_from_json(json.loads(path.read_text(encoding="utf-8")), str(path))
    assert fast.run == slow.run and fast.traces == slow.traces and fast.path == slow.path
    assert len(fast.records) == len(slow.records) == len(recs)
    for a, b in zip(fast.records, slow.records):
        assert type(a) is ResultRecord and repr(a) == repr(b)  # repr: NaN values compare unequal
    assert math.isnan(fast.records[-1].value)


def test_an_invalid_file_still_gets_the_validating_readers_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    writer = ResultsWriter(path, RunInfo(started_at="2026-01-01T02:00:00+00:00", backend="SIMULATED"))
    writer.add([record("p0", "latency_ms", samples(0, 5, 1.0))])
    writer.finish(0)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["records"][0]["raw"][3] = -2.0
    path.write_text(json.dumps(data), encoding="utf-8")
    from pytest_edgehil.errors import ConfigError

    with pytest.raises(ConfigError, match=r"record #1: .*latency_ms .*is negative \(-2\)"):
        load_results(path)


def test_a_results_document_is_the_same_json_with_one_record_per_line():
    data = {"format": 3, "run": {"started_at": "2026-11-30T10:00:00Z", "tags": ["a", "é"]},
            "records": [{"metric": "energy_mj", "value": 4.9, "samples": [4.8, 5.0], "context": {"k": None}},
                        {"metric": "latency_ms", "value": 19.0, "samples": [], "context": {}}],
            "traces": []}
    text = dump_document(data)
    assert json.loads(text) == data
    lines = text.splitlines()
    assert sum(line.startswith('{"metric"') for line in lines) == 2  # each record whole on its own line
    with pytest.raises(ValueError):
        dump_document({"records": [{"value": math.nan}]})
