"""Budget tables in layers: a user's table over the shipped one, instead of in its place.

A lab adds its own model, or tightens one limit of a shipped pair, without copying (and then keeping in
step) the whole shipped table. The layers, lowest first, each read with its own `[defaults] marginal`:

1. `fixtures/budgets.toml` under pytest's rootdir (the shipped table: the checkout's, or the copy
   `edgehil init` wrote), when it exists;
2. the ini value `edgehil_budgets`, when it names another file;
3. `--budgets PATH`, when it names another file.

Merging is per pair (`BudgetEntry.id`: model stem and device kind). An entry for a pair no lower layer
has is added. An entry for a pair a lower layer has *extends* it: each metric it names replaces that
metric's limit whole (bounds, marginal, published, source: a limit is one statement, so its keys are
not mixed across files), the metrics it does not name keep the lower layer's limits, and a non-empty
`note` replaces the note. `replace = true` in the entry drops the lower layer's limits of that pair
first. `--budgets-only` skips layering: the `--budgets` table alone (docs/budgets.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pytest_edgehil.config.budgets import BudgetEntry, load_budgets

__all__ = ["layer_budgets", "load_layered_budgets"]


def layer_budgets(layers: Sequence[Sequence[BudgetEntry]]) -> list[BudgetEntry]:
    """Merge budget tables, lowest layer first (see the module docstring); pure, no I/O.

    Order: the lowest layer's entries in their order, then each higher layer's new pairs in theirs, so
    test ids and the terminal's pair order do not move when a user tightens one limit."""
    merged: dict[str, BudgetEntry] = {}
    for layer in layers:
        for entry in layer:
            below = merged.get(entry.id)
            if below is None or entry.replace_lower:
                merged[entry.id] = entry
                continue
            merged[entry.id] = replace(
                below, limits={**below.limits, **entry.limits}, note=entry.note or below.note,
                origin=f"{entry.origin}, layered over {below.origin}")
    return list(merged.values())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def load_layered_budgets(paths: Sequence[Path]) -> list[BudgetEntry]:
    """Read each table (ConfigError naming the file, entry and key if one is malformed) and layer them,
    lowest first; a path naming the same file as an earlier one is read once."""
    distinct: list[Path] = []
    for path in paths:
        if not any(_same_file(path, seen) for seen in distinct):
            distinct.append(path)
    return layer_budgets([load_budgets(path) for path in distinct])
