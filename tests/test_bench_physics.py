"""The meter against the twins' truth with the bench's physics on (sim.bench_physics): clock error, timer
resolution, trigger latency and jitter, front end, decoupling, per-op power, session drift.

The truth is the load's own energy over the twin's true stage spans (`DeviceTwin.last_run_edges_s`), not
over the device's reported times: those carry the timer's error the meter must see through.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.bench import Bench
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import load_lab, simulated_lab
from pytest_edgehil.errors import CannotResolve, ConfigError, SupplyPathTooSlow, WindowMisplaced
from pytest_edgehil.measure.energy import energy_from_trace
from pytest_edgehil.measure.meter import EnergyPlan, measure_energy
from pytest_edgehil.sim.bench_physics import BenchPhysics

from .conftest import MODELS
from .truth_checks import has_instrument_errors, method_error

CATALOG = ModelCatalog(MODELS)
HARDWARE_PLAN = EnergyPlan(windows=1, runs_per_window=1, min_window_s=10.0, timeout_s=120.0)


def measure(physics: dict, *, model: str = "qsegment", dialect: str = "keysight-n6705c",
            plan: EnergyPlan | None = None, seed: int = 7, device: str = "imx500"):
    """(measurement, true inference J per inference of the last window, true end-to-end J, true inference s)."""
    lab = replace(simulated_lab(), physics=physics)
    lab.devices[device] = replace(lab.devices[device], twin_analyzer=dialect)
    bench = Bench(lab, seed=seed)
    try:
        dut = bench.device(device)
        entry = CATALOG.get(model)
        dut.ensure_model(entry.data, entry.name)
        analyzer, supply = bench.analyzer(device)
        m = measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                           plan=plan or EnergyPlan(windows=2, runs_per_window=10))
        timeline, edges = dut.twin.timeline, np.array(dut.twin.last_run_edges_s)
        inference_j = np.array([timeline.energy_between(b, c) for _, b, c, _ in edges])
        end_to_end_j = np.array([timeline.energy_between(a, d) for a, _, _, d in edges])
        return m, inference_j, end_to_end_j, edges[:, 2] - edges[:, 1], timeline, edges
    finally:
        bench.close()


@pytest.mark.parametrize("dialect", ["keysight-n6705c", "rs-ngm202"])
def test_every_inference_within_half_a_percent_with_all_effects_on(dialect):
    m, truth_j, truth_e2e_j, truth_s, _, _ = measure({}, dialect=dialect)
    last = m.windows[-1]
    assert last.count == 10 and m.sample_interval_s <= 5.12e-6
    # Beyond the instrument's own offset and gain (drawn by the twin within the limit the meter states).
    err = method_error(last.inference_j, truth_j, last.inference_instrument_j)
    assert err.max() < 0.005, f"{dialect}: worst inference-energy error {err.max():.3%}"
    assert method_error(last.end_to_end_j, truth_e2e_j, last.end_to_end_instrument_j).max() < 0.005
    # The trace's own latency (centroid to centroid) within one sample period of the true stage.
    assert np.abs(last.trace_inference_s - truth_s).max() <= m.sample_interval_s
    # The uncertainty is an honest scale for the error: not zero, not absurd.
    assert np.all(last.inference_u_j > 0) and np.all(last.inference_u_j < 0.01 * last.inference_j)


@pytest.mark.parametrize("ppm", [20.0, 50.0])
def test_clock_skew_on_the_hardware_plan_measures_within_half_a_percent(ppm):
    """Bench-facts: +20 ppm on the ≈ 527-inference hardware plan gave +33 %, +50 ppm +82 % before."""
    m, truth_j, _, _, _, _ = measure({"ideal": True, "clock_ppm": ppm}, model="tinytracker", plan=HARDWARE_PLAN)
    last = m.windows[-1]
    assert last.count > 500
    assert last.clock_ratio == pytest.approx(1 / (1 + ppm * 1e-6), abs=2e-6)
    err = np.abs(last.inference_j / truth_j - 1)
    assert err.max() < 0.005, f"{ppm} ppm: worst inference-energy error {err.max():.3%}"


def test_rc_oscillator_clock_on_the_simulated_plan_measures_within_half_a_percent():
    """0.2 % (an RC oscillator) gave +57 % on the simulated plan before."""
    m, truth_j, _, _, _, _ = measure({"clock_ppm": 2000.0})
    err = np.abs(m.windows[-1].inference_j / truth_j - 1)
    assert err.max() < 0.005, f"worst inference-energy error {err.max():.3%}"


def test_keithley_refuses_per_inference_windows_and_measures_run_windows():
    m, _, _, _, timeline, edges = measure({}, dialect="keithley-2281s", plan=EnergyPlan(windows=1, runs_per_window=10))
    with pytest.raises(CannotResolve) as excinfo:
        _ = m.inference_j
    assert excinfo.value.window == "inference window" and excinfo.value.sample_interval_s >= 1e-3
    assert "shorter than two samples" in str(excinfo.value) and "digitizing analyzer" in excinfo.value.fix
    # One run window per acquisition: end-to-end energy over inferences 2..n, divided by their number.
    truth_j = timeline.energy_between(edges[1, 3], edges[-1, 3]) / (len(edges) - 2)
    assert m.end_to_end_j.size == 1
    assert m.end_to_end_j[0] == pytest.approx(truth_j, rel=0.005)


RUN_WINDOW_SEEDS = range(1, 21)


@pytest.mark.parametrize(("device", "model"), [("coral", "qsegment"), ("coral", "tinytracker"),
                                               ("imx500", "qsegment"), ("imx500", "tinytracker")])
@pytest.mark.parametrize("physics", [{"ideal": True}, {}], ids=["ideal", "default-physics"])
def test_the_keithley_run_window_is_unbiased_over_many_seeds(device, model, physics):
    """On the Coral twin readout and retrieval draw one power, so the run window's first edge (the second
    inference's retrieval end) has no step: its 1 ms readings once took the inference→retrieval step 0.63 ms
    before it for that edge and the clock fit for 1.003, and the window read +0.49 to +0.75 % on an ideal bench,
    always positive. Over 20 seeds each window must lie within 0.5 % (beyond the instrument's stated limit) and
    3 of its stated σ of the truth, with the errors centred on zero."""
    errors = []
    for seed in RUN_WINDOW_SEEDS:
        m, _, _, _, timeline, edges = measure(physics, dialect="keithley-2281s", device=device, model=model,
                                              seed=seed, plan=EnergyPlan(windows=1, runs_per_window=10))
        # The truth from the twin's own stage spans: its energy over inferences 2..n, divided by their number.
        truth_j = timeline.energy_between(edges[1, 3], edges[-1, 3]) / (len(edges) - 2)
        last = m.windows[-1]
        assert last.end_to_end_j.size == 1
        if "ideal" in physics:
            assert last.clock_ratio == pytest.approx(1.0, abs=0.001)  # an ideal bench's clocks agree
        measured_j = float(last.end_to_end_j[0])
        assert method_error(last.end_to_end_j, [truth_j], last.end_to_end_instrument_j,
                            instrument_errors=has_instrument_errors(physics)).max() < 0.005, (seed, measured_j / truth_j)
        assert abs(measured_j - truth_j) <= 3 * float(last.end_to_end_u_j[0]), (seed, measured_j / truth_j)
        errors.append(measured_j / truth_j - 1)
    if "ideal" in physics:  # no instrument offset or gain: what is left is the method's own bias
        assert abs(float(np.mean(errors))) < 0.001, f"mean error {np.mean(errors):+.3%} over {len(errors)} seeds"


def test_a_window_shorter_than_two_samples_is_a_typed_refusal():
    from .test_energy_vs_timeline import sample_timeline, simulated_run

    timeline, timings, first_trigger_s, end_s = simulated_run((0.1, 0.3, 1.0, 0.3), runs=3, seed=5)
    dt_s = 0.2e-3  # the 0.23 ms inference is barely one sample
    time_s = np.arange(-2e-3, end_s - first_trigger_s, dt_s)
    with pytest.raises(CannotResolve) as excinfo:
        energy_from_trace(time_s, sample_timeline(timeline, time_s, first_trigger_s), timings)
    message = str(excinfo.value)
    assert excinfo.value.window.startswith("inference window 0") and "200 µs sample interval" in message
    assert "finer sample interval" in message


def test_lab_physics_table_reaches_the_twins(tmp_path):
    lab_path = tmp_path / "lab.toml"
    lab_path.write_text('[physics]\nclock_ppm = -35.0\ndecoupling_tau_s = 1e-5\n'
                        '[devices.imx500]\nkind = "imx500"\nsimulated = true\ntwin_analyzer = "rs-ngm202"\n')
    lab = load_lab(lab_path)
    physics = BenchPhysics.from_table(lab.physics)
    assert physics.clock_ppm == -35.0 and physics.decoupling_tau_s == 1e-5
    assert physics.trigger_latency_s == BenchPhysics().trigger_latency_s  # the rest keep their defaults
    bench = Bench(lab)
    try:
        assert bench.device("imx500").twin.physics == physics
        assert bench.analyzer_twin("imx500") is None  # started on first use only
        bench.analyzer("imx500")
        assert bench.analyzer_twin("imx500").dialect_name == "rs-ngm202"
    finally:
        bench.close()


@pytest.mark.parametrize("bad", ['clock_ppm = "fast"', "sampling = \"sinc\"", "decoupling_tau_s = -1.0",
                                 "crystal_ppm = 20.0"])
def test_a_bad_physics_key_is_refused_naming_it(tmp_path, bad):
    lab_path = tmp_path / "lab.toml"
    lab_path.write_text(f'[physics]\n{bad}\n[devices.imx500]\nkind = "imx500"\nsimulated = true\n')
    with pytest.raises(ConfigError) as excinfo:
        load_lab(lab_path)
    assert bad.split(" =")[0] in str(excinfo.value)


def test_layer_structure_keeps_the_stage_energy():
    from pytest_edgehil.sim.bench_physics import layer_segments

    segments = layer_segments({"CONV_2D": 900, "DEPTHWISE_CONV_2D": 100, "ADD": 0}, 1e-5, 1e-4, 0.1)
    assert sum(f for f, _ in segments) == pytest.approx(1.0)
    assert sum(f * level for f, level in segments) == pytest.approx(1.0)  # duration-weighted mean power
    assert max(level for _, level in segments) > 1.0 > min(level for _, level in segments)


def test_a_coarse_device_timer_is_seen_through():
    """A 10 µs device timer gave +2–3 % on Q-Segment's 0.23 ms window before (bench-facts)."""
    m, truth_j, _, _, _, _ = measure({"ideal": True, "timer_resolution_s": 10e-6})
    err = np.abs(m.windows[-1].inference_j / truth_j - 1)
    assert err.max() < 0.005, f"worst inference-energy error {err.max():.3%}"


@pytest.mark.parametrize("model", ["qsegment", "tinytracker"])
def test_imx500_inference_windows_on_the_hardware_plan_at_the_n6705cs_interval(model):
    """MLPerf Tiny's 10 s plan runs at 40.96 µs on the N6705C's grid. The energy centroid read Q-Segment's
    inference start 115 µs into a stage whose per-op power varies by ±5 %: +0.4 % median, ≈ 3 % worst,
    1.2 % on TinyTracker, silently. Edge kinds whose centroids scatter are now placed by the clock map and
    priced from their flat side (measure/edge_pricing.py). Over 20 benches each: every inference within 4 of
    its stated σ, the median (what a budget reads) within 0.15 %, and a σ that says something (under 0.6 %;
    the 0.23 ms window's own sample noise at 40.96 µs is ≈ 0.2 %, the instrument's accuracy ≈ 0.09 %). Measured: worst 2.2 σ, medians within
    0.053 %, σ ≈ 0.36 % (Q-Segment); 1.8 σ, 0.011 %, 0.16 % (TinyTracker)."""
    for seed in range(20):
        m, truth_j, _, _, _, _ = measure({}, model=model, plan=HARDWARE_PLAN, seed=seed)
        assert m.sample_interval_s == pytest.approx(40.96e-6)  # the guide's grid: 21 µs needed, 40.96 µs run
        last = m.windows[-1]
        assert last.inference_refusal is None and last.count > 500
        err_j = last.inference_j - truth_j
        z = np.abs(err_j) / last.inference_u_j
        assert z.max() <= 4.0, f"seed {seed}: inference {int(z.argmax())} off by {z.max():.2f} of its stated σ"
        median_err = float(np.median(err_j / truth_j))
        assert abs(median_err) < 0.0015, f"seed {seed}: median inference energy {median_err:+.3%} off"
        # The σ includes the N6781A's data-sheet accuracy on its 100 mA range (B/√3 ≈ 0.09 %) in quadrature.
        assert np.median(last.inference_u_j / last.inference_j) < 0.006


def test_a_refused_inference_window_names_the_analyzer():
    """A window's refusal is worked out from the trace alone; the meter hands it out naming the analyzer that
    took the trace (a point-sampled trace cannot price Q-Segment's 0.23 ms window to 1 %)."""
    m, _, _, _, _, _ = measure({"ideal": True, "sampling": "point"})
    with pytest.raises(CannotResolve) as excinfo:
        _ = m.inference_j
    assert excinfo.value.window.startswith("inference window") and "on the Keysight N6705C" in excinfo.value.window
    assert "point-sampled" in str(excinfo.value) and excinfo.value.fix


SUITE = Path(__file__).resolve().parent.parent / "suites" / "test_energy.py"


@pytest.mark.parametrize(("dialect", "outcomes"), [("rs-ngm202", {"passed": 9}),
                                                   ("keithley-2281s", {"passed": 4, "skipped": 5})])
def test_the_energy_suite_runs_on_every_analyzer_dialect(edgehil_project, dialect, outcomes):
    """The energy suite on the NGM202 and 2281S twins (the N6705C is the default bench's): the 2281S's
    per-inference tests skip with the meter's typed refusal, its end-to-end energy is measured."""
    lab = edgehil_project.makefile(".toml", lab=f'[devices.imx500]\nkind = "imx500"\nsimulated = true\n'
                                   f'twin_analyzer = "{dialect}"\n[devices.coral]\nkind = "coral"\n'
                                   f'simulated = true\ntwin_analyzer = "{dialect}"\n')
    edgehil_project.makepyfile(test_energy_suite=SUITE.read_text(encoding="utf-8"))
    result = edgehil_project.runpytest_subprocess("--device=all", f"--lab={lab}", "-p", "no:cacheprovider", "-rs")
    if dialect == "rs-ngm202" and result.parseoutcomes().get("skipped"):
        # Coral's Q-Segment inference stage stands 5 % above its readout while its per-op power varies by
        # ±5 %: the trace often finds no distinct edge to time it (main shows 1 timed inference in 10), and
        # the latency cross-check then skips with that typed note; every energy test still passes.
        result.assert_outcomes(passed=outcomes["passed"] - 1, skipped=1)
        result.stdout.fnmatch_lines(["*the trace cannot time the inference stage here*no distinct edge*"])
        return
    result.assert_outcomes(**outcomes)
    if "skipped" in outcomes:
        result.stdout.fnmatch_lines(["*refused by the meter: cannot resolve inference window*Keithley 2281S*"])


@pytest.mark.parametrize(("physics", "dialect"), [
    ({"ideal": True, "front_end_bandwidth_hz": 20e3}, "keysight-n6705c"),  # τ 8 µs: 2 % silently before
    ({"ideal": True, "decoupling_tau_s": 6e-6}, "keysight-n6705c"),  # just past the old fixed reach: ≈ 1.05 %
    ({"decoupling_tau_s": 6e-6}, "rs-ngm202"),  # the same RC with every other effect at its default
    ({"ideal": True, "decoupling_tau_s": 10e-6}, "rs-ngm202"),
])
def test_a_slow_supply_path_is_corrected_for(physics, dialect):
    """The supply path's τ is fitted from every step together and the locator reads each level 7 τ past
    its edge: an RC of 6-10 µs or a 20 kHz front end measures within 0.5 % (issue 10: zero silent errors
    over 1 %; a 6 µs RC used to give ≈ 1.05 % silently, just under the old fixed 6 µs threshold)."""
    m, truth_j, truth_e2e_j, _, _, _ = measure(physics, dialect=dialect)
    last = m.windows[-1]
    assert last.count == 10
    on = has_instrument_errors(physics)
    assert method_error(last.inference_j, truth_j, last.inference_instrument_j, instrument_errors=on).max() < 0.005
    assert method_error(last.end_to_end_j, truth_e2e_j, last.end_to_end_instrument_j, instrument_errors=on).max() < 0.005


def test_a_slow_supply_path_is_corrected_for_another_seed_too():
    # Seed 9 of 40 (10 µs RC, NGM202, otherwise ideal) was refused as WindowMisplaced: a small step (267 to
    # 256 mW) read over the 70-sample region a 10 µs RC needs sat 10.3 µs off the map against a fixed 10 µs
    # tolerance, while its centroid's own noise sigma is 2.8 µs; the tolerance now widens to 5 of those.
    m, truth_j, truth_e2e_j, _, _, _ = measure({"ideal": True, "decoupling_tau_s": 10e-6}, dialect="rs-ngm202",
                                               seed=9)
    last = m.windows[-1]
    assert np.abs(last.inference_j / truth_j - 1).max() < 0.005
    assert np.abs(last.end_to_end_j / truth_e2e_j - 1).max() < 0.005


def test_a_supply_path_too_slow_for_the_window_is_a_typed_refusal():
    """A 50 µs decoupling RC gave 210 % on Q-Segment's 0.23 ms window, silently: its steps cannot settle
    within the stages beside them (7 τ = 350 µs), so the window is refused, naming the settling."""
    with pytest.raises(CannotResolve) as excinfo:
        measure({"decoupling_tau_s": 50e-6})
    message = str(excinfo.value)
    assert excinfo.value.window.startswith("inference window") and "settles with a time constant" in message
    seen_us = float(message.split("time constant of ≈ ")[1].split(" µs")[0])
    assert seen_us > 35.0  # the settling it names is the supply path's (fitted ≥ 0.7 τ)
    assert "stage-only loop" in excinfo.value.fix and "wider analyzer front end" in excinfo.value.fix


@pytest.mark.parametrize(("physics", "tau_s"), [
    ({"ideal": True, "decoupling_tau_s": 12.5e-6}, 12.5e-6),
    ({"ideal": True, "front_end_bandwidth_hz": 5e3}, 1 / (2 * np.pi * 5e3)),
])
def test_a_slow_supply_path_on_the_ngm202_is_refused_naming_the_path_not_a_missing_run(physics, tau_s):
    """FastLog has no trigger: the RUN is placed from its first power step. Behind a slow supply path the
    record opens on the previous command's activity still decaying, and the RUN begins before it settles.
    Refused (a path that slow beside Q-Segment's 0.23 ms inference cannot be measured to 1 %), but it used to
    say "the RUN is not in it"; now it names the fitted time constant, what the stages need and the fix."""
    with pytest.raises(SupplyPathTooSlow) as excinfo:
        measure(physics, dialect="rs-ngm202")
    refusal = excinfo.value
    assert refusal.tau_s == pytest.approx(tau_s, rel=0.1)
    # Q-Segment's shortest stage is its ≈ 0.23 ms inference: τ ≤ 0.23 ms / 22 ≈ 10.5 µs.
    assert refusal.allowed_tau_s == pytest.approx(0.23e-3 / 22, rel=0.05) and refusal.allowed_tau_s < refusal.tau_s
    message = str(refusal)
    assert "not in it" not in message and "RUN is in the record" in message
    assert f"τ ≈ {refusal.tau_s * 1e6:.3g} µs" in message and "inference" in message
    assert "front end" in message and "decoupling" in message and "N6705C" in message


def test_the_energy_tests_skip_with_the_slow_path_refusal_as_their_reason(edgehil_project):
    """As a window the N6705C's trace cannot resolve skips (CannotResolve), so does the NGM202's record whose
    RUN start a slow supply path hides: a refusal of what the data can give, not an error of the bench."""
    lab = edgehil_project.makefile(".toml", lab='[physics]\nideal = true\ndecoupling_tau_s = 12.5e-6\n'
                                   '[devices.imx500]\nkind = "imx500"\nsimulated = true\ntwin_analyzer = "rs-ngm202"\n')
    edgehil_project.makepyfile(test_refused="import pytest\n\n"
                               "@pytest.mark.edgehil_metrics('end_to_end_mj', unbudgeted=True)\n"
                               "def test_end_to_end_energy(edgehil_energy):\n    pass\n")
    result = edgehil_project.runpytest_subprocess("--device=imx500", f"--lab={lab}", "-p", "no:cacheprovider", "-rs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) >= 1 and not {"passed", "failed", "errors", "error"} & set(outcomes), outcomes
    result.stdout.fnmatch_lines(["*refused by the meter: cannot tell where the RUN starts*τ ≈*"])


def _refused_or_within(physics: dict, *, model: str, seed: int, rel: float = 0.01) -> str:
    """'refused' when the meter refuses the inference windows (CannotResolve, or `inference_refusal`),
    else asserts every inference energy within `rel` of the truth and says 'measured'."""
    try:
        m, truth_j, truth_e2e_j, _, timeline, edges = measure(physics, model=model, seed=seed)
    except (CannotResolve, WindowMisplaced):
        return "refused"
    last = m.windows[-1]
    if last.end_to_end_j.size == 1:  # one window over the RUN's envelope / n (measure.envelope_window)
        truth_e2e_j = np.array([timeline.energy_between(edges[0, 0], edges[-1, 3]) / len(edges)])
    assert np.abs(last.end_to_end_j / truth_e2e_j - 1).max() < rel
    if last.inference_refusal is not None:
        return "refused"
    assert np.abs(last.inference_j / truth_j - 1).max() < rel
    return "measured"


@pytest.mark.parametrize("seed", [0, 1])
def test_a_slow_supply_path_beside_a_short_stage_is_refused_not_biased(seed):
    # A 15 µs decoupling RC beside Q-Segment's 0.23 ms inference (15 τ): the locator read a level deep in
    # the stage, whose per-op power is not flat, and was +1.1 to +2.7 % silent (a fresh-user review).
    assert _refused_or_within({"decoupling_tau_s": 15e-6}, model="qsegment", seed=seed) == "refused"


@pytest.mark.parametrize("seed", [0, 1])
def test_a_board_clock_beyond_the_meters_tolerance_is_refused_not_measured(seed):
    # A timer 1 % slow (twice the RC oscillator the meter allows for): the windows drift into the readout
    # stage; 0.22 mJ was reported for TinyTracker's 0.06 mJ inference before the drift bound was held to
    # edges pinned by a fitted ratio (two edges of one short stage pin nothing).
    assert _refused_or_within({"clock_ppm": -9999.0}, model="tinytracker", seed=seed) == "refused"


@pytest.mark.parametrize(("tick_s", "model"), [(100e-6, "qsegment"), (50e-6, "tinytracker")])
def test_a_coarse_device_timer_is_refused_not_measured(tick_s, model):
    # A 50-100 µs device timer stamps the 0.23 / 0.86 ms inference edges that coarsely; where the trace
    # does not show an edge, the stamp is all the meter has. Those windows were +12 % to +124 % with a
    # stated uncertainty under 1 % (a sweep by a helper); the tick is now part of each such edge's bound.
    # Seed 34: an edge predicted a tick off was located inside the locator's level samples, m samples from
    # where it is, and passed as located (TinyTracker +4.0 % silent at 0.11 %; tests/test_edge_locator.py).
    for seed in (1, 2, 34):
        assert _refused_or_within({"ideal": True, "timer_resolution_s": tick_s}, model=model, seed=seed) == "refused"


@pytest.mark.parametrize("seed", [9, 29])
def test_a_coarse_device_timer_leaves_the_end_to_end_figure_measured(seed):
    # The same 50 µs timer: inference windows refused (above), but the end-to-end ones, whose edges the trace
    # shows, measured. Seeds 9 and 29 of 30 refused them too (WindowMisplaced): pass 1 pinned the clock from a
    # few located edges weighed by their centroid noise alone, while each sits up to a tick off the stamps
    # the map runs through (ratio 0.99864 and 1.00159 fitted for the true 1.00000).
    m, truth_j, truth_e2e_j, _, _, _ = measure({"ideal": True, "timer_resolution_s": 50e-6}, model="tinytracker",
                                               seed=seed)
    last = m.windows[-1]
    assert np.abs(last.end_to_end_j / truth_e2e_j - 1).max() < 0.005
    assert last.inference_refusal is not None or np.abs(last.inference_j / truth_j - 1).max() < 0.01


def test_the_device_tick_is_read_from_the_stamps():
    from pytest_edgehil.link.messages import StageTiming
    from pytest_edgehil.measure.device_windows import device_tick_s

    stamps = [StageTiming(19000.0 * i, 17900.0, 850.0, 250.0) for i in range(5)]
    assert device_tick_s(stamps) == pytest.approx(50e-6)  # every value a multiple of 50 µs
    fine = [StageTiming(19003.25 * i, 17901.5, 860.75, 239.25) for i in range(5)]
    assert device_tick_s(fine) == pytest.approx(0.25e-6)  # a 4 MHz timer


@pytest.mark.parametrize("seed", [0, 2])
def test_a_front_end_too_slow_for_the_stage_is_refused_not_biased(seed):
    # A 5 kHz analyzer front end (τ ≈ 32 µs) beside Q-Segment's 0.23 ms inference: the joint τ fit saw
    # approaches of mixed sign at the top of its grid and read them as "settled"; the windows came out
    # +21 to +92 % with under 1 % stated (a helper's sweep).
    assert _refused_or_within({"ideal": True, "front_end_bandwidth_hz": 5e3}, model="qsegment", seed=seed) == "refused"


@pytest.mark.parametrize(("seed", "model"), [(0, "qsegment"), (1, "tinytracker")])
def test_a_clock_past_the_search_tolerance_is_refused_not_drifted(seed, model):
    # A 0.8 % fast board (past the locator's 0.5 % search): a few edges located, matched consistently but
    # to the wrong device edges, pinned a ratio 0.9954 against the true 0.9921; the last end-to-end window
    # came out −2.6 %. The RUN's envelope (first step out of idle, last step back) shows the true ratio.
    assert _refused_or_within({"ideal": True, "clock_ppm": 8000.0}, model=model, seed=seed) == "refused"
