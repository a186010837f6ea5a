"""docs/lab.md and docs/budgets.md carry the key tables `scripts/write_config_docs.py` writes from the
schemas and the vocabulary: stale docs fail here (rerun the script), and every schema key is in them."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from pytest_edgehil.config.schemas import BudgetTable, DeviceTable, LabTable, LimitTable
from pytest_edgehil.results.vocabulary import BUILT_IN_METRICS

REPO = Path(__file__).resolve().parent.parent
SCRIPT = runpy.run_path(str(REPO / "scripts" / "write_config_docs.py"))


@pytest.mark.parametrize("doc", sorted(SCRIPT["GENERATED"]))
def test_generated_tables_are_up_to_date(doc: str) -> None:
    text = (REPO / "docs" / doc).read_text(encoding="utf-8")
    assert SCRIPT["render"](doc, text) == text, f"docs/{doc} is stale: run python scripts/write_config_docs.py"


def test_every_schema_key_and_built_in_metric_is_documented() -> None:
    lab = (REPO / "docs" / "lab.md").read_text(encoding="utf-8")
    budgets = (REPO / "docs" / "budgets.md").read_text(encoding="utf-8")
    assert all(f"| `{key}` |" in lab for key in DeviceTable.model_fields)
    assert all(f"| `[lab] {key}` |" in lab for key in LabTable.model_fields)
    assert all(f"| `{key}` |" in budgets for key in (*BudgetTable.model_fields, *LimitTable.model_fields))
    assert all(f"| `{metric}` |" in budgets for metric in BUILT_IN_METRICS)
    assert "(undocumented)" not in lab + budgets


def test_a_new_schema_key_makes_the_docs_stale(tmp_path: Path) -> None:
    """The check can fail: a table with a row missing (as after a key is added) is rewritten."""
    text = (REPO / "docs" / "budgets.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `published` |"))
    stale = text.replace(row + "\n", "")
    assert SCRIPT["render"]("budgets.md", stale) == text


def test_a_doc_without_its_generated_block_is_an_error() -> None:
    with pytest.raises(KeyError, match="metrics"):
        SCRIPT["render"]("budgets.md", "no blocks here\n")
