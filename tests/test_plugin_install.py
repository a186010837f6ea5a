"""The plugin as every project with the package installed meets it: `--help`, import cost, silence,
fixture names, and start-up errors that say what to do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO

HEAVY = ("numpy", "scipy", "sklearn", "matplotlib", "pyvisa", "serial", "hypothesis", "ai_edge_litert",
         "pytest_edgehil.sim", "pytest_edgehil.results", "pytest_edgehil.measure", "pytest_edgehil.bench",
         "pydantic", "pytest_edgehil.config.schema", "pytest_edgehil.config.schemas",
         "pytest_edgehil.config.card_schemas")
# The option help needs the gate's default and the metric families: two stdlib-only modules.
LIGHT_RESULTS = ("pytest_edgehil.results", "pytest_edgehil.results.comparison", "pytest_edgehil.results.vocabulary")


def _python(code: str, cwd: os.PathLike[str] | str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, timeout=120)


def test_pytest_help_works_and_shows_the_edgehil_group(tmp_path):
    # A subprocess: the plugin is loaded through its pytest11 entry point, as in any user's project.
    result = _python("import sys, pytest; sys.exit(pytest.main(['--help']))", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "edge hardware-in-the-loop (pytest-edgehil)" in result.stdout
    assert "--edgehil-fail-on" in result.stdout
    # printed unescaped (argparse wraps the help text, so compare it without its line breaks)
    assert "energy:2.5%,power:" in "".join(result.stdout.split()) and "%%" not in result.stdout
    assert "throughput" in result.stdout  # the families come from the vocabulary


def test_importing_the_plugin_loads_nothing_heavy(tmp_path):
    result = _python("import sys, pytest_edgehil.plugin\n"
                     f"print(sorted(m for m in sys.modules if (m.split('.')[0] in {HEAVY!r} or m.startswith({HEAVY!r}))"
                     f" and m not in {LIGHT_RESULTS!r}))",
                     tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_unrelated_project_sees_no_header_and_no_summary(pytester: pytest.Pytester):
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    # pytest's own "plugins:" line names every installed plugin, and pytest-metadata (pulled in by
    # pytest-html) echoes that list as "metadata: {...}"; nothing else may mention edgehil.
    assert [line for line in result.outlines
            if "edgehil" in line and not line.startswith(("plugins:", "metadata:"))] == []


def test_any_edgehil_option_turns_the_header_on(pytester: pytest.Pytester):
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest("--edgehil-seed=3")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["edgehil: SIMULATED*built-in simulated bench*"])


def test_undefined_device_fixture_is_pytests_own_error(pytester: pytest.Pytester):
    pytester.makepyfile(test_dev="def test_uses_device(device):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'device' not found*"])


def test_edgehil_fixture_without_the_marker_errors_saying_how_to_mark(edgehil_project):
    edgehil_project.makepyfile(test_dut="def test_unmarked(edgehil_dut):\n    pass\n")
    result = edgehil_project.runpytest("--device=imx500")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([("*test_unmarked uses edgehil_*edgehil_dut*: these run once per model/device pair*"
                                  "@pytest.mark.edgehil_metrics(*")])


def test_device_without_budget_table_is_a_usage_error_naming_the_fix(pytester: pytest.Pytester):
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    result = pytester.runpytest("--device=coral")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("*--device coral: no budget table found*fixtures/budgets.toml*--budgets PATH*"
                                  "edgehil init*")])


def test_selection_without_a_pair_says_what_exists(edgehil_project):
    edgehil_project.makepyfile(test_plain="def test_one():\n    pass\n")
    result = edgehil_project.runpytest("--device=coral", "--model=lowres_seg")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("*--device coral --model lowres_seg selects no model/device pair*"
                                  "Models budgeted on coral: qsegment, tinytracker*"
                                  "lowres_seg is budgeted on: cortex-m4, jetson-nano, jetson-xavier, spresense*")])


MARKED_TEST = """
import pytest

@pytest.mark.edgehil_metrics("{metric}", unbudgeted=True)
def test_marked(edgehil_record):
    edgehil_record.check("{metric}", 1.0)
"""


def test_marked_test_without_budgets_skips_saying_where_pairs_come_from(pytester: pytest.Pytester):
    pytester.makepyfile(test_marked=MARKED_TEST.format(metric="inference_ms"))
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*test_marked.py*no budget table was found*edgehil init*"])
    assert "empty parameter set" not in result.stdout.str()


def test_marked_test_whose_metric_nobody_budgets_names_the_metric_and_the_fix(edgehil_project):
    edgehil_project.makepyfile(test_marked=MARKED_TEST.format(metric="top5"))
    result = edgehil_project.runpytest("-rs", "--device=coral")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no pair in the * budget entries has a limit for top5*--model PATH.tflite*"])


def test_a_metric_budgeted_only_for_kinds_the_lab_lacks_names_those_entries_not_a_missing_limit(edgehil_project):
    # The shipped table budgets model_kib for tinytracker on imx500; a rack of coral boards has no such pair.
    # "no pair in the N budget entries has a limit for model_kb" sent a new lab to add a limit that exists.
    # The marker names the metric's old name (model_kb): it selects, and the reason names, model_kib.
    edgehil_project.makefile(".toml", rack='[lab]\nname = "rack"\n[devices.coral]\nsimulated = true\n')
    edgehil_project.makepyfile(test_marked=MARKED_TEST.format(metric="model_kb"))
    result = edgehil_project.runpytest("-rs", "--lab=rack.toml")
    result.assert_outcomes(skipped=1)
    reason = ("*no pair in lab 'rack' has a limit for model_kib: the budget entries that do (tinytracker-imx500) "
              "are for device kinds the lab lacks (imx500; its devices: coral); add such a device*")
    result.stdout.fnmatch_lines([reason])
    assert "add a limit for one of these metrics" not in result.stdout.str()
