"""Pytester projects around the shipped suites: a suite file and suites/conftest.py pointed at this checkout
(`shipped_suite`), and the latency suite with one budget row (model × device, one `inference_ms` limit) and
the models directory given (`latency_project`), for the tests of what the plugin does with a user's model
before and while it times it (float refusal, no-MAC models)."""

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
    return shipped_suite(pytester, "test_latency")


def shipped_suite(pytester: pytest.Pytester, suite: str) -> pytest.Pytester:
    """`pytester` holding suites/`suite`.py as it ships, and suites/conftest.py with its repository root
    pointed at this checkout (the fixtures' models, budgets and datasets)."""
    pytester.makepyfile(**{suite: (REPO / "suites" / f"{suite}.py").read_text(encoding="utf-8")})
    pytester.makeconftest((REPO / "suites" / "conftest.py").read_text(encoding="utf-8").replace(
        "Path(__file__).resolve().parent.parent", f"Path({str(REPO)!r})"))
    return pytester
