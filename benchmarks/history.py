"""`edgehil compare` and `edgehil report --html` on a nightly history: 5,000 records x 30 nights.

`python -m benchmarks.history [DIR] [--nights 30] [--records 5000] [--repeat 3]` writes the history with
the production writer (`ResultsWriter`, one results file per night: 200 pairs x 25 metrics, 50 raw samples
per record, values drifting night to night), then times each command as a user runs it (a fresh
interpreter: import and start-up included), `--repeat` times, and prints median [min-max] wall seconds and
the CPU seconds of the same runs (user + system of the child: on a shared, loaded machine the wall time
mostly measures the other programs), with the load average.

Two ways, as users run them:
* files: `edgehil compare` of the last two nights' files, `edgehil report` of all the nights' files (each
  file read and validated on every run; `--history off`).
* the history store (`results/history.py`): `edgehil history import` of the nights into an empty store
  (the first import, timed on its own); then the nightly steady state, each run on a fresh copy of the
  store holding the nights: a new night arrives as a results file, and `edgehil report --history DB NEW --last
  N` (imports it, shows it with the N-1 nights before) and `edgehil compare --history DB PREVIOUS NEW`
  (the previous night read from the store, the new one validated from its file: compare does not import
  the run under test; and once more with the new night held already, as when pytest added it when the run
  finished, or the report just imported it).
The commands run interleaved, one of each per repetition, so each meets the load the others meet.
Goals (issue 14): compare <= 1 s, report --html <= 5 s. Each command's exit status and output are
checked, so a fast failure cannot pass for a fast success.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.store import ResultRecord, ResultsWriter, RunInfo

EDGEHIL = [sys.executable, "-c", "import sys; from pytest_edgehil.cli import main; sys.exit(main())"]


def night_records(night: int, count: int) -> list[ResultRecord]:
    records = []
    for i in range(count):
        pair, metric = divmod(i, 25)
        base = 1.0 + (pair % 13) / 10 + night * 1e-3  # a slow drift, well inside any budget
        raw = [base + ((i * 7 + k) % 13) / 1000 for k in range(50)]
        record = MetricRecord(pair=f"m{pair % 40}-d{pair // 40}", model=f"m{pair % 40}", device=f"d{pair // 40}",
                              kind="imx500", metric=f"metric_{metric}", value=raw[25], unit="ms",
                              backend="SIMULATED", status="pass", raw=raw, context={"model_sha256": "ab" * 32})
        records.append(ResultRecord.from_metric_record(record, test=f"suites/test_x.py::test_{i}", outcome="passed"))
    return records


def write_history(folder: Path, nights: int, count: int) -> list[Path]:
    first = datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc)
    paths = []
    for night in range(nights):
        started = (first + timedelta(days=night)).isoformat()
        writer = ResultsWriter(folder / f"night-{night:02d}.json", RunInfo(started_at=started, backend="SIMULATED"))
        writer.add(night_records(night, count))
        writer.finish(0)
        paths.append(writer.path)
    return paths


@dataclass
class Case:
    """One command as a user runs it, with the state it starts from and what its output must show."""

    name: str
    argv: list[str]
    expect: str  # text its stdout must hold: a fast failure cannot pass for a fast success
    goal: str
    before: Callable[[], None] = lambda: None  # untimed: put the store in the state the command starts from
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def run_once(case: Case) -> None:
    """Time one run of `edgehil ARGV` (wall, and CPU of the child: user + system); exit on a failure."""
    case.before()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(EDGEHIL + case.argv, capture_output=True, text=True, check=False)
    case.wall.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    case.cpu.append(after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime)
    if done.returncode != 0 or case.expect not in done.stdout:
        raise SystemExit(f"edgehil {' '.join(case.argv)} exited {done.returncode}:\n{done.stdout[-800:]}\n{done.stderr}")


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def _fresh(snapshot: Path | None, store: Path) -> Callable[[], None]:
    """Put a copy of `snapshot` (None: nothing, an empty store) at `store`, its WAL files removed."""
    def copy() -> None:
        for stale in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
            stale.unlink(missing_ok=True)
        if snapshot is not None:
            shutil.copyfile(snapshot, store)
    return copy


def _runs_in(store: Path) -> int:
    with sqlite3.connect(store) as con:
        return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", help="where to write the history (default: a temporary folder)")
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        paths = write_history(folder, args.nights + 1, args.records)  # the last one: the night that arrives
        nights, new = paths[:-1], paths[-1]
        print(f"history: {args.nights} nights (+1 arriving) x {args.records:,} records, "
              f"{sum(p.stat().st_size for p in nights) / 1e6:.0f} MB, written in {time.perf_counter() - start:.1f} s")
        store, snapshot, held = folder / "h.sqlite", folder / "snapshot.sqlite", folder / "held.sqlite"
        html, n, db = str(folder / "report.html"), args.nights, ["--history", str(store)]
        # The states the nightly commands start from: the store holding the nights (made as users make it,
        # untimed here), and that store once the new night is in it (as pytest or the report leaves it).
        for target, files in ((snapshot, nights), (held, [new])):
            if target is held:
                shutil.copyfile(snapshot, held)
            subprocess.run(EDGEHIL + ["history", "import", "--history", str(target), *map(str, files)], check=True,
                           capture_output=True)
        assert (_runs_in(snapshot), _runs_in(held)) == (n, n + 1)
        off = ["--history", "off"]
        gate = "edgehil gate"
        cases = [
            Case("files: `edgehil compare` (last two nights)", ["compare", *off, str(nights[-2]), str(nights[-1])],
                 gate, "<= 1 s"),
            Case(f"files: `edgehil report --html` ({n} nights)", ["report", *off, *map(str, nights), "--html", html],
                 f"{n} run(s)", "<= 5 s"),
            Case(f"store: first `edgehil history import` ({n} nights, empty store)",
                 ["history", "import", *db, *map(str, nights)], f"{n} results file(s) read and imported", "once",
                 _fresh(None, store)),
            Case(f"store: nightly `edgehil report --html` (new night imported, {n} nights)",
                 ["report", *db, str(new), "--last", str(n), "--html", html], f"{n} run(s)", "<= 5 s",
                 _fresh(snapshot, store)),
            Case("store: nightly `edgehil compare` (previous night held, new night from its file)",
                 ["compare", *db, str(nights[-1]), str(new)], gate, "<= 1 s", _fresh(snapshot, store)),
            Case("store: nightly `edgehil compare` (both nights held)", ["compare", *db, str(nights[-1]), str(new)],
                 gate, "<= 1 s", _fresh(held, store)),
        ]
        load_before = os.getloadavg()[0]
        for _ in range(args.repeat):  # interleaved: each command meets the same load as the others
            for case in cases:
                run_once(case)
        print(f"history store: {held.stat().st_size / 1e6:.0f} MB for {n + 1} nights")
        print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; {os.cpu_count()} CPUs")
        print("| command | wall s, median [min-max] | CPU s, median [min-max] | goal |\n|---|---|---|---|")
        for case in cases:
            print(f"| {case.name} | {_spread(case.wall)} | {_spread(case.cpu)} | {case.goal} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
