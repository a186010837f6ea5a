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
* the history store (`results/history.py`): once, `edgehil history import` of the nights into an empty
  store (the first import, timed on its own); then the nightly steady state, each repetition on a fresh
  copy of that store: a new night arrives as a results file, and `edgehil report --history DB NEW --last
  N` (imports it, shows it with the N-1 nights before) and `edgehil compare --history DB PREVIOUS NEW`
  (the previous night read from the store, the new one validated from its file: compare does not import
  the run under test; and once more with the new night held already, as when pytest added it when the run
  finished, or the report just imported it).
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


def timed(argv: list[str], repeat: int, before: Callable[[], None] = lambda: None,
          ) -> tuple[list[float], list[float], subprocess.CompletedProcess[str]]:
    """(wall seconds, CPU seconds, the last run) of `repeat` runs of `edgehil ARGV`, `before` run (untimed)
    ahead of each; exits on a failure."""
    times, cpu, done = [], [], None
    for _ in range(repeat):
        before()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(EDGEHIL + argv, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"edgehil {' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    assert done is not None
    return times, cpu, done


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def _fresh(snapshot: Path, store: Path) -> Callable[[], None]:
    """Put a copy of `snapshot` at `store` (its WAL files removed): each repetition starts from one state."""
    def copy() -> None:
        for stale in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
            stale.unlink(missing_ok=True)
        if snapshot.exists():
            shutil.copyfile(snapshot, store)
    return copy


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
        load_before = os.getloadavg()[0]
        rows: list[tuple[str, list[float], list[float], str]] = []
        off = ["--history", "off"]
        compare_s, compare_cpu, done = timed(["compare", *off, str(nights[-2]), str(nights[-1])], args.repeat)
        assert "edgehil gate" in done.stdout, done.stdout[-500:]
        rows.append(("files: `edgehil compare` (last two nights)", compare_s, compare_cpu, "<= 1 s"))
        html = folder / "report.html"
        report_s, report_cpu, _ = timed(["report", *off, *map(str, nights), "--html", str(html)], args.repeat)
        assert html.stat().st_size > 0
        rows.append((f"files: `edgehil report --html` ({args.nights} nights)", report_s, report_cpu, "<= 5 s"))

        store, snapshot, held = folder / "h.sqlite", folder / "snapshot.sqlite", folder / "held.sqlite"
        db = ["--history", str(store)]
        times, cpu, done = timed(["history", "import", *db, *map(str, nights)], args.repeat, _fresh(folder / "none", store))
        assert f"{args.nights} results file(s) read and imported" in done.stdout, done.stdout
        rows.append((f"store: first `edgehil history import` ({args.nights} nights, empty store)", times, cpu, "once"))
        shutil.copyfile(store, snapshot)  # closed cleanly: the WAL is checkpointed into the file
        times, cpu, done = timed(["report", *db, str(new), "--last", str(args.nights), "--html", str(html)],
                                 args.repeat, _fresh(snapshot, store))
        assert f"{args.nights} run(s)" in done.stdout, done.stdout
        rows.append((f"store: nightly `edgehil report --html` (new night imported, {args.nights} nights)", times, cpu,
                     "<= 5 s"))
        shutil.copyfile(store, held)  # the report imported the new night: the store holds it, as pytest leaves it
        times, cpu, done = timed(["compare", *db, str(nights[-1]), str(new)], args.repeat, _fresh(snapshot, store))
        assert "edgehil gate" in done.stdout, done.stdout[-500:]
        rows.append(("store: nightly `edgehil compare` (previous night held, new night from its file)", times, cpu,
                     "<= 1 s"))
        for copy, runs in ((snapshot, args.nights), (held, args.nights + 1), (store, args.nights)):
            with sqlite3.connect(copy) as con:
                assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == runs, copy
        times, cpu, done = timed(["compare", *db, str(nights[-1]), str(new)], args.repeat, _fresh(held, store))
        assert "edgehil gate" in done.stdout, done.stdout[-500:]
        rows.append(("store: nightly `edgehil compare` (both nights held)", times, cpu, "<= 1 s"))
        print(f"history store: {store.stat().st_size / 1e6:.0f} MB for {args.nights + 1} nights")
        print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; {os.cpu_count()} CPUs")
        print("| command | wall s, median [min-max] | CPU s, median [min-max] | goal |\n|---|---|---|---|")
        for name, times, cpu, goal in rows:
            print(f"| {name} | {_spread(times)} | {_spread(cpu)} | {goal} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
