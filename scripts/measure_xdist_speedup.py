"""Measure what `-n 2 --dist loadgroup` gains over `-n 0` on a lab of two boards whose runs take real time.

Two twins of one kind (so the two device groups weigh the same) run the latency suite in real time
(`edgehil_twin_realtime = 1`: a RUN takes as long as the board would), once serially and once on two
xdist workers grouped by device. Prints both wall-clock times and their ratio (the target is ≤ 0.6).
A benchmark, not a test: the figure depends on the machine.

    python scripts/measure_xdist_speedup.py [--runs 200] [--kind coral] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def write_project(root: Path, kind: str, runs: int) -> None:
    (root / "lab.toml").write_text(
        f'[lab]\nname = "two real-time boards"\n\n[devices.board-a]\nkind = "{kind}"\nsimulated = true\n\n'
        f'[devices.board-b]\nkind = "{kind}"\nsimulated = true\n', encoding="utf-8")
    # A budget entry names a device kind: this one pairs tinytracker with both boards.
    budgets = (f'[[budget]]\nmodel = "tinytracker"\ndevice = "{kind}"\n[budget.limits]\n'
               'end_to_end_ms = { max = 1000.0, source = "loose: this measures wall-clock time, not the board" }\n'
               'inference_ms = { max = 1000.0, source = "loose" }\n')
    (root / "budgets.toml").write_text(budgets, encoding="utf-8")
    (root / "pytest.ini").write_text(
        f"[pytest]\nedgehil_models_dir = {REPO / 'fixtures' / 'models'}\nedgehil_budgets = {root / 'budgets.toml'}\n"
        f"edgehil_lab = {root / 'lab.toml'}\nedgehil_latency_runs = {runs}\nedgehil_twin_realtime = 1\n",
        encoding="utf-8")


def timed_run(root: Path, *xdist: str) -> float:
    command = [sys.executable, "-m", "pytest", str(REPO / "suites" / "test_latency.py"), "-c", str(root / "pytest.ini"),
               "--rootdir", str(root), "--device=all", "-q", "-p", "no:cacheprovider", *xdist]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"run {' '.join(xdist) or '-n 0'} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="inferences per latency test (default 200)")
    parser.add_argument("--kind", default="coral", help="device kind of both boards (default coral)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each mode this many times (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgehil-speedup-") as tmp:
        root = Path(tmp)
        write_project(root, args.kind, args.runs)
        for _ in range(args.repeat):
            serial_s = timed_run(root, "-n", "0")
            parallel_s = timed_run(root, "-n", "2", "--dist", "loadgroup")
            print(f"two {args.kind} twins in real time, {args.runs} inferences per test: -n 0 {serial_s:.2f} s, "
                  f"-n 2 --dist loadgroup {parallel_s:.2f} s, ratio {parallel_s / serial_s:.2f} (target <= 0.6)")


if __name__ == "__main__":
    main()
