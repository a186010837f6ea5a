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
import json
import sys
import time
from collections.abc import Callable
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


def session_table(unchanged: list[Session], plus5: list[Session], draws: int, seed: int = 0) -> list[str]:
    """New = a session's candidate side; baseline = `draws` random sets of k baseline sides of *other*
    sessions, drawn without replacement (seeded). Random sets, not the k sessions that follow in seed order:
    consecutive windows reuse each session in k overlapping baselines, so 200 such comparisons are one
    correlated draw whose count cannot tell 0.5 % from 2 % (the twins' first 200 seeds gave 4 alarms that
    way and 0.4 % with random baselines). The interval is the 2.5–97.5 % range over a bootstrap of the
    new sessions' own alarm fractions."""
    lines = ["| baseline sessions | threshold | +5 % is | false alarms (unchanged) | +5 % caught |",
             "|---|---|---|---|---|"]
    pool = [b for b, _ in unchanged]  # every session's baseline side: an unchanged model's session
    rng = np.random.default_rng(seed)
    for k in BASELINE_SIZES:
        # the same baseline sets for every threshold, so the rows differ only by the threshold
        sets_u = [[rng.choice(np.delete(np.arange(len(pool)), i), k, replace=False) for _ in range(draws)]
                  for i in range(len(unchanged))]
        # +5 % sessions are other sessions than the pool's, so any k pool sessions are independent of them.
        sets_p = [[rng.choice(len(pool), k, replace=False) for _ in range(draws)] for _ in plus5]
        for multiple, threshold in THRESHOLDS:
            fo = fail_on(threshold)
            alarms = [[session_verdict([pool[j] for j in chosen], n, fo).blocking for chosen in sets]
                      for (_, n), sets in zip(unchanged, sets_u)]
            caught = [[session_verdict([pool[j] for j in chosen], n, fo).blocking for chosen in sets]
                      for (_, n), sets in zip(plus5, sets_p)]
            lines.append(f"| {k} | energy:{threshold * 100:.3g}% | {multiple:g}× | {resampled_rate(alarms, rng)} | "
                         f"{resampled_rate(caught, rng)} |")
    return lines


def resampled_rate(hits: list[list[bool]], rng: np.random.Generator) -> str:
    """Rate over all comparisons, with a bootstrap interval over the new sessions."""
    fractions = np.array([np.mean(h) for h in hits])
    boot = rng.choice(fractions, (2000, fractions.size)).mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    total = sum(len(h) for h in hits)
    return f"{fractions.mean():.2%} ({sum(map(sum, hits))}/{total}; {low:.2%}–{high:.2%})"


def cached_sessions(path: Path | None, seeds: range, sigma: float, effect: float,
                    compute: Callable[[range], list[Session]]) -> list[Session]:
    """Twin sessions for `seeds`, reusing those already in the JSON-lines file `path` (a twin session is a
    function of its seed, σ and effect) and appending the ones computed."""
    known: dict[int, Session] = {}
    if path is not None and path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row["sigma"] == sigma and row["effect"] == effect:
                known[row["seed"]] = (row["base"], row["candidate"])
    missing = range(0) if all(s in known for s in seeds) else range(min(s for s in seeds if s not in known),
                                                                     seeds.stop)
    if missing:
        fresh = dict(zip(missing, compute(missing)))
        if path is not None:
            with path.open("a", encoding="utf-8") as out:
                for seed, (base, candidate) in fresh.items():
                    out.write(json.dumps({"seed": seed, "sigma": sigma, "effect": effect, "base": base,
                                          "candidate": candidate}) + "\n")
        known.update(fresh)
    return [known[s] for s in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200, help="twin sessions per group (unchanged, +5 %%)")
    parser.add_argument("--sigma", type=float, default=0.015, help="session drift σ (relative)")
    parser.add_argument("--workers", type=int, default=4, help="twin sessions run side by side")
    parser.add_argument("--synthetic", type=int, default=0, help="synthetic trials per group, 0: none")
    parser.add_argument("--draws", type=int, default=10,
                        help="random baseline sets per new session in the cross-session table")
    parser.add_argument("--cache", type=Path, default=None,
                        help="JSON-lines file of twin sessions to reuse and extend (keyed by seed, σ, effect)")
    args = parser.parse_args()
    models = REPO / "fixtures" / "models"
    started = time.perf_counter()

    def run(seeds: range, effect: float) -> list[Session]:
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            return list(pool.map(lambda s: twin_ab_session(s, drift_rel=args.sigma, effect_rel=effect,
                                                           models_dir=models), seeds))

    unchanged = cached_sessions(args.cache, range(10_000, 10_000 + args.sessions), args.sigma, 0.0,
                                lambda seeds: run(seeds, 0.0))
    plus5 = cached_sessions(args.cache, range(20_000, 20_000 + args.sessions), args.sigma, EFFECT,
                            lambda seeds: run(seeds, EFFECT))
    levels = np.log([np.median(np.concatenate(b)) for b, _ in unchanged])
    shifts = [np.median(np.concatenate(n)) / np.median(np.concatenate(b)) for b, n in plus5]
    print(f"twin sessions: {len(unchanged)} unchanged + {len(plus5)} at +5 % power, σ = {args.sigma:.1%}, "
          f"{time.perf_counter() - started:.0f} s; session levels spread {np.std(levels, ddof=1):.2%} (sd of log "
          f"medians); measured +5 % candidates at median ratio {np.median(shifts):.4f}\n")
    print("Same-session A/B (twins)\n")
    print("\n".join(ab_table(unchanged, plus5)) + "\n")
    print("Across sessions (twins)\n")
    print("\n".join(session_table(unchanged, plus5, args.draws)) + "\n")
    if args.synthetic:
        rng = np.random.default_rng(0)
        syn_u = [synthetic_ab_session(rng, drift_rel=args.sigma) for _ in range(args.synthetic)]
        syn_p = [synthetic_ab_session(rng, drift_rel=args.sigma, effect_rel=EFFECT) for _ in range(args.synthetic)]
        print(f"Same-session A/B (synthetic, {args.synthetic} per group)\n")
        print("\n".join(ab_table(syn_u, syn_p)) + "\n")
        print(f"Across sessions (synthetic, {args.synthetic} per group)\n")
        print("\n".join(session_table(syn_u, syn_p, args.draws)) + "\n")


if __name__ == "__main__":
    main()
