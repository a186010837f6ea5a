"""Cost of one more record in a results file with 100 / 1,000 / 5,000 already written.

`python -m benchmarks.results_append [DIR]` prints, for each size, the median and min-max time of
`ResultsWriter.add` of one record (50 raw samples, as a latency record carries), fsync included, in a
temporary folder (or DIR: put it on the disk the lab writes to). The goal is O(1): the same cost at
5,000 as at 100, and <= 2 ms. The second column is the same with fsync made a no-op: what the code
costs, apart from what the disk takes to make a line durable (on a shared VM disk, fsync alone takes
0.2-16 ms, median ~7 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.store import ResultRecord, ResultsWriter, RunInfo, load_results, utc_now


def record(i: int) -> ResultRecord:
    raw = [1.0 + (i * 7 + k) % 13 / 100 for k in range(50)]
    base = MetricRecord(pair=f"m{i % 40}-d{i % 7}", model=f"m{i % 40}", device=f"d{i % 7}", kind="imx500",
                        metric=f"metric_{i % 25}", value=raw[25], unit="ms", backend="SIMULATED", status="pass",
                        raw=raw, context={"model_sha256": "ab" * 32})
    return ResultRecord.from_metric_record(base, test=f"suites/test_x.py::test_{i}", outcome="passed")


def cost_ms(folder: Path, already: int, tries: int = 30) -> list[float]:
    writer = ResultsWriter(folder / f"r{already}.json", RunInfo(started_at=utc_now(), backend="SIMULATED"))
    for i in range(already):
        writer.add([record(i)])
    times = []
    for i in range(tries):
        start = time.perf_counter()
        writer.add([record(already + i)])
        times.append((time.perf_counter() - start) * 1e3)
    assert len(load_results(writer.path).records) == already + tries  # the appended records load back
    writer.finish(0)
    return times


def _text(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} [{min(times):.2f}-{max(times):.2f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, help="folder to write in (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print("| records already written | one more record, ms (median [min-max]) | the same, fsync a no-op |")
        print("|---|---|---|")
        real_fsync = os.fsync
        for already in (100, 1000, 5000):
            times = cost_ms(Path(tmp), already)
            os.fsync = lambda fd: None  # the code's own cost, without the disk's
            try:
                own = cost_ms(Path(tmp), already)
            finally:
                os.fsync = real_fsync
            print(f"| {already:,} | {_text(times)} | {_text(own)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
