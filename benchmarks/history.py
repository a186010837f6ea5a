"""`edgehil compare` and `edgehil report --html` on a nightly history: 5,000 records x 30 nights.

`python -m benchmarks.history [DIR] [--nights 30] [--records 5000] [--repeat 3]` writes the history with
the production writer (`ResultsWriter`, one results file per night: 200 pairs x 25 metrics, 50 raw samples
per record, values drifting night to night), then times each command as a user runs it (a fresh
interpreter: import and start-up included), `--repeat` times, and prints median [min-max] wall seconds and
the CPU seconds of the same runs (user + system of the child: on a shared, loaded machine the wall time
mostly measures the other programs), with the load average.
Goals (issue 14): compare <= 1 s, report --html <= 5 s. Each command's exit status and output are
checked, so a fast failure cannot pass for a fast success.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
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


def timed(argv: list[str], repeat: int) -> tuple[list[float], list[float], subprocess.CompletedProcess[str]]:
    """(wall seconds, CPU seconds, the last run) of `repeat` runs of `edgehil ARGV`; exits on a failure."""
    times, cpu, done = [], [], None
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(EDGEHIL + argv, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"edgehil {' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    assert done is not None
    return times, cpu, done


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


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
        paths = write_history(folder, args.nights, args.records)
        print(f"history: {args.nights} nights x {args.records:,} records, "
              f"{sum(p.stat().st_size for p in paths) / 1e6:.0f} MB, written in {time.perf_counter() - start:.1f} s")
        load_before = os.getloadavg()[0]
        compare_s, compare_cpu, done = timed(["compare", str(paths[-2]), str(paths[-1])], args.repeat)
        assert str(args.records) in done.stdout or "pass" in done.stdout.lower(), done.stdout[-500:]
        html = folder / "report.html"
        report_s, report_cpu, _ = timed(["report", *map(str, paths), "--html", str(html)], args.repeat)
        assert html.stat().st_size > 0
        print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; {os.cpu_count()} CPUs")
        print("| command | wall s, median [min-max] | CPU s, median [min-max] | goal |\n|---|---|---|---|")
        for name, times, cpu, goal in (("edgehil compare (last two nights)", compare_s, compare_cpu, "<= 1 s"),
                                       (f"edgehil report --html ({args.nights} nights)", report_s, report_cpu,
                                        "<= 5 s")):
            print(f"| {name} | {_spread(times)} | {_spread(cpu)} | {goal} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
