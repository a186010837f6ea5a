"""What the terminal shows: `-v` lines with value vs budget, the latency split per pair with the published
figure, marginal warnings at the test's line, and why each budgeted pair was not run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

from pytest_edgehil.config.budgets import load_budgets
from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.terminal import latency_split_lines, result_word, value_vs_budget

from .conftest import BUDGETS, REPO


def rec(metric: str, value: float, *, pair: str = "p-d", bound: str = "", margin: float | None = None,
        status: str = "info", published: float | None = None, unit: str = "ms") -> MetricRecord:
    return MetricRecord(pair=pair, model="p", device="d", kind="d", metric=metric, value=value, unit=unit,
                        backend="SIMULATED", status=status, bound=bound, margin_rel=margin, published=published)


def test_result_word_shows_the_value_nearest_its_limit_and_the_bench():
    records = [rec("end_to_end_ms", 18.97, bound="≤ 19.57 ms", margin=0.031, status="pass"),
               rec("retrieval_ms", 0.2399, bound="≤ 0.247 ms", margin=0.029, status="pass"),
               rec("fps", 52.7, unit="fps")]
    assert result_word("passed", records, "HW") == (
        "PASSED retrieval_ms 0.2399 ms vs ≤ 0.247 ms (+2.9%) +2 more [HW]")
    marginal = [rec("inference_mw", 71.0, bound="≤ 72 mW", margin=0.014, status="marginal", unit="mW")]
    assert result_word("passed", marginal, "SIMULATED").startswith("PASSED MARGINAL inference_mw 71 mW vs ≤ 72 mW")
    assert value_vs_budget(rec("fps", 52.7, unit="fps")) == "fps 52.7 fps (no budget)"


def test_latency_split_is_one_line_per_pair_with_the_published_total():
    records = [rec("readout_ms", 17.864), rec("inference_ms", 0.859), rec("retrieval_ms", 0.2399),
               rec("end_to_end_ms", 18.968, published=19.0), rec("inference_ms", 0.23, pair="q-d"),
               rec("inference_ms", 0.23, pair="r-d"), rec("readout_ms", 5.0, pair="r-d")]
    assert latency_split_lines(records) == [
        "p-d: readout 17.86 + inference 0.86 + retrieval 0.24 = 18.97 ms (published 19)",
        "r-d: readout 5.00 + inference 0.23 + retrieval ? ms (end to end not measured)"]
    assert latency_split_lines([rec("model_kb", 600.0, unit="KB")]) == []


def test_latency_split_takes_the_traces_inference_where_the_device_timer_did_not_time_it():
    # TinyTracker on the Coral (no inference_ms budget) read "readout 6.11 + inference ? + retrieval 0.30 =
    # 34.36 ms" while its summary showed trace_inference_ms 27.97 ms: the split names that figure and its source.
    records = [rec("readout_ms", 6.105), rec("retrieval_ms", 0.3008), rec("trace_inference_ms", 27.97),
               rec("end_to_end_ms", 34.36, published=34.4)]
    assert latency_split_lines(records) == [
        "p-d: readout 6.11 + inference 27.97 (power trace) + retrieval 0.30 = 34.36 ms (published 34.4)"]
    # The device timer's figure, where there is one, is the split's (the trace's is its cross-check).
    both = [*records, rec("inference_ms", 27.95)]
    assert latency_split_lines(both)[0].startswith("p-d: readout 6.11 + inference 27.95 + retrieval 0.30")


def _summary_value(out: str, metric: str) -> float:
    match = re.search(rf"^tinytracker-imx500\s+\w+\s+{metric}\s+([0-9.]+) ms", out, re.MULTILINE)
    assert match, f"no summary row for {metric}:\n{out}"
    return float(match.group(1))


def test_suites_verbose_print_values_the_split_line_and_why_pairs_did_not_run(tmp_path):
    """The command of the README, run as a user runs it: `pytest suites/ --device imx500 --model tinytracker -v`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites/", "--device", "imx500", "--model", "tinytracker",
                           "-v", "-p", "no:cacheprovider", "-p", "no:randomly", f"--edgehil-save={tmp_path / 'r.json'}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.search(r"test_inference_latency\[tinytracker-imx500\] PASSED inference_ms [0-9.]+ ms vs ≤ [0-9.]+ ms "
                     r"\([+-][0-9.]+%\) \[SIMULATED\]", out), out
    published = load_budgets(BUDGETS)
    e2e = next(b for b in published if b.id == "tinytracker-imx500").limits["end_to_end_ms"].published
    split = re.search(r"tinytracker-imx500: readout ([0-9.]+) \+ inference ([0-9.]+) \+ retrieval ([0-9.]+) = "
                      r"([0-9.]+) ms \(published ([0-9.]+)\)", out)
    assert split, out
    # The split shows the summary table's medians (to 2 decimals) and the budget table's published figure.
    for stage, shown in zip(("readout_ms", "inference_ms", "retrieval_ms", "end_to_end_ms"), split.groups()):
        assert abs(float(shown) - _summary_value(out, stage)) <= 0.0051, (stage, shown)
    assert float(split.group(5)) == e2e
    not_run = " ".join(line for line in out.splitlines() if line.startswith("edgehil: not run ("))
    assert "qsegment-imx500" in not_run and "(model not in --model tinytracker)" in not_run
    assert "tinytracker-coral" in not_run and "(device not in --device imx500)" in not_run


def test_marginal_warning_points_at_the_test_line(edgehil_project, tmp_path):
    budgets = tmp_path / "near.toml"
    budgets.write_text(textwrap.dedent("""
        [[budget]]
        model = "tinytracker"
        device = "imx500"
        [budget.limits]
        inference_ms = { max = 0.88, marginal = 0.05, source = "near" }
    """))
    edgehil_project.makepyfile(test_lat="""
        import pytest
        from pytest_edgehil.measure.latency import stage_timings, timing_arrays_ms

        @pytest.mark.edgehil_metrics("inference_ms")
        def test_inference(edgehil_dut, edgehil_record):
            ms = timing_arrays_ms(stage_timings(edgehil_dut, 10))
            edgehil_record.check_median("inference_ms", ms["inference_ms"])
    """)
    result = edgehil_project.runpytest(f"--budgets={budgets}", "--budgets-only", "--device=imx500", "-v")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*test_inference?tinytracker-imx500? PASSED MARGINAL inference_ms*vs ≤ 0.88 ms*",
                                 "*test_lat.py:7: EdgeHILMarginalWarning: marginal: tinytracker on imx500*"])
    assert "recorder.py" not in result.stdout.str()
