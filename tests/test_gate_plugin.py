"""The gate seen from a user's seat: --edgehil-save / --edgehil-baseline / --edgehil-fail-on, JUnit XML
properties, pytest-benchmark's extra_info, and the done-means demo on the simulated bench."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET

import pytest

from pytest_edgehil.results.store import load_results

from .conftest import REPO

ENERGY_SUITE = (REPO / "suites" / "test_energy.py").read_text(encoding="utf-8")
LOOSE_BUDGETS = """
[[budget]]
model = "qsegment"
device = "imx500"
[budget.limits]
inference_mj = { max = 1.0, source = "loose: this test is about the gate, not the budget" }
inference_mw = { max = 500.0 }
"""
# Swaps the imx500 twin for one drawing 8 % more power while inferring, for this pytest run only
# (the twin registry is process-wide and pytester runs in-process, so the original goes back).
HEAVIER_IMX500_CONFTEST = """
from dataclasses import replace

from pytest_edgehil.sim.profile import register_twin_profile, twin_profile, unregister_twin_profile


def pytest_configure(config):
    original = twin_profile("imx500")
    power = original.power
    register_twin_profile(replace(original, power=replace(power, inference_w=power.inference_w * 1.08)),
                          replace=True)


def pytest_unconfigure(config):
    unregister_twin_profile("imx500")
"""
LATENCY_SUITE = """
import pytest
from pytest_edgehil.measure.latency import stage_timings, timing_arrays_ms

@pytest.mark.edgehil_metrics("inference_ms", unbudgeted=True)
def test_inference(edgehil_dut, edgehil_record):
    ms = timing_arrays_ms(stage_timings(edgehil_dut, 10))
    edgehil_record.check_median("inference_ms", ms["inference_ms"])
"""


def test_done_means_heavier_device_fails_naming_pair_metric_ratio_and_ci_unchanged_passes(edgehil_project):
    budgets = edgehil_project.makefile(".toml", loose_budgets=LOOSE_BUDGETS)
    # One bench across the three sessions: no between-session power drift (see docs/measurement.md).
    lab = edgehil_project.makefile(".toml", lab_no_drift="[physics]\nsession_drift_rel = 0.0\n"
                                   "[devices.imx500]\nkind = \"imx500\"\nsimulated = true\n")
    edgehil_project.makepyfile(test_energy=ENERGY_SUITE)
    common = ["--device=imx500", f"--budgets={budgets}", "--budgets-only", f"--lab={lab}", "-p", "no:cacheprovider"]
    base = edgehil_project.path / "baseline" / "main.json"

    saved = edgehil_project.runpytest(*common, "--edgehil-seed=1", f"--edgehil-save={base}")
    saved.assert_outcomes(passed=2, skipped=1)  # end-to-end energy: no such limit in these budgets
    assert {r.metric for r in load_results(base).records} == {"inference_mj", "inference_mw", "trace_inference_ms"}

    conftest = edgehil_project.makeconftest(HEAVIER_IMX500_CONFTEST)
    heavier = edgehil_project.runpytest(*common, "--edgehil-seed=2", f"--edgehil-baseline={base}")
    heavier.assert_outcomes(passed=2, skipped=1)  # every test passed its budget: the gate alone fails the run
    assert heavier.ret == 1
    heavier.stdout.fnmatch_lines([
        "*edgehil gate vs baseline*main.json*",
        ("FAIL qsegment-imx500 inference_mj: * → * mJ, ratio 1.0[789]* (95 % CI 1.0*–1.0*), one-sided "
         "Mann–Whitney p = *30 vs 30 per-inference samples; *% worse*energy threshold 5%*"),
        "edgehil gate FAILED: 2 blocking*",
    ])
    heavier.stdout.fnmatch_lines(["FAIL qsegment-imx500 inference_mw: *ratio 1.0[789]*"])
    assert "FAIL qsegment-imx500 trace_inference_ms" not in heavier.stdout.str()  # same timing: not blamed

    conftest.unlink()
    unchanged = edgehil_project.runpytest(*common, "--edgehil-seed=3", f"--edgehil-baseline={base}")
    unchanged.assert_outcomes(passed=2, skipped=1)
    assert unchanged.ret == 0
    unchanged.stdout.fnmatch_lines(["edgehil gate passed (3 SAME; fail on energy +5 %, power +5 %, latency +10 %, throughput +10 %, accuracy +1 %)"])


def test_saved_results_hold_every_record_with_run_context(edgehil_project):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    out = edgehil_project.path / "results.json"
    result = edgehil_project.runpytest("--device=imx500", "--edgehil-seed=5", f"--edgehil-save={out}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*edgehil results: {out} (2 records)*"])
    saved = load_results(out)
    assert saved.run.complete and saved.run.exit_status == 0 and saved.run.backend == "SIMULATED"
    assert saved.run.seed == 5 and saved.run.devices == ["imx500"] and "--edgehil-seed=5" in saved.run.argv
    assert sorted(r.pair for r in saved.records) == ["qsegment-imx500", "tinytracker-imx500"]
    for r in saved.records:
        assert r.metric == "inference_ms" and r.unit == "ms" and len(r.raw) == 10 and r.median == r.value
        assert r.ci_low <= r.value <= r.ci_high and r.outcome == "passed" and r.test.endswith(f"[{r.pair}]")
        assert len(r.context["model_sha256"]) == 64 and r.context["device_firmware"].startswith("imx500-twin")


def test_measured_values_are_junit_xml_properties(edgehil_project):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    xml, out = edgehil_project.path / "junit.xml", edgehil_project.path / "r.json"
    edgehil_project.runpytest("--device=imx500", f"--junitxml={xml}", f"--edgehil-save={out}").assert_outcomes(passed=2)
    recorded = {r.test.split("::")[-1]: r.value for r in load_results(out).records}
    found = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        for prop in case.iter("property"):
            if prop.get("name") == "edgehil:inference_ms":
                found[case.get("name")] = float(prop.get("value"))
    assert found == recorded and len(found) == 2


def test_gate_never_lowers_the_exit_status_and_results_are_kept_by_default(edgehil_project):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE + textwrap.dedent("""
        def test_plugin_presence(request):
            # Present with or without --edgehil-save: a run over budgeted pairs always keeps its results.
            assert request.config.pluginmanager.has_plugin("edgehil-gate")

        def test_broken():
            assert False, "a plain failing test"
    """))
    plain = edgehil_project.runpytest("--device=imx500", "-p", "no:cacheprovider")
    plain.assert_outcomes(passed=3, failed=1)
    default = load_results(edgehil_project.path / "edgehil-results" / "latest.json")  # nobody asked to save
    assert default.run.exit_status == 1 and {r.pair for r in default.records} == {"qsegment-imx500",
                                                                                    "tinytracker-imx500"}
    out = edgehil_project.path / "r.json"
    saved = edgehil_project.runpytest("--device=imx500", f"--edgehil-save={out}", "--edgehil-seed=1")
    saved.assert_outcomes(passed=3, failed=1)
    gated = edgehil_project.runpytest("--device=imx500", f"--edgehil-baseline={out}", "--edgehil-seed=2")
    gated.assert_outcomes(passed=3, failed=1)
    assert gated.ret == 1  # the gate passing does not turn the failure into success
    gated.stdout.fnmatch_lines(["edgehil gate passed*"])
    assert load_results(out).run.exit_status == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--edgehil-baseline=absent.json"], "*absent.json does not exist*--edgehil-save*"),
    (["--edgehil-save=r.json", "--edgehil-fail-on=energy:5%,speed:2%"], "*unknown metric family 'speed'*"),
])
def test_bad_gate_options_fail_at_start_up(edgehil_project, args, message):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest("--device=imx500", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_energy_goes_into_pytest_benchmark_extra_info(edgehil_project, monkeypatch):
    # The inner run is in-process: under `pytest -n N` it would inherit the worker's PYTEST_XDIST_WORKER,
    # and pytest-benchmark disables itself wherever that variable is set.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    edgehil_project.makepyfile(test_bench="""
        import pytest
        from pytest_edgehil.results.store import store_energy_in_benchmark

        @pytest.mark.edgehil_metrics("inference_mw")
        def test_run_one(benchmark, edgehil_dut, edgehil_energy):
            benchmark.pedantic(edgehil_dut.client.run, args=(1,), rounds=3, iterations=1)
            store_energy_in_benchmark(benchmark, edgehil_energy)
    """)
    out = edgehil_project.path / "bench.json"
    result = edgehil_project.runpytest("--device=imx500", "--model=qsegment", f"--benchmark-json={out}")
    result.assert_outcomes(passed=1)
    (bench,) = json.loads(out.read_text())["benchmarks"]
    info = bench["extra_info"]
    assert bench["stats"]["rounds"] == 3  # pytest-benchmark's own timings are still there
    assert info["edgehil_inference_mj_ci"][0] <= info["edgehil_inference_mj"] <= info["edgehil_inference_mj_ci"][1]
    assert info["edgehil_samples"] == 30 and info["edgehil_windows"] == 3
    assert info["edgehil_sample_interval_s"] == pytest.approx(5.12e-6)
    # energy / power = the inference time: Q-Segment takes ≈ 0.17 ms on the IMX500 twin.
    assert info["edgehil_inference_mj"] / info["edgehil_inference_mw"] * 1e3 == pytest.approx(0.23, rel=0.05)


def test_under_xdist_only_the_controller_writes_and_every_worker_record_arrives(edgehil_project):
    pytest.importorskip("xdist")
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    out = edgehil_project.path / "r.json"
    result = edgehil_project.runpytest("--device=imx500", "-n", "2", f"--edgehil-save={out}")
    result.assert_outcomes(passed=2)
    saved = load_results(out)
    assert saved.run.complete and sorted(r.pair for r in saved.records) == ["qsegment-imx500", "tinytracker-imx500"]
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".r.json")] == []


def test_a_results_file_that_cannot_be_written_fails_the_run_after_measuring(edgehil_project):
    edgehil_project.makepyfile(test_disk="""
        import os
        import pytest

        @pytest.mark.edgehil_metrics(unbudgeted=True)
        def test_first(edgehil_record):
            edgehil_record.check_median("step_ms", [1.0, 2.0, 3.0])

        @pytest.mark.edgehil_metrics(unbudgeted=True)
        def test_disk_fills_up(edgehil_record, monkeypatch):
            def disk_full(fd):
                raise OSError(28, "No space left on device")
            monkeypatch.setattr(os, "fsync", disk_full)  # undone at teardown, after the record's append
            edgehil_record.check_median("step_ms", [4.0, 5.0, 6.0])
    """)
    out = edgehil_project.path / "r.json"
    result = edgehil_project.runpytest("--device=imx500", "--model=qsegment", f"--edgehil-save={out}")
    result.assert_outcomes(passed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*edgehil results: results journal *r.json*: cannot write the results file: No space*"])
    assert [r.raw for r in load_results(out).records] == [[1.0, 2.0, 3.0]]  # what was written stays valid


SLOWER_CORAL_CONFTEST = """
from dataclasses import replace

from pytest_edgehil.sim.profile import register_twin_profile, twin_profile, unregister_twin_profile


def pytest_configure(config):
    original = twin_profile("coral")
    register_twin_profile(replace(original, readout_s=original.readout_s * 2.0), replace=True)


def pytest_unconfigure(config):
    unregister_twin_profile("coral")
"""


def test_a_falling_frame_rate_from_the_shipped_latency_suite_blocks_the_merge(edgehil_project):
    # The shipped suite records fps with one sample per inference, so a slower board's fps is tested
    # (and falls past the default throughput threshold), not left UNKNOWN as a single value would be.
    edgehil_project.makepyfile(test_latency=(REPO / "suites" / "test_latency.py").read_text(encoding="utf-8"))
    edgehil_project.makeconftest("""
import pytest

@pytest.fixture
def latency_runs():
    return 20
""")
    # Loose budgets: this test is about the gate; the shipped ones would fail the slower board first.
    budgets = edgehil_project.makefile(".toml", loose='''
[[budget]]
model = "tinytracker"
device = "coral"
[budget.limits]
end_to_end_ms = { max = 1000.0 }
fps = { min = 1.0 }
''')
    base = edgehil_project.path / "base.json"
    common = ["--device=coral", f"--budgets={budgets}", "--budgets-only", "-p", "no:cacheprovider", "-k", "end_to_end"]
    edgehil_project.runpytest(*common, f"--edgehil-save={base}").assert_outcomes(passed=1)
    fps = {r.metric: r for r in load_results(base).records}["fps"]
    assert fps.raw is not None and len(fps.raw) == 20 and fps.direction == "higher"

    edgehil_project.makeconftest(SLOWER_CORAL_CONFTEST + """
@pytest.fixture
def latency_runs():
    return 20
""".replace("@pytest", "import pytest\n@pytest"))
    slower = edgehil_project.runpytest(*common, f"--edgehil-baseline={base}")
    assert slower.ret == 1
    slower.stdout.fnmatch_lines(["*tinytracker-coral  fps * REGRESSED ✗ FAILS*",
                                 "FAIL tinytracker-coral fps: *higher is better; throughput threshold 10%*"])


def test_the_default_results_folder_keeps_the_newest_runs_only(edgehil_project):
    edgehil_project.makepyfile(test_keep="""
        import pytest

        @pytest.mark.edgehil_metrics(unbudgeted=True)
        def test_step(edgehil_record):
            edgehil_record.check_median("step_ms", [1.0, 2.0, 3.0])
    """)
    results = edgehil_project.path / "edgehil-results"
    results.mkdir()
    old = [results / f"2020010{day}T000000Z-1-abcd.json" for day in range(1, 4)]
    for path in old:
        path.write_text("{}")
    result = edgehil_project.runpytest("--device=imx500", "--model=qsegment", "-o", "edgehil_results_keep=2")
    result.assert_outcomes(passed=1)
    kept = sorted(p.name for p in results.iterdir())
    assert kept[0] == old[-1].name and kept[-1] == "latest.json" and len(kept) == 3  # newest old + this run
    (this_run,) = [name for name in kept if name not in (old[-1].name, "latest.json")]
    assert load_results(results / this_run).run.complete
    bad = edgehil_project.runpytest("--device=imx500", "--model=qsegment", "-o", "edgehil_results_keep=0")
    bad.stderr.fnmatch_lines(["*edgehil_results_keep = '0' must be a whole number of runs >= 1*"])
