"""What one pytest run accumulates: the bench, the records of each test, the energy cache.

The session (configuration, frozen) is read at configure time; the run is the one mutable object the
plugin owns, kept in `config.stash[run_key]`. Records are collected once, from each test's call report
(`collect`), and every reader — the terminal summary, the results file and gate, the JUnit properties —
reads this collection instead of parsing `user_properties` again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pytest_edgehil.config.session import EdgeHILSession

if TYPE_CHECKING:
    from pytest_edgehil.bench import Bench, DeviceUnderTest
    from pytest_edgehil.errors import CannotResolve, MonitorLimit, SupplyPathTooSlow
    from pytest_edgehil.measure.meter import EnergyMeasurement
    from pytest_edgehil.results.records import MetricRecord


@dataclass(frozen=True)
class TestRecords:
    """The records and power traces one test's call phase produced, with its node id and outcome."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    outcome: str  # passed | failed | skipped
    records: tuple[MetricRecord, ...]
    traces: tuple[dict[str, Any], ...]


@dataclass
class EdgeHILRun:
    """The plugin's run state. `session` is built on first use when edgehil was not asked for at start-up."""

    build_session: Callable[[], EdgeHILSession]
    in_use: bool  # an edgehil option, ini value or default lab/budget file was found at start-up
    _session: EdgeHILSession | None = None
    bench: Bench | None = None
    tests: list[TestRecords] = field(default_factory=list)
    # A MonitorLimit, CannotResolve or SupplyPathTooSlow where the monitor or the meter refused (the energy
    # tests skip with it).
    energy_cache: dict[tuple[str, str | None],
                       EnergyMeasurement | MonitorLimit | CannotResolve | SupplyPathTooSlow] = field(default_factory=dict)
    listeners: list[Callable[[TestRecords], None]] = field(default_factory=list)
    lock_timeout_s: float = 0.0  # ini edgehil_lock_timeout: how long bring-up waits for a busy board
    twin_realtime: float = 0.0  # ini edgehil_twin_realtime
    on_lock_wait: Callable[[str], None] | None = None  # shows a waiting bring-up on the terminal
    lock_owner: str | None = None  # the pytest command line, written into the lock files
    last_test_of: dict[str, str] = field(default_factory=dict)  # device name → node id of its latest test
    unmeasured: str = ""  # the line naming budgeted limits no collected test measures (plugin/unmeasured.py)
    _by_nodeid: dict[str, TestRecords] = field(default_factory=dict)
    # Node id → how many of its user properties earlier attempts made (pytest-rerunfailures, see `collect`).
    _superseded: dict[str, int] = field(default_factory=dict)

    @property
    def session(self) -> EdgeHILSession:
        if self._session is None:
            self._session = self.build_session()
        return self._session

    @property
    def session_built(self) -> bool:
        return self._session is not None

    def get_bench(self) -> Bench:
        if self.bench is None:
            from pytest_edgehil.bench import Bench

            s = self.session
            self.bench = Bench(s.lab, seed=s.seed, analyzer_override=s.analyzer_override,
                               lock_timeout_s=self.lock_timeout_s, on_lock_wait=self.on_lock_wait,
                               owner=self.lock_owner, twin_realtime=self.twin_realtime, catalog=s.catalog)
        return self.bench

    def close_bench(self) -> None:
        """Close the bench (every part, even when one fails; raises CloseError naming each failure)."""
        bench, self.bench = self.bench, None
        self.energy_cache.clear()  # a measurement belongs to the bench that made it
        if bench is not None:
            bench.close()

    def collect(self, report: pytest.TestReport) -> TestRecords | None:
        """Take the records of a call report (once per test); tell the listeners. None if it recorded nothing.

        A test retried by pytest-rerunfailures records its last attempt only: a failed attempt comes as outcome
        "rerun", and the retry's report still carries that attempt's properties (the item keeps them), which
        left one pair × metric recorded several times, refused by the gate as DUPLICATES."""
        if report.when != "call":
            return None
        if report.outcome == "rerun":
            self._superseded[report.nodeid] = len(report.user_properties)
            return None
        properties = list(report.user_properties)[self._superseded.pop(report.nodeid, 0):]
        if not any(key.startswith("edgehil") for key, _ in properties):
            return None
        from pytest_edgehil.results.records import TRACE_PROPERTY, records_from_properties

        entry = TestRecords(
            nodeid=report.nodeid, outcome=report.outcome,
            records=tuple(records_from_properties(properties)),
            traces=tuple({**value, "test": report.nodeid} for key, value in properties
                         if key == TRACE_PROPERTY and isinstance(value, dict)))
        self.tests.append(entry)
        self._by_nodeid[entry.nodeid] = entry
        for listener in self.listeners:
            listener(entry)
        return entry

    @property
    def records(self) -> list[MetricRecord]:
        return [r for t in self.tests for r in t.records]

    def records_for(self, nodeid: str) -> tuple[MetricRecord, ...]:
        entry = self._by_nodeid.get(nodeid)
        return entry.records if entry is not None else ()


run_key: pytest.StashKey[EdgeHILRun] = pytest.StashKey()
duts_key: pytest.StashKey[list[DeviceUnderTest]] = pytest.StashKey()
