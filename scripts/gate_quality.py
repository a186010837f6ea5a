"""Measure the merge gate's quality on the twins with between-session drift: false alarms on unchanged
models and detection of +5 % energy, for same-session A/B and for cross-session baselines of 1, 5 and 10
sessions, at thresholds that put +5 % at 1×, 1.5× and 2× the threshold. Prints markdown tables for
docs/gate.md.

Every session is a real twin session (`sim.gate_trials.twin_ab_session`: device twin on a pty, analyzer
twin over PyVISA/TCP, 3 interleaved rounds × 10 inferences per model, Q-Segment on the IMX500 twin,
session drift σ from `--sigma`). Each A/B session is one comparison. The cross-session comparisons reuse
those sessions: the baseline sides of other sessions form the baseline, one session's candidate side is
the new run (never from a session in its own baseline). `--synthetic N` adds N synthetic trials per cell
(`synthetic_ab_session`) for tighter false-alarm figures.

    python scripts/gate_quality.py --sessions 200 --sigma 0.015 --workers 4 [--synthetic 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_edgehil.results.comparison import FailOn
from pytest_edgehil.sim.gate_trials import (
    ab_verdict,
    session_verdict,
    synthetic_ab_session,
    twin_ab_session,
)

EFFECT = 0.05
THRESHOLDS = ((1.0, 0.05), (1.5, 0.05 / 1.5), (2.0, 0.025))  # (+5 % as a multiple of the threshold, threshold)
BASELINE_SIZES = (1, 5, 10)

Session = tuple[list[list[float]], list[list[float]]]


def rate(hits: list[bool]) -> str:
    n = len(hits)
    return f"{sum(hits) / n:.1%} ({sum(hits)}/{n})"


def fail_on(threshold: float) -> FailOn:
    return FailOn.parse(f"energy:{threshold * 100:.4g}%")


def ab_table(unchanged: list[Session], plus5: list[Session]) -> list[str]:
    lines = ["| threshold | +5 % is | false alarms (unchanged) | +5 % caught |", "|---|---|---|---|"]
    for multiple, threshold in THRESHOLDS:
        fo = fail_on(threshold)
        alarms = [ab_verdict(b, n, fo).blocking for b, n in unchanged]
        caught = [ab_verdict(b, n, fo).blocking for b, n in plus5]
        lines.append(f"| energy:{threshold * 100:.3g}% | {multiple:g}× | {rate(alarms)} | {rate(caught)} |")
    return lines


def session_table(unchanged: list[Session], plus5: list[Session]) -> list[str]:
    """New = a session's candidate side; baseline = the baseline sides of the k sessions after it (cyclic)."""
    lines = ["| baseline sessions | threshold | +5 % is | false alarms (unchanged) | +5 % caught |",
             "|---|---|---|---|---|"]
    pool = [b for b, _ in unchanged]  # every session's baseline side: an unchanged model's session
    for k in BASELINE_SIZES:
        for multiple, threshold in THRESHOLDS:
            fo = fail_on(threshold)
            alarms = [session_verdict([pool[(i + 1 + j) % len(pool)] for j in range(k)], n, fo).blocking
                      for i, (_, n) in enumerate(unchanged)]
            # +5 % sessions are other sessions than the pool's, so any k pool sessions are independent of them.
            caught = [session_verdict([pool[(i + j) % len(pool)] for j in range(k)], n, fo).blocking
                      for i, (_, n) in enumerate(plus5)]
            lines.append(f"| {k} | energy:{threshold * 100:.3g}% | {multiple:g}× | {rate(alarms)} | {rate(caught)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200, help="twin sessions per group (unchanged, +5 %%)")
    parser.add_argument("--sigma", type=float, default=0.015, help="session drift σ (relative)")
    parser.add_argument("--workers", type=int, default=4, help="twin sessions run side by side")
    parser.add_argument("--synthetic", type=int, default=0, help="synthetic trials per group, 0: none")
    args = parser.parse_args()
    models = REPO / "fixtures" / "models"
    started = time.perf_counter()

    def run(seeds: range, effect: float) -> list[Session]:
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            return list(pool.map(lambda s: twin_ab_session(s, drift_rel=args.sigma, effect_rel=effect,
                                                           models_dir=models), seeds))

    unchanged = run(range(10_000, 10_000 + args.sessions), 0.0)
    plus5 = run(range(20_000, 20_000 + args.sessions), EFFECT)
    levels = np.log([np.median(np.concatenate(b)) for b, _ in unchanged])
    shifts = [np.median(np.concatenate(n)) / np.median(np.concatenate(b)) for b, n in plus5]
    print(f"twin sessions: {len(unchanged)} unchanged + {len(plus5)} at +5 % power, σ = {args.sigma:.1%}, "
          f"{time.perf_counter() - started:.0f} s; session levels spread {np.std(levels, ddof=1):.2%} (sd of log "
          f"medians); measured +5 % candidates at median ratio {np.median(shifts):.4f}\n")
    print("Same-session A/B (twins)\n")
    print("\n".join(ab_table(unchanged, plus5)) + "\n")
    print("Across sessions (twins)\n")
    print("\n".join(session_table(unchanged, plus5)) + "\n")
    if args.synthetic:
        rng = np.random.default_rng(0)
        syn_u = [synthetic_ab_session(rng, drift_rel=args.sigma) for _ in range(args.synthetic)]
        syn_p = [synthetic_ab_session(rng, drift_rel=args.sigma, effect_rel=EFFECT) for _ in range(args.synthetic)]
        print(f"Same-session A/B (synthetic, {args.synthetic} per group)\n")
        print("\n".join(ab_table(syn_u, syn_p)) + "\n")
        print(f"Across sessions (synthetic, {args.synthetic} per group)\n")
        print("\n".join(session_table(syn_u, syn_p)) + "\n")


if __name__ == "__main__":
    main()
