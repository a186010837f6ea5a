"""SIGTERM unwinds a pytest-xdist worker as Ctrl-C does, so its session teardown closes its bench.

A CI system cancels a job by sending SIGTERM to its process group, which reaches xdist's workers as well as
the controller. The controller turns it into KeyboardInterrupt (`plugin.gate`); a worker left with the
default action would die on the spot, its session teardown never run. For a port or analyzer lock that
costs nothing (the kernel drops an `flock` with its holder), but a labgrid place stays acquired after its
holder dies, by labgrid's design: every later job asking for that board would fail "busy" until someone
released it by hand (docs/lab-farm.md). Registered on workers only; the controller has the gate's handler.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest

PLUGIN_NAME = "edgehil-worker-signals"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


class WorkerSigterm:
    """Turns SIGTERM into KeyboardInterrupt for the session, where nobody else handles it."""

    def __init__(self) -> None:
        self._previous: Any = None
        self._installed = False

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # Python lets only the main thread set handlers; an xdist worker runs its session there.
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            self._previous = signal.signal(signal.SIGTERM, _interrupt)
            self._installed = True

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False
        config.pluginmanager.unregister(self)


def register(config: pytest.Config) -> None:
    """Register the handler on an xdist worker (a config with `workerinput`); a no-op elsewhere."""
    if hasattr(config, "workerinput") and not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(WorkerSigterm(), PLUGIN_NAME)
