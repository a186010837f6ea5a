"""On-board energy through the real agent over TCP and the real host client: a sysfs tree in a temp
directory laid out as the kernel's (RAPL package-0 with a wrap, an INA3221 power-only rail), advanced by a
workload power model driven by the agent's own inference loop; the meter's figure against the model's
truth within the counter's stated uncertainty, and the refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.agent.litert_device import LiteRTDevice
from pytest_edgehil.agent.onboard_energy import (
    READ_TRIES,
    CounterSource,
    OnboardEnergy,
    RailSource,
    find_sources,
)
from pytest_edgehil.agent.server import AgentServer
from pytest_edgehil.bench import Bench, DeviceUnderTest
from pytest_edgehil.config.lab import DeviceConfig, LabConfig, apply_backend
from pytest_edgehil.errors import CannotResolve
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.auth import read_token, write_new_token
from pytest_edgehil.link.energy_messages import METHOD_INTEGRATED
from pytest_edgehil.measure.counter_energy import CounterSpec
from pytest_edgehil.measure.meter import EnergyPlan
from pytest_edgehil.measure.onboard_energy import counter_window_energy, measure_onboard_energy

from .conftest import MODELS
from .workload_sysfs import WorkloadSysfs

IDLE_W, INFER_W = 2.0, 6.0
RAPL_MAX_UJ = 60_000_000  # a 60 J range, wrapped within the test (`wrap_in`)
MAX_W = 20.0  # the agent's wrap check: 60 J at 20 W allows 3 s between its reads (a stalled inference)
RAPL_ID, RAIL_ID = "intel-rapl:0:package-0", "ina3221-hwmon1-1"
PLAN = EnergyPlan(windows=2, runs_per_window=1, min_window_s=0.3)


class Board:
    def __init__(self, tmp_path: Path) -> None:
        self.sysfs = WorkloadSysfs(tmp_path / "sys", idle_w=IDLE_W, infer_w=INFER_W, rapl_max_uj=RAPL_MAX_UJ,
                                   rapl_start_uj=RAPL_MAX_UJ - 300_000)
        self.token_file = write_new_token(tmp_path / "agent.token")
        device = LiteRTDevice(name="rapl-board", trigger=self.sysfs, clock_ns=self.sysfs.clock_ns,  # type: ignore[arg-type]
                              energy=OnboardEnergy(find_sources(tmp_path / "sys", max_power_w=MAX_W, nvml=False)))
        self.server = AgentServer(device, read_token(self.token_file, what="test"), port=0).start()
        config = DeviceConfig(name="agent", kind="linux-cpu", simulated=False, port=self.server.url,
                              token_file=self.token_file)
        self.bench = Bench(apply_backend(LabConfig("agent", None, {"agent": config}), "hw"), timeout_s=10)

    def dut(self) -> DeviceUnderTest:
        dut = self.bench.device("agent")
        dut.ensure_model((MODELS / "qsegment.tflite").read_bytes(), "qsegment")
        return dut

    def close(self) -> None:
        self.bench.close()
        self.server.close()


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    b = Board(tmp_path)
    yield b
    b.close()


def test_energy_messages_round_trip_and_are_registered():
    window = p.CounterWindow(RAPL_ID, "RAPL package-0", 0, 1.0, 1000.0, 3_999_000, 10, 4_100_000, 250_010, "")
    for message in (p.EnergyRead(), p.EnergyCounters(400, (window,))):
        assert p.FrameDecoder().feed(p.encode_message(message, 7))[0].message() == message
    assert p.MESSAGE_TYPES[p.MsgType.ENERGY_READ] is p.EnergyRead
    assert int(p.MsgType.ENERGY_READ) == 0x0C and int(p.MsgType.ENERGY_COUNTERS) == 0x8C  # 0x09-0x0B left free


def test_the_agent_offers_its_counters_in_hello(board):
    hello = board.dut().hello
    assert "energy_read" in hello.capabilities
    sources = [s.counter_id for s in find_sources(board.sysfs.rapl.parents[2], nvml=False)]
    assert sources == [RAPL_ID, RAIL_ID]  # RAPL counter first, the power-only rail integrated after
    assert OnboardEnergy([]).capabilities == ()  # a board with none never advertises ENERGY_READ


@pytest.mark.parametrize("counter_id", [RAPL_ID])
def test_each_window_is_within_the_counters_stated_uncertainty_of_the_truth(board, counter_id):
    dut = board.dut()
    measurement = measure_onboard_energy(dut, PLAN, counter_id=counter_id)
    n = len(measurement.timings[0])
    assert measurement.window_source == f"on-board counter over {n} inferences"
    assert measurement.instrument == ("on-board RAPL package-0" if counter_id == RAPL_ID
                                      else "on-board hwmon ina3221 VDD_IN (integrated)")
    assert len(measurement.windows) == PLAN.windows and all(len(t) == n for t in measurement.timings)
    board.sysfs.wrap_in(1.0)  # ~1.8 J per window below at 6 W: the first one passes through 0
    wrapped = False
    # The meter sized n for 0.3 s at the speed it saw; a loaded machine that speeds up later would make
    # n inferences too short for the counter's 1 % (a refusal, not a wrong figure), so check on 3n.
    n *= 3
    for _ in range(3):  # windows like the meter's, each checked against the model's truth over it
        dut.client.run(n)
        window = next(w for w in dut.client.energy_counters().windows if w.counter_id == counter_id)
        energy_j, u_j, power_w = counter_window_energy(window, n, device="agent")
        truth_j = board.sysfs.energy_j(window.start_us, window.end_us) / n
        assert abs(energy_j - truth_j) <= u_j, (energy_j, truth_j, u_j)
        assert u_j <= 0.011 * truth_j  # sized for 1 % (plus a count at each end)
        assert IDLE_W < power_w <= INFER_W
        wrapped |= window.end_uj >= RAPL_MAX_UJ > window.start_uj  # unwrapped by the agent
    assert wrapped or counter_id != RAPL_ID  # the register wrapped inside a window, and it still agreed


class SteppedClock:
    """A board clock that moves only when told: the rail's samples then fall where the test puts them."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


@pytest.mark.parametrize("threaded", [False])
def test_a_power_only_rail_integrated_by_the_trapezoid_rule_is_within_its_stated_uncertainty(tmp_path, threaded):
    clock = SteppedClock()
    sysfs = WorkloadSysfs(tmp_path, idle_w=IDLE_W, infer_w=INFER_W, rapl_max_uj=RAPL_MAX_UJ, rapl_start_uj=0,
                          ina_interval_ms=2, now_ns=clock)
    rail = next(s for s in find_sources(tmp_path, nvml=False) if s.counter_id == RAIL_ID)
    assert isinstance(rail, RailSource) and rail.power_file is None  # volts × amps: no power file here
    rail.threaded = threaded
    n, infer_ns, gap_ns = 400, 3_100_000, 70_000  # 3.1 ms inferences, 70 µs between them: 1.27 s
    clock.ns += 5_000_000
    rail.begin(sysfs.clock_ns)
    for _ in range(n):
        sysfs.set(True)
        clock.ns += infer_ns
        sysfs.set(False)
        clock.ns += gap_ns
        rail.poll(sysfs.clock_ns)
    window = rail.end(sysfs.clock_ns)
    assert window.label == "hwmon ina3221 VDD_IN (integrated)" and window.method == METHOD_INTEGRATED
    energy_j, u_j, _ = counter_window_energy(window, n, device="agent")
    truth_j = sysfs.energy_j(window.start_us, window.end_us) / n
    assert abs(energy_j - truth_j) <= u_j, (energy_j, truth_j, u_j)
    # sampled about every 2 ms plus an inference: the stated update period says so
    assert 2e3 < window.update_us <= 2e3 + (infer_ns + gap_ns) / 1e3 + 1
    with pytest.raises(CannotResolve, match=rf"{RAIL_ID} window.*run at least \d+ inferences"):
        counter_window_energy(window, n, device="agent", rel=0.001)  # 0.1 % would need a longer run


def test_per_inference_energy_is_refused_with_the_reason(board):
    measurement = measure_onboard_energy(board.dut(), PLAN)
    with pytest.raises(CannotResolve, match=r"on-board counter intel-rapl:0:package-0 updates every \d+(\.\d+)? ms.*"
                                             r"per-inference and per-stage energy need a digitizing analyzer"):
        _ = measurement.inference_j
    assert np.isfinite(measurement.end_to_end_j).all() and measurement.end_to_end_power_w[0] > IDLE_W


def test_a_run_too_short_for_the_counter_is_refused_naming_it_and_the_n_needed(board):
    # Asked to 0.01 %, the 1 ms counter needs windows of 20 s: 3 inferences (a few ms idle) stay far short
    # however loaded the host. At the default 1 % (0.2 s) they passed it on a loaded CI machine (2 busy loops
    # beside 2 xdist workers) and were measured, rightly, instead of refused.
    with pytest.raises(CannotResolve, match=r"intel-rapl:0:package-0 window.*updates every \d+(\.\d+)? ms.*"
                                            r"0\.01% of the energy unresolved.*run at least \d+ inferences"):
        measure_onboard_energy(board.dut(), PLAN, runs=3, rel=1e-4)


def test_a_window_the_agent_marked_unusable_is_refused():
    window = p.CounterWindow(RAPL_ID, "RAPL package-0", 0, 1.0, 1000.0, 0, 0, 5, 1_000_000,
                             "at up to 500 W the counter may wrap more than once")
    with pytest.raises(Exception, match=r"device 'b': on-board counter intel-rapl:0:package-0 over RUN 10: at up"):
        counter_window_energy(window, 10, device="b")


ENERGY_SUITE = (Path(__file__).resolve().parents[1] / "suites" / "test_energy.py").read_text()


def test_the_energy_suite_runs_on_the_agent_end_to_end_only(board, edgehil_project):
    board.bench.close()  # the pytest run below brings the board up itself
    edgehil_project.makefile(".toml", lab=f'[devices.agent]\nkind = "linux-cpu"\nport = "{board.server.url}"\n'
                                          f'token_file = "{board.token_file}"\nmodels = ["qsegment"]\n')
    edgehil_project.makeconftest(
        "import pytest\nfrom pytest_edgehil.measure.meter import EnergyPlan\n\n"
        "@pytest.fixture\ndef edgehil_energy_plan():\n"
        "    return EnergyPlan(windows=2, runs_per_window=1, min_window_s=0.3)\n")
    edgehil_project.makepyfile(test_energy=ENERGY_SUITE)
    result = edgehil_project.runpytest("--lab=lab.toml", "--backend=hw", "--device=agent", "-p", "no:cacheprovider",
                                       "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*qsegment-agent*energy*end_to_end_mj*mJ*HW*",
                                 "*SKIPPED*on-board counter intel-rapl:0:package-0 updates every *ms*"])


class PreemptedReader:
    """A counter whose first `stalls` reads are preempted: the board clock jumps 5 ms during each."""

    def __init__(self, clock: SteppedClock, stalls: int) -> None:
        self.clock, self.stalls, self.reads = clock, stalls, 0

    def read_uj(self) -> int:
        self.reads += 1
        if self.reads <= self.stalls:
            self.clock.ns += 5_000_000
        self.clock.ns += 20_000  # an unhurried sysfs read
        return 1_000 * self.reads


@pytest.mark.parametrize("stalls", [0, 1, READ_TRIES])
def test_a_counter_read_preempted_between_clock_and_value_is_read_again(stalls):
    clock = SteppedClock()
    reader = PreemptedReader(clock, stalls)
    spec = CounterSpec("rapl", RAPL_ID, RAPL_MAX_UJ, 1.0, 0.001)
    source = CounterSource(spec, reader, "RAPL package-0")
    start_ns = clock.ns
    reading = source._read(clock)
    assert reading is not None
    if stalls < READ_TRIES:  # the first unpreempted read is kept, stamped at the middle of its clock reads
        assert reader.reads == stalls + 1 and reading.energy_uj == 1_000 * (stalls + 1)
        assert reading.time_s * 1e9 == pytest.approx(start_ns + stalls * 5_020_000 + 10_000)
    else:  # every try preempted: the tightest (all alike here: the first) is kept, not the last
        assert reader.reads == READ_TRIES and reading.energy_uj == 1_000
        assert reading.time_s * 1e9 == pytest.approx(start_ns + 2_510_000)


class SkewedCounter:
    """A 1 ms counter at a constant `power_w` on `clock`, read by a reader preempted for 5 ms on every try:
    the begin read (`late`) sees the counter after the stall, the end read before it (the worst case for
    a bracket stamped at its midpoint: each end's energy is half a stall's off, both the same way)."""

    def __init__(self, clock: SteppedClock, power_w: float) -> None:
        self.clock, self.power_w, self.late = clock, power_w, True

    def energy_uj_at(self, ns: int) -> int:
        return int(self.power_w * (ns // 1_000_000) * 1e3)  # whole ms: the value changes every 1 ms

    def read_uj(self) -> int:
        if self.late:
            self.clock.ns += 5_000_000
            return self.energy_uj_at(self.clock.ns)
        value = self.energy_uj_at(self.clock.ns)
        self.clock.ns += 5_000_000
        return value


def test_a_window_whose_reads_were_all_preempted_states_an_uncertainty_that_covers_the_stall():
    clock, power_w = SteppedClock(), 6.0
    counter = SkewedCounter(clock, power_w)
    source = CounterSource(CounterSpec("rapl", RAPL_ID, RAPL_MAX_UJ, 1.0, 0.001), counter, "RAPL package-0", MAX_W)
    source.begin(clock)
    counter.late = False
    clock.ns += 2_000_000_000  # a 2 s RUN
    window = source.end(clock)
    energy_j, u_j, _ = counter_window_energy(window, 1, device="b")
    truth_j = power_w * (window.end_us - window.start_us) * 1e-6  # the energy between the window's own stamps
    assert abs(energy_j - truth_j) <= u_j, (energy_j, truth_j, u_j)


def test_the_simulated_counter_never_runs_back_for_a_thread_that_read_the_clock_earlier(tmp_path):
    # The rail's sampler thread may read the clock, then wait milliseconds for the GIL while the agent reads
    # RAPL at a later time; when it then brings the files up to its own time, they must not go back.
    clock = SteppedClock()
    sysfs = WorkloadSysfs(tmp_path, idle_w=IDLE_W, infer_w=INFER_W, rapl_max_uj=RAPL_MAX_UJ, rapl_start_uj=0,
                          now_ns=clock)
    clock.ns += 10_000_000
    sysfs.clock_ns()
    seen_uj = int((sysfs.rapl / "energy_uj").read_text())
    assert seen_uj == round(IDLE_W * 10_000)  # 10 ms at idle, in µJ
    clock.ns -= 5_000_000  # the waiting thread's clock read
    sysfs.clock_ns()
    assert int((sysfs.rapl / "energy_uj").read_text()) >= seen_uj
