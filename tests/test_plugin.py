"""The plugin seen from a user's seat: options, selection, parametrization, messages, summary."""

from __future__ import annotations

import textwrap

from .conftest import BUDGETS, MODELS

LATENCY_SUITE = """
import pytest
from pytest_edgehil.measure.latency import stage_timings, timing_arrays_ms

@pytest.mark.edgehil_metrics("inference_ms", unbudgeted=True)
def test_inference(edgehil_dut, edgehil_record):
    ms = timing_arrays_ms(stage_timings(edgehil_dut, 10))
    edgehil_record.check_median("inference_ms", ms["inference_ms"])
"""


def test_device_option_parametrizes_and_deselects(edgehil_project):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest("--device=imx500", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_inference?tinytracker-imx500?*PASSED*SIMULATED*",
                                 "*deselected*"])
    assert "coral" not in "".join(line for line in result.outlines if "PASSED" in line)


def test_device_and_model_select_one_pair(edgehil_project):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest("--device=imx500", "--model=tinytracker", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_inference?tinytracker-imx500?*", "*edgehil summary (SIMULATED)*",
                                 "*tinytracker-imx500*inference_ms*ms*"])


def test_unknown_device_is_a_usage_error_listing_known_ones(edgehil_project):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest("--device=esp32")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--device esp32*known devices*imx500*"])


def test_hw_backend_refuses_simulated_lab(edgehil_project):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest("--backend=hw")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--backend hw*simulated*"])


def test_hardware_lab_never_falls_back_to_simulation(edgehil_project):
    lab = edgehil_project.makefile(".toml", lab='[devices.imx500]\nkind = "imx500"\nport = "/dev/ttyEDGEHIL-absent"\n')
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest(f"--lab={lab}", "--device=imx500")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*imx500*/dev/ttyEDGEHIL-absent*115200 baud*"])
    assert "SIMULATED" not in result.stdout.str().split("short test summary")[0].split("edgehil:")[1][:40]


def test_failure_message_names_value_budget_margin_samples_device_model_backend(edgehil_project, tmp_path):
    budgets = tmp_path / "tight.toml"
    budgets.write_text(textwrap.dedent("""
        [[budget]]
        model = "tinytracker"
        device = "imx500"
        [budget.limits]
        inference_ms = { max = 0.5, source = "a wish" }
    """))
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest(f"--budgets={budgets}", "--budgets-only", "--device=imx500")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        ("*over budget: tinytracker on imx500 (SIMULATED): inference_ms = 0.8* ms vs budget ≤ 0.5 ms"
        " — margin -7*%, n=10*a wish*"),
        "*serial traffic imx500*",
    ])


def test_marginal_value_passes_with_a_warning(edgehil_project, tmp_path):
    budgets = tmp_path / "near.toml"
    budgets.write_text(textwrap.dedent("""
        [[budget]]
        model = "tinytracker"
        device = "imx500"
        [budget.limits]
        inference_ms = { max = 0.88, marginal = 0.05, source = "near" }
    """))
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest(f"--budgets={budgets}", "--budgets-only", "--device=imx500")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*EdgeHILMarginalWarning: marginal: tinytracker on imx500*",
                                 "*tinytracker-imx500*MARGINAL*"])


def test_twice_as_heavy_model_fails_its_budget_clearly(edgehil_project, tmp_path):
    """A model with ~2x the MACs takes ~2x the inference time and fails the base model's budget."""
    wide = MODELS / "variants" / "qsegment_wide.tflite"
    budgets = tmp_path / "b.toml"
    base = BUDGETS.read_text()
    budgets.write_text(base + textwrap.dedent(f"""
        [[budget]]
        model = "{wide}"
        device = "imx500"
        [budget.limits]
        inference_ms = {{ max = 0.237, published = 0.23, source = "Q-Segment budget applied to a heavier variant" }}
    """))
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest(f"--budgets={budgets}", "--device=imx500", f"--model=qsegment,{wide}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*over budget: qsegment_wide on imx500 (SIMULATED): inference_ms = 0.[34]* ms vs budget ≤ 0.237 ms (published 0.23 ms, +*% from it) — margin -*%, n=10*"])


def test_user_tflite_runs_without_budget(edgehil_project):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest(f"--model={MODELS / 'tinytracker.tflite'}", "--device=spresense", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*tinytracker-spresense*inference_ms*(none)*"])


def test_unknown_model_is_a_usage_error(edgehil_project):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest("--model=resnet9000")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*resnet9000*known models*tinytracker*"])


def test_header_says_simulated(edgehil_project):
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest("--device=imx500", "--co")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["edgehil: SIMULATED*devices: imx500*"])


def test_custom_device_kind_registered_from_conftest(edgehil_project, tmp_path):
    edgehil_project.makeconftest("""
        import dataclasses
        from pytest_edgehil.config.kinds import DeviceKind, register_device_kind
        from pytest_edgehil.sim.profile import (kind_facts, register_twin_profile, twin_profile,
                                                unregister_twin_profile)

        kind = register_device_kind(DeviceKind("my-board", "a lab's own board", ram_bytes=1 << 20,
                                               flash_bytes=4 << 20, supply_v=3.3), replace=True)
        # The twin: spresense's calibration on my-board's hardware facts.
        register_twin_profile(dataclasses.replace(twin_profile("spresense"), kind="my-board", **kind_facts(kind)),
                              replace=True)

        def pytest_unconfigure(config):
            unregister_twin_profile("my-board")  # pytester runs in-process: later simulated labs stay as shipped
    """)
    lab = tmp_path / "lab.toml"
    lab.write_text('[devices.board-1]\nkind = "my-board"\nsimulated = true\n')
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest(f"--lab={lab}", f"--model={MODELS / 'tinytracker.tflite'}", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*tinytracker-board-1*PASSED*"])
