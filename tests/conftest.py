"""Shared helpers for the framework's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    # Imported here, before any pytester snapshot of sys.modules: the flatbuffer schema imports
    # `flatbuffers.table` lazily, inside its methods. Imported first inside an in-process pytester run, it
    # is dropped from sys.modules at that test's teardown, and the next parse in this process mixes two
    # copies of it (`assert type(t2) is Table` fails: every model load then reads as a corrupt flatbuffer).
    import ai_edge_litert.schema_py_generated  # noqa: F401
    import flatbuffers.table  # noqa: F401
except ImportError:  # no LiteRT schema here: the model tests skip or fail on their own
    pass
# The same for numpy's C extensions first imported by the bench inside a run (numpy.fft): dropped from
# sys.modules at a pytester teardown, the next import fails "cannot load module more than once per process"
# (test_plugin.py run alone failed so; the whole suite imports it early through other modules).
import numpy.fft  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "fixtures" / "models"
BUDGETS = REPO / "fixtures" / "budgets.toml"


@pytest.fixture(autouse=True)
def _no_history_store_of_the_developer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI tests run in the repository, where a developer's edgehil-history.sqlite (or $EDGEHIL_HISTORY)
    would change what `edgehil report`/`compare` read and receive the tests' files; pytester runs would add
    their runs to it. Off for every test; the history store's own tests name a store explicitly."""
    monkeypatch.setenv("EDGEHIL_HISTORY", "off")


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
