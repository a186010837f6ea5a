"""A pytester project around the shipped latency suite: one budget row (model × device, one `inference_ms`
limit), the models directory given, the suite's conftest pointed at this checkout. Shared by the tests of
what the plugin does with a user's model before and while it times it (float refusal, no-MAC models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO


def latency_project(pytester: pytest.Pytester, models: Path, model: str, device: str, *,
                    max_ms: float = 1000.0, runs: int = 5) -> pytest.Pytester:
    """`pytester` holding budgets.toml (`model` on `device`, inference_ms ≤ `max_ms`), an ini naming
    `models` and `runs` latency runs, suites/test_latency.py and suites/conftest.py."""
    (pytester.path / "budgets.toml").write_text(
        f'[[budget]]\nmodel = "{model}"\ndevice = "{device}"\n[budget.limits]\n'
        f'inference_ms = {{ max = {max_ms!r} }}\n', encoding="utf-8")
    pytester.makeini(f"""
        [pytest]
        edgehil_models_dir = {models}
        edgehil_budgets = budgets.toml
        edgehil_latency_runs = {runs}
    """)
    pytester.makepyfile(test_latency=(REPO / "suites" / "test_latency.py").read_text(encoding="utf-8"))
    pytester.makeconftest((REPO / "suites" / "conftest.py").read_text(encoding="utf-8").replace(
        "Path(__file__).resolve().parent.parent", f"Path({str(REPO)!r})"))
    return pytester
