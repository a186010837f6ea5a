"""Budget tables in layers: a user's table over the shipped one (config/budget_layers.py, docs/budgets.md)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_edgehil.config.budget_layers import layer_budgets, load_layered_budgets
from pytest_edgehil.config.budgets import load_budgets

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "fixtures" / "budgets.toml"

USER = """
[defaults]
marginal = 0.1

[[budget]]
model = "qsegment"
device = "imx500"
note = "our sensor runs warmer"
[budget.limits]
inference_mw = { max = 80.0, source = "our bench, 2026-11" }
fps = { min = 30.0 }

[[budget]]
model = "my_net"
device = "coral"
[budget.limits]
inference_ms = { max = 5.0 }
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_user_entry_extends_the_shipped_pair_and_new_pairs_are_added(tmp_path: Path) -> None:
    shipped = {e.id: e for e in load_budgets(SHIPPED)}
    merged = {e.id: e for e in load_layered_budgets([SHIPPED, write(tmp_path / "user.toml", USER)])}
    assert set(merged) == set(shipped) | {"my_net-coral"}
    pair, was = merged["qsegment-imx500"], shipped["qsegment-imx500"]
    # The named metric is replaced whole (with the user's file's marginal), a new one added, the rest kept.
    assert pair.limits["inference_mw"].max == 80.0 and pair.limits["inference_mw"].published is None
    assert pair.limits["inference_mw"].marginal_rel == 0.1 and pair.limits["fps"].min == 30.0
    assert set(pair.limits) == set(was.limits) | {"fps"}
    assert all(pair.limits[m] == was.limits[m] for m in was.limits if m != "inference_mw")
    assert pair.note == "our sensor runs warmer" and "user.toml" in pair.origin and "budgets.toml" in pair.origin
    # Untouched pairs are the shipped entries, in the shipped order, the user's new pair last.
    assert [e.id for e in load_layered_budgets([SHIPPED, tmp_path / "user.toml"])][:len(shipped)] == list(shipped)


def test_replace_true_drops_the_lower_layers_limits_of_that_pair(tmp_path: Path) -> None:
    user = write(tmp_path / "user.toml", """
        [[budget]]
        model = "qsegment"
        device = "imx500"
        replace = true
        [budget.limits]
        inference_ms = { max = 0.3 }
    """)
    merged = {e.id: e for e in load_layered_budgets([SHIPPED, user])}
    assert set(merged["qsegment-imx500"].limits) == {"inference_ms"}
    assert merged["qsegment-imx500"].limits["inference_ms"].max == 0.3
    assert merged["tinytracker-imx500"] == {e.id: e for e in load_budgets(SHIPPED)}["tinytracker-imx500"]


def test_the_same_file_named_twice_is_one_layer(tmp_path: Path) -> None:
    once = load_layered_budgets([SHIPPED])
    twice = load_layered_budgets([SHIPPED, REPO / "fixtures" / ".." / "fixtures" / "budgets.toml"])
    assert [(e.id, e.limits) for e in twice] == [(e.id, e.limits) for e in once]


def test_layering_is_pure_and_an_empty_layer_changes_nothing() -> None:
    shipped = load_budgets(SHIPPED)
    assert layer_budgets([shipped, []]) == shipped
    assert layer_budgets([[], shipped]) == shipped


LATENCY_SUITE = """
import pytest
from pytest_edgehil.measure.latency import stage_timings, timing_arrays_ms

@pytest.mark.edgehil_metrics("inference_ms")
def test_inference(edgehil_dut, edgehil_record):
    ms = timing_arrays_ms(stage_timings(edgehil_dut, 10))
    edgehil_record.check_median("inference_ms", ms["inference_ms"])
"""

TIGHT = """
[[budget]]
model = "tinytracker"
device = "imx500"
[budget.limits]
inference_ms = { max = 0.5, source = "a wish" }
"""


def test_budgets_option_layers_over_the_ini_table_and_budgets_only_reads_it_alone(edgehil_project: pytest.Pytester,
                                                                                  tmp_path: Path) -> None:
    """The project's ini names the shipped table; `--budgets` tightens one pair's limit on top of it."""
    tight = write(tmp_path / "tight.toml", TIGHT)
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    layered = edgehil_project.runpytest(f"--budgets={tight}", "--device=imx500", "-v")
    # qsegment-imx500's inference_ms budget comes from the shipped layer; tinytracker's from the user's.
    layered.stdout.fnmatch_lines(["*test_inference?qsegment-imx500? PASSED*", "*test_inference?tinytracker-imx500? FAILED*"])
    assert "≤ 0.5 ms" in layered.stdout.str()
    alone = edgehil_project.runpytest(f"--budgets={tight}", "--budgets-only", "--device=imx500", "-v")
    alone.assert_outcomes(failed=1)  # the shipped qsegment-imx500 budget is not read: no such test
    alone.stdout.fnmatch_lines(["*test_inference?tinytracker-imx500? FAILED*"])


def test_budgets_only_without_budgets_is_a_usage_error(edgehil_project: pytest.Pytester) -> None:
    edgehil_project.makepyfile(test_lat=LATENCY_SUITE)
    result = edgehil_project.runpytest("--budgets-only", "--device=imx500")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--budgets-only: give the table with --budgets PATH*"])
