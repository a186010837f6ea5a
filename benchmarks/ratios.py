"""Host cost against the bare link, as ratios: `python -m benchmarks.ratios` prints the table.

Each row is our path (A) against a bare baseline (B) moving the same bytes in both directions, timed in
interleaved rounds in one process (`benchmarks.harness`); the table gives the median per-round ratio
A/B and its min-max. What each baseline is:
- RUN 1 and 64 KB SET_INPUT: the `DeviceClient` against bare pyserial on the *same* pty, to the *same*
  device side (`serve_pty`), which answers both alike. The bare side writes the request frame, encoded
  beforehand with a fresh sequence number (so the device never answers from its reply cache), and reads
  until the reply's 0x00 delimiter: the same bytes out and back (RUN: the 99-byte RESULT; SET_INPUT:
  65,711 bytes out, 15 back). What is left is the client's cost: encode, COBS, exchange, decode, checks.
- trace fetch: `fetch_trace()` of a 2**20-sample capture (current and voltage blocks) against pyvisa's
  `query_binary_values` of the same two blocks on the same socket. The driver also decodes, checks
  plausibility and drains `SYST:ERR?` once per block (correctness it keeps).
- accuracy evaluation: images through a device twin (`measure.latency.infer_many`, which the suites use)
  against a bare loop that writes the same SET_INPUT bytes over a pty and invokes LiteRT on the tensor;
  the goal is stated as throughput, bare time / twin time. Two rows per model: calls of 20 random images
  (a call's fixed cost shows), and the model's shipped evaluation set in one call, as the suites run it.
Figures are indicative on a shared machine; the spread says how far.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import select
import subprocess
import sys
import threading
import tty
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pyvisa
import serial

from benchmarks.harness import Ratio, interleaved
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.instruments import open_analyzer
from pytest_edgehil.instruments.keysight_n6705c import MAX_POINTS, KeysightN6705C
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.measure.datasets import load_npz_dataset
from pytest_edgehil.measure.latency import infer_many, to_model_input
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles
from pytest_edgehil.sim.pty_link import serve_pty
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

if TYPE_CHECKING:
    from pytest_edgehil.bench import DeviceUnderTest

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"
DATA = Path(__file__).resolve().parent.parent / "fixtures" / "data"
# The suites' evaluation set of each model task (suites/conftest.py: the same files).
EVAL_SET_BY_TASK = {"binary-segmentation": "vessels_eval.npz", "gaze-regression": "gaze_eval.npz"}
TENSOR_64K = np.random.default_rng(0).integers(-128, 128, size=(1, 256, 256, 1), dtype=np.int8)
# A RESULT for RUN 1: one timing and a 10-value int8 output (67 bytes framed, as the issue measured; 99 since
# protocol v2 added the model's SHA-256 to every RESULT).
CANNED_RESULT = p.Result((p.StageTiming(0.0, 17900.0, 860.0, 240.0),), (np.zeros(10, np.int8),), bytes(32))


def canned_handler(message: p.Message) -> list[p.Message]:
    """The cheapest device: RESULT for RUN, ACK for the rest (both paths pay it alike)."""
    return [CANNED_RESULT] if isinstance(message, p.Run) else [p.Ack(message.msg_type)]


def bare_round_trip(port: serial.SerialBase, wire: bytes) -> bytes:
    """Bare pyserial: write the frame, wait with select, read until the reply's delimiter."""
    port.write(wire)
    got = bytearray()
    while not got.endswith(b"\x00"):
        select.select([port.fileno()], [], [], 5.0)
        got += port.read(65536)
    return bytes(got)


def frames(message: p.Message, first_seq: int) -> Iterator[bytes]:
    """The message encoded with fresh sequence numbers, one per use (encoded before timing starts)."""
    wires = [p.encode_message(message, (first_seq + i) & 0xFFFF) for i in range(1000)]
    return itertools.cycle(wires)


def link_rows(rounds: int, inner: int, settle_s: float) -> list[tuple[Ratio, str]]:
    with serve_pty(canned_handler, name="bench") as endpoint, \
            DeviceClient(endpoint.port, name="bench", timeout_s=10) as client:
        port = client._serial  # the client's own port: same pty, same device side
        assert port is not None
        run_wires = frames(p.Run(1), client._seq + 20000)
        assert len(bare_round_trip(port, next(run_wires))) == len(p.encode_message(CANNED_RESULT, 0)) == 99
        run = interleaved("RUN 1 round trip vs bare pyserial, same pty (18 B out, 99 B back)",
                          lambda: client.run(1), lambda: bare_round_trip(port, next(run_wires)),
                          rounds=rounds, inner=inner, settle_s=settle_s)
        set_wires = frames(p.SetInput(0, TENSOR_64K), client._seq + 40000)
        wire = next(set_wires)
        assert (len(wire), len(bare_round_trip(port, wire))) == (65711, 15)
        set_input = interleaved("64 KB SET_INPUT vs bare pyserial, same pty (65,711 B out, 15 B back)",
                                lambda: client.set_input(0, TENSOR_64K),
                                lambda: bare_round_trip(port, next(set_wires)), rounds=rounds, inner=inner,
                                settle_s=settle_s)
    return [(run, "<= 1.5x"), (set_input, "<= 1.5x")]


def fetch_row(rounds: int, settle_s: float) -> tuple[Ratio, str]:
    timeline = ActivityTimeline(idle_power_w=0.01, supply_v=3.3)
    timeline.append(StageSpan("inference", 0.0, 8.0, 0.2, trigger_high=True))
    with AnalyzerTwin(timeline) as twin:
        driver = open_analyzer(twin.resource, resource_manager=pyvisa.ResourceManager("@py"), timeout_ms=60_000)
        assert isinstance(driver, KeysightN6705C)
        try:
            driver.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=10.24e-6, points=MAX_POINTS)
            driver.arm("BUS")
            driver.trigger_now()
            driver.wait_complete(timeout_s=30.0)
            resource = driver.link.resource
            commands = ["FETC:ARR:CURR? (@1)", "FETC:ARR:VOLT? (@1)"]

            def bare() -> list[np.ndarray]:
                return [resource.query_binary_values(c, datatype="f", is_big_endian=True, container=np.array)
                        for c in commands]

            blocks = bare()
            trace = driver.fetch_trace()
            np.testing.assert_array_equal(trace.current_a, blocks[0])  # the same block, decoded alike
            assert blocks[0].size + blocks[1].size == 2 * MAX_POINTS
            ratio = interleaved(f"trace fetch, {2 * MAX_POINTS:,} samples, vs bare query_binary_values",
                                driver.fetch_trace, bare, rounds=rounds, inner=2, warmup=1, settle_s=settle_s)
        finally:
            driver.close()
    return ratio, "<= 1.1x"


class DrainPty:
    """The far end of the bare loop's pty: reads and discards what the host writes."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            if select.select([self.master], [], [], 0.05)[0]:
                os.read(self.master, 1 << 20)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


def accuracy_row(model_name: str, rounds: int, images: int | None, inner: int | None,
                 own_process: bool = False, settle_s: float = 0.1) -> tuple[Ratio, str]:
    """`images` random images per call, or (None) the model's shipped evaluation set, as the suites run it;
    `inner` calls per timed block (None: as many as make about 100 images). `own_process`: the twin runs in
    a process of its own (`edgehil sim device`), apart from the host, as a board does; otherwise in this
    one, on threads, as `pytest suites/` runs it. `settle_s`: untimed calls before each block
    (`benchmarks.harness.interleaved`); 0 gives the row after a pause, which states no goal."""
    model = ModelCatalog(MODELS).get(model_name)
    spec = model.info.inputs[0]
    if images is None:
        batch = list(load_npz_dataset(DATA / EVAL_SET_BY_TASK[model.task], model.task).images)
        inner = inner or max(1, round(100 / len(batch)))
        what = f"its eval set ({len(batch)} images) x {inner}"
    else:
        rng = np.random.default_rng(0)
        batch = [rng.integers(0, 256, size=spec.shape[1:], dtype=np.uint8) for _ in range(images)]
        inner = inner or max(1, round(100 / images))
        what = f"{images} images x {inner} calls"
    tensors = [to_model_input(model, image) for image in batch]  # the very bytes the twin path sends
    with ExitStack() as stack:
        if own_process:
            port = stack.enter_context(_twin_process("imx500", seed=1))
            where = "twin in its own process"
        else:
            twin = DeviceTwin(load_profiles()["imx500"], "imx500", seed=1)
            port = twin.start()
            stack.callback(twin.close)
            where = "twin in this process"
        client = stack.enter_context(DeviceClient(port, name="imx500", timeout_s=10))
        client.load_model(model.data, model.name)
        dut = _Dut(client)
        drain = DrainPty()
        stack.callback(drain.close)
        bare_port = stack.enter_context(serial.serial_for_url(drain.port, timeout=10))
        runner = ModelRunner(model.data)
        wires = [p.encode_message(p.SetInput(0, t), 1) for t in tensors]

        def bare() -> None:
            for wire, tensor in zip(wires, tensors):
                bare_port.write(wire)
                runner.run_raw([tensor])

        when = "" if settle_s else ", after a pause (no settling)"
        ratio = interleaved(f"accuracy eval, {model_name}, {what}, {where}{when} vs bare write + LiteRT",
                            lambda: infer_many(cast("DeviceUnderTest", dut), model, batch), bare, rounds=rounds,
                            inner=inner, warmup=1, settle_s=settle_s)
    return ratio, "throughput >= 0.8x (time <= 1.25x)" if settle_s else "none (shows the cost of a pause)"


@contextmanager
def _twin_process(kind: str, seed: int) -> Iterator[str]:
    """A device twin served by `edgehil sim device` in a process of its own: its port, until the block ends."""
    process = subprocess.Popen([sys.executable, "-m", "pytest_edgehil.cli", "sim", "device", kind, "--seed",
                                str(seed)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port:
            raise RuntimeError(f"`edgehil sim device {kind}` printed no port (exit status {process.wait()})")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


class _Dut:
    """What `infer_many` needs of a DeviceUnderTest: its client and what the device said to HELLO."""

    def __init__(self, client: DeviceClient) -> None:
        self.client = client
        self.hello = client.hello()


def _accuracy_step(rows: list[tuple[Ratio, str]], name: str, rounds: int, calls: int, settle_s: float) -> None:
    rows.append(accuracy_row(name, rounds, images=20, inner=calls, settle_s=settle_s))
    rows.append(accuracy_row(name, rounds, images=20, inner=calls, own_process=True, settle_s=settle_s))
    # The evaluation the suites run: the shipped set in one call (200 TinyTracker images, 24 Q-Segment ones),
    # repeated so that a block holds about 100 images. The 20-image row keeps the per-call cost visible.
    rows.append(accuracy_row(name, rounds, images=None, inner=None, settle_s=settle_s))
    rows.append(accuracy_row(name, rounds, images=None, inner=None, own_process=True, settle_s=settle_s))
    if settle_s:  # the same 20-image calls timed cold, each block right after the other side's and a collection
        rows.append(accuracy_row(name, rounds, images=20, inner=calls, settle_s=0.0))


def table(rows: list[tuple[Ratio, str]]) -> str:
    lines = ["| path | ours / bare (median [min-max]) | ours | bare | goal |", "|---|---|---|---|---|"]
    for ratio, goal in rows:
        lines.append(f"| {ratio.name} | {ratio.text()} | {ratio.a_s * 1e3:.3g} ms | {ratio.b_s * 1e3:.3g} ms "
                     f"| {goal} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved A/B rounds per row")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run, wider spread)")
    parser.add_argument("--accuracy-calls", type=int, default=5,
                        help="20-image evaluations per timed block on each side (default 5)")
    parser.add_argument("--settle-s", type=float, default=0.1,
                        help="untimed calls of a side before each of its timed blocks, in seconds (default 0.1; "
                             "0 times every block right after the other side's, cold)")
    parser.add_argument("--only", choices=["link", "fetch", "accuracy"], action="append",
                        help="rows to run (default all)")
    args = parser.parse_args(argv)
    rounds = 4 if args.quick else args.rounds
    only = set(args.only or ["link", "fetch", "accuracy"])
    rows: list[tuple[Ratio, str]] = []
    steps: list[Callable[[], None]] = []
    if "link" in only:
        steps.append(lambda: rows.extend(link_rows(rounds, inner=5 if args.quick else 20, settle_s=args.settle_s)))
    if "fetch" in only:
        steps.append(lambda: rows.append(fetch_row(max(3, rounds // 2), settle_s=args.settle_s)))
    if "accuracy" in only:
        for name in ("tinytracker", "qsegment"):
            steps.append(functools.partial(_accuracy_step, rows, name, max(3, rounds // 2), args.accuracy_calls,
                                           args.settle_s))
    for step in steps:
        step()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
