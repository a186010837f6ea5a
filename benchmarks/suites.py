"""Time of the reference suites on the simulated bench, and what each added model/device pair costs.

`python -m benchmarks.suites [--rounds N] [--against DIR]` runs `pytest suites/ --device=D` for growing
device sets (coral; imx500,coral; + jetson-nano; all) in fresh interpreters, round after round with the
sets in a rotating order, and prints per set the pairs collected, pytest's own time ("in X s": collection
and the tests, not the interpreter's start) and the wall time, as medians with their min-max, then the
cost per added pair (least-squares slope of the median pytest time over the pairs). With `--against DIR`
(another checkout, e.g. `git worktree add ../base main`) the same runs of DIR's suites and package are
interleaved with this checkout's, and their times printed beside: an A/B at the same load.

Issue 14's goals: `--device=all` <= 4 s and <= 0.25 s per added pair. Figures depend on the machine
and its load (printed); Python writing bytecode or not (PYTHONDONTWRITEBYTECODE) changes the start-up:
the environment is passed as it is, and whether that variable is set is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEVICE_SETS = ("coral", "imx500,coral", "imx500,coral,jetson-nano", "all")
_PASSED = re.compile(r" in (\d+(?:\.\d+)?)s")
_PAIR = re.compile(r"\[([^\]]+)\]")


def _command(root: Path, devices: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", str(root / "suites"), f"--device={devices}", "-q",
            "-p", "no:randomly", "-p", "no:cacheprovider", "--rootdir", str(root), *extra]


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def pairs_of(root: Path, devices: str) -> int:
    """Model/device pairs the suites collect for `devices` (distinct parametrize ids)."""
    out = subprocess.run(_command(root, devices, "--collect-only"), cwd=root, env=_env(root),
                         capture_output=True, text=True, check=False).stdout
    return len({match.group(1) for match in _PAIR.finditer(out)})


def run_once(root: Path, devices: str) -> tuple[float, float]:
    """(pytest's own seconds, wall seconds) of one run; RuntimeError if the suites did not pass."""
    start = time.perf_counter()
    done = subprocess.run(_command(root, devices), cwd=root, env=_env(root), capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    found = _PASSED.findall(done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"pytest suites/ --device={devices} in {root} failed (exit {done.returncode}):\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return float(found[-1]), wall


def _slope(xs: list[int], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _text(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each device set (default 5)")
    parser.add_argument("--against", type=Path, help="another checkout to interleave with this one (A/B)")
    args = parser.parse_args(argv)
    roots = {"this": ROOT} | ({"against": args.against.resolve()} if args.against else {})
    pairs = {devices: pairs_of(ROOT, devices) for devices in DEVICE_SETS}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {(r, d): [] for r in roots for d in DEVICE_SETS}
    print(f"load average before: {os.getloadavg()[0]:.2f}; PYTHONDONTWRITEBYTECODE="
          f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}", flush=True)
    for round_no in range(args.rounds):
        order = [(r, d) for d in DEVICE_SETS for r in roots]
        shift = round_no % len(order)
        for root_name, devices in order[shift:] + order[:shift]:
            times[root_name, devices].append(run_once(roots[root_name], devices))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("| devices | pairs | " + " | ".join(f"{r}: pytest s | {r}: wall s" for r in roots) + " |")
    print("|---|---|" + "---|---|" * len(roots))
    for devices in DEVICE_SETS:
        cells = [f"{_text([t for t, _ in times[r, devices]])} | {_text([w for _, w in times[r, devices]])}"
                 for r in roots]
        print(f"| {devices} | {pairs[devices]} | " + " | ".join(cells) + " |")
    xs = [pairs[d] for d in DEVICE_SETS]
    for root_name in roots:
        medians = [statistics.median(t for t, _ in times[root_name, d]) for d in DEVICE_SETS]
        print(f"{root_name}: {_slope(xs, medians):.3f} s per added pair (least squares over the medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
