"""A model too large for the board's RAM: the failure says so, and its result line does not lead with a
figure that passed.

Seen from outside: a model with 320,000 bytes of activations on the Cortex-M4 twin (192 KiB SRAM) failed
`test_model_fits_device` with a bare AssertionError and an introspection dump of ModelInfo, and the short
summary read `FAILED model_kib 469.8 KiB vs ≤ 10000 KiB (+95.3%) +1 more [SIMULATED]`: the one figure
shown was inside its budget, the reason (RAM) was not on the line. Q-Segment's peak activation (384 KiB,
its card and docs/models.md) is over the Cortex-M4 kind's RAM, read here from the kinds file itself.
"""

from __future__ import annotations

import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # the package's own fallback on 3.10
    import tomli as tomllib

from .conftest import MODELS, REPO

KIND_RAM = tomllib.loads((REPO / "pytest_edgehil" / "config" / "kinds.toml").read_text(encoding="utf-8"))[
    "kind"]["cortex-m4"]["ram_bytes"]


def test_a_model_over_the_board_s_ram_fails_naming_ram_not_a_passing_figure(pytester: pytest.Pytester,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # a terminal wide enough for pytest to put the reason on the summary line
    (pytester.path / "budgets.toml").write_text(
        '[[budget]]\nmodel = "qsegment"\ndevice = "cortex-m4"\n[budget.limits]\nmodel_kib = { max = 100.0 }\n',
        encoding="utf-8")
    pytester.makeini(f"""
        [pytest]
        edgehil_models_dir = {MODELS}
        edgehil_budgets = budgets.toml
    """)
    pytester.makepyfile(test_footprint=(REPO / "suites" / "test_footprint.py").read_text(encoding="utf-8"))
    result = pytester.runpytest("--device=cortex-m4", "-p", "no:cacheprovider", "-k", "fits", "-rf")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "AssertionError" not in out and "ModelInfo(" not in out, out[-3000:]
    assert f"{KIND_RAM:,} bytes of RAM" in out, out[-3000:]
    (summary,) = [line for line in result.stdout.lines if line.startswith("FAILED")]
    assert "model_kib" not in summary and "RAM" in summary, summary
