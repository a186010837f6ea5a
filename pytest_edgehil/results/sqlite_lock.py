"""Waiting out another writer's lock on a SQLite file (the history store), polling instead of SQLite's back-off.

SQLite's own busy wait does not cover everything (a journal-mode switch fails at once, whatever the busy
timeout), and it backs off to 100 ms sleeps: a process writing one transaction after another (`edgehil
history import` of many nights) takes the lock again in each short gap, and a waiting run starved past its
timeout. Two runs creating one store at once failed with "database is locked" on a clean CI clone.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable

BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another's transaction (a run's is well under 1 s)


def until_unlocked(statement: Callable[[], object]) -> None:
    """Run `statement`, again every 0.5-3 ms (jittered) while the store is locked, for up to BUSY_TIMEOUT_S.

    sqlite3.OperationalError other than a lock, or the lock still held after BUSY_TIMEOUT_S, is raised as
    it came (the caller names the store and what to do)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.0005, 0.003))
