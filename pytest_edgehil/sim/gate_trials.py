"""Trials of the merge gate on the simulated bench, with between-session drift: how often it blocks an
unchanged model (false alarms) and a model drawing more energy (detection), in both of its modes.

Two sources of sessions, drawn the same way:

* `twin_ab_session`: one session of the real twins (device twin on a pty, analyzer twin over PyVISA/TCP,
  `measure_energy_ab` at the default simulated plan: 3 rounds × 10 inferences per model), with the
  bench's session drift σ (`bench_physics.session_factor`). The candidate's extra energy is applied by
  scaling the device twin's session power factor while the candidate runs.
* `synthetic_ab_session`: the same shape drawn directly — a session factor N(1, σ) kept within ±4σ (as
  `session_factor`), per-inference lognormal spread `cv` — for the thousands of trials a tight
  false-alarm figure needs, and for CI.

Both return `(baseline rounds, candidate rounds)` in mJ; `ab_verdict` and `session_verdict` run the
gate's own decision (`results.gate.compare_paired` / `compare_records`) on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from pytest_edgehil.results.comparison import Comparison, FailOn
from pytest_edgehil.results.gate import compare_paired, compare_records
from pytest_edgehil.results.records import ab_context
from pytest_edgehil.results.store import ResultRecord

Rounds = list[list[float]]
TWIN_CV = 0.01  # per-inference spread of the IMX500 twin's Q-Segment energy (measured: 0.7–1.0 %)
ROUNDS, RUNS_PER_ROUND = 3, 10  # EnergyPlan.simulated(): 3 windows × 10 inferences


def synthetic_ab_session(rng: np.random.Generator, *, drift_rel: float, effect_rel: float = 0.0,
                         cv: float = TWIN_CV, rounds: int = ROUNDS, runs: int = RUNS_PER_ROUND,
                         level_mj: float = 0.0114) -> tuple[Rounds, Rounds]:
    """One session: its factor N(1, σ) within ±4σ, then per round `runs` lognormal samples per side."""
    factor = 1.0 + drift_rel * float(np.clip(rng.standard_normal(), -4, 4))
    base = [rng.lognormal(math.log(level_mj * factor), cv, runs).tolist() for _ in range(rounds)]
    new = [rng.lognormal(math.log(level_mj * factor * (1 + effect_rel)), cv, runs).tolist() for _ in range(rounds)]
    return base, new


def twin_ab_session(seed: int, *, drift_rel: float, effect_rel: float = 0.0, models_dir: Path,
                    model: str = "qsegment", device: str = "imx500") -> tuple[Rounds, Rounds]:
    """One A/B session through the twins: the same model on both sides, the candidate's twin power
    scaled by 1 + `effect_rel` while it runs. Per-inference energy in mJ, per round."""
    from pytest_edgehil.bench import Bench
    from pytest_edgehil.config.catalog import ModelCatalog
    from pytest_edgehil.config.lab import simulated_lab
    from pytest_edgehil.measure.interleave import CANDIDATE, ABModel, measure_energy_ab

    data = ModelCatalog(models_dir).get(model).data
    bench = Bench(replace(simulated_lab(), physics={"session_drift_rel": drift_rel}), seed=seed)
    try:
        dut = bench.device(device)
        analyzer, supply = bench.analyzer(device)
        twin = dut.twin
        assert twin is not None, "the simulated lab has twins"
        session_factor = twin.power_factor

        def drive(side: str) -> None:
            twin.power_factor = session_factor * (1.0 + effect_rel if side == CANDIDATE else 1.0)

        ab = measure_energy_ab(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                               baseline=ABModel(model, data), candidate=ABModel(model, data), before_each=drive)
    finally:
        bench.close()
    return ([(m.inference_j * 1e3).tolist() for m in ab.baseline],
            [(m.inference_j * 1e3).tolist() for m in ab.candidate])


def _record(samples: Sequence[float], context: dict[str, object] | None = None) -> ResultRecord:
    return ResultRecord(pair="qsegment-imx500", model="qsegment", device="imx500", kind="imx500",
                        metric="inference_mj", value=float(np.median(samples)), unit="mJ", backend="SIMULATED",
                        status="info", raw=[float(x) for x in samples], context=context,
                        direction="lower", family="energy")


def ab_verdict(base: Rounds, new: Rounds, fail_on: FailOn) -> Comparison:
    """The gate's same-session A/B verdict on one session's rounds."""
    flat = [x for r in new for x in r]
    record = _record(flat, ab_context(base, new, baseline_sha256="", source="trial"))
    comparison = compare_paired(record, fail_on)
    assert comparison is not None
    return comparison


def session_verdict(base_sessions: Sequence[Rounds], new: Rounds, fail_on: FailOn) -> Comparison:
    """The gate's cross-session verdict: one new session against baseline sessions (oldest first)."""
    bases = [_record([x for r in s for x in r]) for s in base_sessions]
    return compare_records(bases, _record([x for r in new for x in r]), fail_on)
