"""What a gate verdict means to its user: a threshold is the largest change that passes, inputs that make
a pass meaningless are named verdicts, a baseline of several sessions measures the drift, a single
session cannot rule it out, and an interrupted run is saved as incomplete."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.cli import EXIT_OK, EXIT_REGRESSION, main
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.gate import FailOn, GateStatus, compare_records, compare_sessions
from pytest_edgehil.results.gate_inputs import check_inputs, load_baseline, parse_allow
from pytest_edgehil.results.records import ab_context
from pytest_edgehil.results.store import ResultRecord, ResultsWriter, RunInfo, load_results, utc_now

from .conftest import REPO

ENERGY_5 = FailOn.parse("energy:5%")


def record(samples: np.ndarray, *, outcome: str = "passed", sha: str = "a" * 64, **fields: object) -> ResultRecord:
    raw = [float(x) for x in samples]
    return ResultRecord(pair="qsegment-imx500", model="qsegment", device="imx500", kind="imx500",
                        metric="inference_mj", value=float(np.median(raw)), unit="mJ", backend="SIMULATED",
                        status="info", raw=raw, context={"model_sha256": sha}, direction="lower", family="energy",
                        test="suites/test_energy.py::test_inference_energy[qsegment-imx500]", outcome=outcome,
                        **fields)  # type: ignore[arg-type]


def exact(level: float, n: int = 30, cv: float = 0.01) -> np.ndarray:
    """Samples whose median is exactly `level` (a symmetric spread around it): the change is known."""
    offsets = np.linspace(-1.5, 1.5, n) * cv
    return level * np.exp(offsets)


def save(path: Path, records: list[ResultRecord], *, complete: bool = True, commit: str | None = None,
         started_at: str | None = None) -> Path:
    writer = ResultsWriter(path, RunInfo(started_at=started_at or utc_now(), backend="SIMULATED",
                                         git_commit=commit, git_dirty=False if commit else None))
    writer.add(records)
    if complete:
        writer.finish(0)
    return path


# ------------------------------------------------------------------------------------ threshold semantics


@pytest.mark.parametrize(("change", "status"), [(1.03, GateStatus.SAME), (1.08, GateStatus.REGRESSED)])
def test_energy_5_percent_passes_plus_3_and_fails_plus_8(tmp_path: Path, change: float, status: GateStatus,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A +3 % estimate is under the 5 % threshold: it passes however significant; +8 % fails."""
    base = save(tmp_path / "base.json", [record(exact(0.0114))])
    new = save(tmp_path / "new.json", [record(exact(0.0114 * change))])
    expected = EXIT_OK if status is GateStatus.SAME else EXIT_REGRESSION
    assert main(["compare", str(base), str(new), "--fail-on", "energy:5%"]) == expected
    out = capsys.readouterr().out
    assert ("FAIL qsegment-imx500 inference_mj" in out) == (status is GateStatus.REGRESSED)
    c = compare_records(load_results(base).records[0], load_results(new).records[0], ENERGY_5)
    assert c.status is status and c.ratio == pytest.approx(change, rel=1e-9)


def test_the_threshold_is_never_cut_below_what_it_says_even_in_one_session() -> None:
    """+4.5 % measured tightly in one session (A/B, 8 rounds): highly significant, under 5 %: SAME."""
    base_rounds = [exact(0.0114, 50, 0.002).tolist() for _ in range(8)]
    new_rounds = [exact(0.0114 * 1.045, 50, 0.002).tolist() for _ in range(8)]
    from pytest_edgehil.results.gate import compare_paired

    ab = record(np.concatenate(new_rounds))
    ab = ResultRecord(**{**ab.__dict__, "context": ab_context(base_rounds, new_rounds, baseline_sha256="b" * 64,
                                                              source="dir")})
    c = compare_paired(ab, ENERGY_5)
    assert c is not None and c.p_value is not None and c.p_value < 1e-3
    assert c.status is GateStatus.SAME and not c.blocking
    assert compare_paired(ab, FailOn.parse("energy:4%")).status is GateStatus.REGRESSED  # type: ignore[union-attr]


def test_higher_is_better_user_metric_regresses_when_it_falls() -> None:
    """A metric declared through a `min` budget (direction "higher") regresses when it falls."""
    def top1(value: float) -> ResultRecord:
        return ResultRecord(pair="qsegment-coral", model="qsegment", device="coral", kind="coral", metric="top1",
                            value=value, unit="", backend="SIMULATED", status="pass", bound="≥ 0.7",
                            direction="higher", family="accuracy")
    fell = compare_records(top1(0.72), top1(0.60), FailOn.parse("accuracy:1%"))
    rose = compare_records(top1(0.72), top1(0.80), FailOn.parse("accuracy:1%"))
    assert fell.status is GateStatus.REGRESSED and fell.blocking
    assert rose.status is GateStatus.IMPROVED and not rose.blocking


# ----------------------------------------------------------------------------------- inputs as verdicts


def test_incomplete_empty_and_failed_inputs_are_named_non_pass_verdicts(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    good = save(tmp_path / "good.json", [record(exact(0.0114))])
    killed = save(tmp_path / "killed.json", [record(exact(0.0114))], complete=False)
    empty = save(tmp_path / "empty.json", [])
    failed = save(tmp_path / "failed.json", [record(exact(0.0114), outcome="failed")])
    for other, kind in ((killed, "INCOMPLETE"), (empty, "EMPTY"), (failed, "FAILED-TESTS")):
        for base, new in ((good, other), (other, good)):
            assert main(["compare", str(base), str(new)]) == EXIT_REGRESSION, (kind, base.name, new.name)
            out = capsys.readouterr().out
            assert f"FAIL INPUT {kind}:" in out and "edgehil gate FAILED" in out
            assert other.name in out
    # Each can be allowed by name; the verdict is still shown.
    assert main(["compare", str(good), str(killed), "--allow", "incomplete"]) == EXIT_OK
    assert "INPUT INCOMPLETE (allowed)" in capsys.readouterr().out
    assert main(["compare", str(good), str(failed), "--allow", "failed-tests,incomplete"]) == EXIT_OK
    capsys.readouterr()
    assert main(["compare", str(good), str(empty), "--allow", "empty"]) == EXIT_OK


def test_an_aa_comparison_with_a_changed_model_is_named(tmp_path: Path) -> None:
    base = save(tmp_path / "a.json", [record(exact(0.0114))], commit="c" * 40)
    new = save(tmp_path / "b.json", [record(exact(0.0114), sha="f" * 64)], commit="c" * 40)
    problems = check_inputs([load_results(base)], load_results(new))
    assert [p.kind for p in problems] == ["model-changed"] and problems[0].blocking
    assert "cccccccccccc" in problems[0].text and "aaaaaaaaaaaa → ffffffffffff" in problems[0].text
    assert main(["compare", str(base), str(new)]) == EXIT_REGRESSION
    other_commit = save(tmp_path / "c.json", [record(exact(0.0114), sha="f" * 64)], commit="d" * 40)
    assert check_inputs([load_results(base)], load_results(other_commit)) == []


def test_allow_rejects_unknown_words() -> None:
    assert parse_allow("incomplete, empty") == {"incomplete", "empty"}
    with pytest.raises(ConfigError, match="unknown input problem 'incompleted'.*failed-tests"):
        parse_allow("incompleted")


# --------------------------------------------------------------------------------- drift across sessions


def test_single_session_baseline_is_unknown_not_a_false_block_and_says_how_much_drift() -> None:
    """+4 % between two sessions at 1.5 % drift: past a 2.5 % threshold, but within what drift explains."""
    c = compare_records(record(exact(0.0114)), record(exact(0.0114 * 1.04)), FailOn.parse("energy:2.5%"))
    assert c.status is GateStatus.UNKNOWN and not c.blocking
    assert "cannot rule out" in c.note and "drift between sessions" in c.note and "1.5% assumed" in c.note
    allowance = float(c.note.split("cannot rule out ")[1].split("%")[0]) / 100
    assert 0.04 < allowance < 0.08  # ≈ z(0.995)·√2·1.5 % ≈ 5 %, plus the samples' own noise


def test_a_baseline_of_sessions_measures_the_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(5)
    levels = 0.0114 * (1 + 0.003 * rng.standard_normal(6))  # a steady bench: sessions within ±0.5 %
    for i, level in enumerate(levels):
        save(tmp_path / f"night-{i}.json", [record(exact(float(level)))], started_at=f"2026-11-0{i + 1}T00:00:00+00:00")
    save(tmp_path / "latest.json", [record(exact(9.0))])  # a copy of the newest: never a session
    sessions = load_baseline(tmp_path)
    assert len(sessions) == 6 and [s.run.started_at for s in sessions] == sorted(s.run.started_at for s in sessions)
    new = [record(exact(float(np.mean(levels)) * 1.04))]
    report = compare_sessions([s.records for s in sessions], new, FailOn.parse("energy:2.5%"))
    c = report.comparisons[0]
    assert c.status is GateStatus.REGRESSED and c.blocking and c.n_base == 6
    assert "6 baseline sessions" in c.method and "assumed" not in c.method
    # The same +4 % against one of those sessions alone cannot be told from drift.
    alone = compare_records(sessions[0].records[0], new[0], FailOn.parse("energy:2.5%"))
    assert alone.status is GateStatus.UNKNOWN
    (tmp_path / "candidate").mkdir()
    out = save(tmp_path / "candidate" / "new.json", new)
    assert main(["compare", str(tmp_path), str(out), "--fail-on", "energy:2.5%"]) == EXIT_REGRESSION
    assert "6 sessions" in capsys.readouterr().out
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ConfigError, match="holds no results files"):
        load_baseline(tmp_path / "nothing")


def test_session_medians_not_pooled_samples_are_the_unit() -> None:
    """Two sessions 3 % apart with 3000 samples each: pooled samples would call it overwhelming; a
    single-session baseline leaves it within drift."""
    c = compare_records(record(exact(0.0114, 3000)), record(exact(0.0114 * 1.03, 3000)), FailOn.parse("energy:2.5%"))
    assert c.status is GateStatus.UNKNOWN and c.p_value is not None and c.p_value > 0.01
    assert not math.isclose(c.ci_low or 0, c.ci_high or 0)


# ------------------------------------------------------------------------------ interrupted runs on disk


SLOW_SUITE = textwrap.dedent("""
    import os, signal, time
    import pytest

    @pytest.mark.edgehil_metrics("inference_mj", unbudgeted=True)
    def test_measure(edgehil_record):
        edgehil_record.check("inference_mj", 0.0114, samples=[0.0113, 0.0114, 0.0115])

    @pytest.mark.edgehil_metrics("inference_mj", unbudgeted=True)
    def test_then_killed(edgehil_pair):
        os.kill(os.getpid(), getattr(signal, os.environ["EDGEHIL_TEST_SIGNAL"]))
        time.sleep(30)
""")


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupted_run_is_saved_incomplete(tmp_path: Path, signame: str) -> None:
    """Ctrl-C and SIGTERM: the run unwinds, the file holds what was measured, `complete: false`."""
    (tmp_path / "test_slow.py").write_text(SLOW_SUITE, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nedgehil_models_dir = {REPO / 'fixtures' / 'models'}\n",
                                         encoding="utf-8")
    out = tmp_path / "run.json"
    env = {**os.environ, "EDGEHIL_TEST_SIGNAL": signame, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "test_slow.py", "--device=imx500",
                           f"--model={REPO / 'fixtures' / 'models' / 'qsegment.tflite'}",
                           f"--edgehil-save={out}", "-p", "no:cacheprovider", "-p", "no:xdist"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]  # pytest's "interrupted"
    saved = load_results(out)
    assert saved.run.complete is False and saved.run.exit_status == 2
    assert [r.metric for r in saved.records] == ["inference_mj"]
