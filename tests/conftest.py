"""Shared helpers for the framework's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "fixtures" / "models"
BUDGETS = REPO / "fixtures" / "budgets.toml"


@pytest.fixture
def edgehil_project(pytester: pytest.Pytester):
    """A pytester project wired to the repository's models and budgets (paths absolute, so tmp works)."""
    pytester.makeini(f"""
        [pytest]
        edgehil_models_dir = {MODELS}
        edgehil_budgets = {BUDGETS}
        edgehil_latency_runs = 10
    """)
    return pytester

# tests/data holds inputs (a user's test file among them), not tests of this project.
collect_ignore_glob = ["data/*"]
