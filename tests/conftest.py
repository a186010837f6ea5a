"""Shared helpers for the framework's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# pytester's in-process runs put sys.modules back as they found it, dropping what the inner run imported
# first. A twin started by a later test then parses models with a re-imported flatbuffers beside the
# schema bindings still bound to the first copy, and the generated code's type asserts fail ("flatbuffer
# is corrupt"). Importing the model-analysis stack here keeps one copy of each for the whole session.
try:
    import ai_edge_litert.schema_py_generated  # noqa: F401
    import flatbuffers  # noqa: F401
except ImportError:  # the model tests skip on their own without LiteRT
    pass
import pytest_edgehil.model.graph  # noqa: F401

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
