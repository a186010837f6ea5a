"""Coral and IMX500 through a power monitor's twin, seed by seed: the worst error against the twin's truth.

Usage: `python scripts/monitor_seeds.py [--seeds 10] [--analyzer ppk2|n6705c]`. `ppk2` measures through the
PPK2 twin (windows from its digital channel); `n6705c` through the N6705C twin held at 10.24 µs (trigger
start + clock fit). Prints one line per device × model × seed: the worst |error| of the inference and
end-to-end energies over 10 inferences beyond the instrument's stated limit (the twins draw the instrument's
own offset and gain within it; `EnergySamples.*_instrument_j`) and that limit, or the meter's refusal.
docs/instruments.md quotes its result.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from pytest_edgehil.bench import Bench
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import simulated_lab
from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.measure.meter import EnergyPlan, measure_energy

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"


def worst_errors(kind: str, model: str, seed: int, analyzer: str) -> str:
    lab = simulated_lab()
    device = (replace(lab.devices[kind], twin_monitor="ppk2") if analyzer == "ppk2"
              else replace(lab.devices[kind], twin_analyzer="keysight-n6705c"))
    bench = Bench(replace(lab, devices={kind: device}), seed=seed)
    try:
        dut = bench.device(kind)
        entry = ModelCatalog(MODELS).get(model)
        dut.ensure_model(entry.data, entry.name)
        monitor, supply = bench.analyzer(kind)
        if analyzer == "n6705c":
            finest = monitor.supported_sample_interval_s
            monitor.supported_sample_interval_s = lambda s: finest(max(s, 10.24e-6))  # type: ignore[method-assign]
        try:
            m = measure_energy(dut, monitor, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                               plan=EnergyPlan(windows=1, runs_per_window=10))
        except MeasurementError as exc:
            return f"refused: {type(exc).__name__}: {str(exc)[:120]}"
        timeline, edges = dut.twin.timeline, dut.twin.last_run_edges_s
        inf = np.array([timeline.energy_between(b, c) for _, b, c, _ in edges])
        e2e = np.array([timeline.energy_between(a, d) for a, _, _, d in edges])
        w = m.windows[-1]

        def beyond(measured: np.ndarray, truth: np.ndarray, limit: np.ndarray) -> str:
            excess = np.maximum(np.abs(measured - truth) - limit, 0.0) / truth
            return f"{excess.max():.3%} (limit {np.median(limit / truth):.2%})"

        return (f"inference {beyond(w.inference_j, inf, w.inference_instrument_j)}  "
                f"end to end {beyond(w.end_to_end_j, e2e, w.end_to_end_instrument_j)}  ({m.window_source})")
    finally:
        bench.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--analyzer", choices=("ppk2", "n6705c"), default="ppk2")
    a = ap.parse_args()
    for kind in ("imx500", "coral"):
        for model in ("qsegment", "tinytracker"):
            for seed in range(a.seeds):
                print(f"{a.analyzer} {kind} {model} seed {seed}: {worst_errors(kind, model, seed, a.analyzer)}",
                      flush=True)


if __name__ == "__main__":
    main()
