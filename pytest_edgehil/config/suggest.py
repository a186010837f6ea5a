""""Did you mean": the known name closest to a typo, for every message about an unknown name (stdlib only)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, known: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The known name nearest to `word` (a typo's likely intent), or None when none is within `cutoff`
    (difflib's similarity ratio, 0..1)."""
    matches = difflib.get_close_matches(word, list(known), n=1, cutoff=cutoff)
    return matches[0] if matches else None
