"""USB power monitors end to end: the PPK2 driver (ppk2-api) on its twin's pty, windows from the digital
channel, checked against the truth the device twin knows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pytest_edgehil.bench import Bench
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import simulated_lab
from pytest_edgehil.errors import ConfigError, MonitorLimit, WindowMisplaced
from pytest_edgehil.instruments.monitor import parse_monitor
from pytest_edgehil.measure.digital_windows import WINDOW_SOURCE_DIGITAL, digital_edges_s, fit_digital_map
from pytest_edgehil.measure.meter import EnergyPlan, measure_energy
from pytest_edgehil.measure.run_window import RUN_WINDOW_SOURCE_TRIGGER

from .conftest import MODELS
from .truth_checks import method_error

CATALOG = ModelCatalog(MODELS)


def _bench(kind: str, monitor: str, physics: dict[str, object] | None = None, seed: int = 5) -> Bench:
    lab = simulated_lab()
    devices = {kind: replace(lab.devices[kind], twin_monitor=monitor)}
    return Bench(replace(lab, devices=devices, physics=physics or {}), seed=seed)


def _measure(bench: Bench, kind: str, model: str, runs: int = 10):
    dut = bench.device(kind)
    entry = CATALOG.get(model)
    dut.ensure_model(entry.data, entry.name)
    monitor, supply = bench.analyzer(kind)
    m = measure_energy(dut, monitor, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                       plan=EnergyPlan(windows=1, runs_per_window=runs))
    timeline = dut.twin.timeline
    edges = dut.twin.last_run_edges_s  # true instants of the last RUN: readout, trigger, inference end, end
    truth_inf = np.array([timeline.energy_between(b, c) for _, b, c, _ in edges])
    truth_e2e = np.array([timeline.energy_between(a, d) for a, _, _, d in edges])
    return m, truth_inf, truth_e2e


def test_ppk2_energy_within_half_a_percent_of_truth_imx500():
    bench = _bench("imx500", "ppk2")
    try:
        m, truth_inf, truth_e2e = _measure(bench, "imx500", "qsegment")
    finally:
        bench.close()
    assert m.window_source == WINDOW_SOURCE_DIGITAL and m.instrument == "Nordic PPK2"
    assert m.sample_interval_s == pytest.approx(1e-5)
    window = m.windows[-1]
    # Within 0.5 % besides the PPK2's own offset and gain, which its twin draws within the limit the meter states.
    assert method_error(window.inference_j, truth_inf, window.inference_instrument_j).max() < 0.005
    assert method_error(window.end_to_end_j, truth_e2e, window.end_to_end_instrument_j).max() < 0.005


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("model", ["qsegment", "tinytracker"])
def test_ppk2_energy_on_coral_within_half_a_percent_for_every_seed(model, seed):
    """Coral's readout→inference step is 5 % of its level, as large as its per-op layer structure. The old
    per-edge settling check read that structure as a slow supply path and refused TinyTracker in 4 of seeds
    0-5 at 10 µs; the joint τ fit (measure/settling.py) does not, so the rule is strict: every seed measures
    within 0.5 % (scripts/monitor_seeds.py: seeds 0-9 for imx500 and coral on this twin and on the N6705C
    twin at 10.24 µs, worst 0.22 %)."""
    bench = _bench("coral", "ppk2", seed=seed)
    try:
        m, truth_inf, truth_e2e = _measure(bench, "coral", model)
    finally:
        bench.close()
    window = m.windows[-1]
    assert m.window_source == WINDOW_SOURCE_DIGITAL
    assert method_error(window.inference_j, truth_inf, window.inference_instrument_j).max() < 0.005
    assert method_error(window.end_to_end_j, truth_e2e, window.end_to_end_instrument_j).max() < 0.005


def test_digital_channel_makes_a_device_clock_error_irrelevant():
    """A device timer 0.2 % fast moves the measured energy by < 0.1 % when windows come from the digital
    channel (same seed, same device, only the clock differs)."""
    results = {}
    for ppm in (0.0, 2000.0):
        bench = _bench("imx500", "ppk2", physics={"clock_ppm": ppm}, seed=11)
        try:
            # 160 inferences: the median's own sampling-phase scatter (≈ 0.2 % per inference at 10 µs) must
            # sit well under the 0.1 % the clock error is allowed to move it.
            m, truth_inf, _ = _measure(bench, "imx500", "qsegment", runs=160)
        finally:
            bench.close()
        results[ppm] = (float(np.median(m.windows[-1].inference_j)), float(np.median(truth_inf)),
                        m.windows[-1].clock_ratio)
    (e0, t0, r0), (e1, t1, r1) = results[0.0], results[2000.0]
    assert t0 == pytest.approx(t1, rel=1e-9)  # the load itself is the same in both runs
    assert abs(e1 / e0 - 1) < 0.001, results
    assert r1 == pytest.approx(r0 / 1.002, rel=2e-4)  # the map did see the clock error


def _pulses(n: int, period: int, high: int, start: int = 5, size: int = 400) -> np.ndarray:
    d = np.zeros(size, dtype=bool)
    for k in range(n):
        d[start + k * period:start + k * period + high] = True
    return d


class _T:
    def __init__(self, start_us: float, inference_us: float) -> None:
        self.start_us, self.readout_us, self.inference_us, self.retrieval_us = start_us, 10.0, inference_us, 10.0


def test_digital_edges_are_half_a_sample_before_the_first_new_level():
    t = np.arange(400) * 1e-5
    rises, falls = digital_edges_s(t, _pulses(3, 100, 30))
    assert rises == pytest.approx(np.array([5, 105, 205]) * 1e-5 - 5e-6)
    assert falls == pytest.approx(np.array([35, 135, 235]) * 1e-5 - 5e-6)


def test_a_missing_pulse_or_a_foreign_line_is_refused():
    t = np.arange(400) * 1e-5
    timings = [_T(k * 1000.0, 300.0) for k in range(3)]
    fit = fit_digital_map(t, _pulses(3, 100, 30), timings)
    assert fit.ratio == pytest.approx(1.0) and fit.edges == 6
    with pytest.raises(WindowMisplaced, match="2 whole pulses"):
        fit_digital_map(t, _pulses(2, 100, 30), timings)
    with pytest.raises(WindowMisplaced, match="off the line"):
        fit_digital_map(t, _pulses(3, 100, 60), timings)  # pulses twice as long as the device says


def test_monitor_out_of_its_range_is_a_typed_refusal():
    bench = _bench("coral", "ppk2")
    try:
        dut = bench.device("coral")
        monitor, _ = bench.analyzer("coral")
        with pytest.raises(MonitorLimit, match="0.8-5 V"):
            monitor.configure(voltage_v=5.5, current_range_a=0.1, sample_interval_s=1e-5, points=10)
        with pytest.raises(MonitorLimit, match="at most 1000 mA"):
            monitor.configure(voltage_v=5.0, current_range_a=2.0, sample_interval_s=1e-5, points=10)
        with pytest.raises(MonitorLimit, match="nearest interval"):
            monitor.configure(voltage_v=5.0, current_range_a=0.1, sample_interval_s=2e-6, points=10)
        assert dut.twin is not None
    finally:
        bench.close()


@pytest.mark.parametrize("spec", ["ppk2", "scope:/dev/ttyACM0", "ppk2:"])
def test_bad_monitor_names_are_config_errors(spec):
    with pytest.raises(ConfigError, match="KIND:ADDRESS"):
        parse_monitor(spec)


def test_lpm01a_run_window_on_its_twin_within_half_a_percent():
    """The LPM01A has no digital channel and no pre-trigger samples: one run window from the D7 trigger
    (its start placed by the device's clock, no clock fitted), per-inference windows refused by name."""
    bench = _bench("cortex-m4", "lpm01a")
    try:
        dut = bench.device("cortex-m4")
        entry = CATALOG.get("tinytracker")
        dut.ensure_model(entry.data, entry.name)
        monitor, supply = bench.analyzer("cortex-m4")
        m = measure_energy(dut, monitor, supply_v=supply.supply_v, current_range_a=0.045,
                           plan=EnergyPlan(windows=1, runs_per_window=3))
        edges, timeline = dut.twin.last_run_edges_s, dut.twin.timeline
        # The run window runs from the second inference's retrieval end to the last one's (n - 2 inferences,
        # as its note says). The truth was taken from the first one's end: the mean of two inferences against
        # the meter's one, off by their jitter (up to 2.9 %, beyond 0.5 % for 9 seeds in 20; seed 5 passed).
        truth_j = timeline.energy_between(edges[1][3], edges[-1][3]) / (len(edges) - 2)
        commands = list(bench.monitor_twins["cortex-m4"].commands)
    finally:
        bench.close()
    assert m.window_source == RUN_WINDOW_SOURCE_TRIGGER and m.instrument == "ST X-NUCLEO-LPM01A"
    assert m.refusal is not None and "pre-trigger" in str(m.refusal)
    last = m.windows[-1]
    assert f"over {len(edges) - 2} back-to-back inferences" in last.trace_latency_note
    assert method_error(last.end_to_end_j, [truth_j], last.end_to_end_instrument_j).max() < 0.005
    assert "trigsrc d7" in commands and "format bin_hexa" in commands  # 100 kS/s is past ASCII's 10 kHz


@pytest.mark.parametrize(("kind", "match"), [("imx500", "at most 50 mA"), ("coral", "sources 1.8-3.3 V")])
def test_a_monitor_that_cannot_power_the_board_is_a_config_error_at_bring_up(kind, match):
    """Not a skip in every energy test: the lab wires a monitor that cannot power (or measure) the board,
    and bring-up says which device, which monitor, which limit and what to wire instead."""
    bench = _bench(kind, "lpm01a")
    try:
        bench.device(kind)
        with pytest.raises(ConfigError) as excinfo:
            bench.analyzer(kind)
    finally:
        bench.close()
    text = str(excinfo.value)
    for needle in (f"device {kind!r}", "twin_monitor 'lpm01a'", "ST X-NUCLEO-LPM01A", match, "Nordic PPK2: 0.8-5 V",
                   "SCPI analyzer"):
        assert needle in text, needle


def test_lab_file_with_a_monitor_that_cannot_power_the_board_fails_at_load(tmp_path):
    from pytest_edgehil.config.lab import load_lab

    path = tmp_path / "lab.toml"
    path.write_text('[devices.coral]\nkind = "coral"\nport = "/dev/ttyACM0"\nmonitor = "lpm01a:/dev/ttyACM1"\n'
                    'current_range_a = 0.3\n', encoding="utf-8")
    with pytest.raises(ConfigError) as excinfo:
        load_lab(path)
    text = str(excinfo.value)
    for needle in ("[devices.coral]", "monitor 'lpm01a:/dev/ttyACM1'", "sources 1.8-3.3 V", "needs 5 V",
                   "Nordic PPK2"):
        assert needle in text, needle
    path.write_text(path.read_text(encoding="utf-8").replace("lpm01a:/dev/ttyACM1", "ppk2:/dev/ttyACM1"),
                    encoding="utf-8")
    assert load_lab(path).devices["coral"].monitor == "ppk2:/dev/ttyACM1"  # a monitor that can: accepted


def test_lpm01a_codecs_round_trip():
    from pytest_edgehil.instruments import lpm01a_protocol as proto

    current = np.array([0.0123, 1e-6, 0.049, 3.3e-3] * 600)
    raw = proto.encode_binary(current)
    stream = proto.decode_binary(raw)
    assert np.abs(stream.current_a / current - 1).max() < 1 / 512  # a 12-bit mantissa, 9 bits at worst
    assert len(stream.timestamps) == 3 and not stream.problems  # the twin stamps every 1000 samples
    with pytest.raises(ValueError, match="end mark"):
        proto.decode_binary(raw[:-1])
    assert proto.format_ascii(52.12e-6) == "5212-08"
    assert proto.parse_ascii("5212-08") == pytest.approx(52.12e-6)
    assert proto.parse_ascii("ack start") is None
