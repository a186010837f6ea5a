"""`edgehil sim …`: a simulated instrument or board on its own, outside pytest, to develop scripts against.

`edgehil sim analyzer` serves an analyzer twin over SCPI on loopback (pyvisa-py `TCPIP::…::SOCKET`);
`edgehil sim device KIND` serves a device twin on a pseudo-terminal. Each prints where to reach it on
stdout (one line) and runs until Ctrl-C or SIGTERM. A device twin served this way runs in its own process,
apart from the host that drives it, as a board does (the benchmarks measure the host against it so).
The simulation is imported only when a command runs: the hardware path never loads it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

EXIT_OK = 0


def _run_sim_analyzer(args: argparse.Namespace) -> int:
    # Imported here: the simulation stays off the hardware path (and out of the other commands).
    from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
    from pytest_edgehil.sim.live_bench import LiveTimeline, PeriodicLoad
    from pytest_edgehil.sim.timeline import ActivityTimeline

    load = PeriodicLoad.parse(args.load) if args.load else None
    timeline = ActivityTimeline(idle_power_w=args.idle_power, supply_v=args.supply)
    _take_stop_signals()
    live = LiveTimeline(timeline, load).start()
    # The timeline follows the wall clock: a capture waits (up to a minute) for its window to pass.
    twin = AnalyzerTwin(timeline, dialect=args.dialect, seed=args.seed, grace_s=60.0)
    try:
        print(twin.start(), flush=True)
        print(f"analyzer twin ({args.dialect}) serving on loopback; idle {args.idle_power:g} W"
              + (f", load {load.active_power_w:g} W for {load.active_s:g} s every {load.period_s:g} s "
                 "(trigger line high meanwhile)" if load else "") + "; Ctrl-C stops it", file=sys.stderr, flush=True)
        _serve_until_stopped()
    except KeyboardInterrupt:
        pass  # stopped before it got to wait: as asked
    finally:
        twin.close()
        live.stop()
    return EXIT_OK


def add_sim_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sim", help="run a simulated instrument or board on its own, to develop scripts against",
        description="Start a simulated bench instrument or board outside pytest. It prints where to reach it "
                    "(a VISA resource, a serial port) on stdout and runs until Ctrl-C.")
    kinds = parser.add_subparsers(dest="sim_kind", metavar="KIND", required=True)
    analyzer = kinds.add_parser(
        "analyzer", help="an analyzer twin: SCPI over TCP, `TCPIP::127.0.0.1::PORT::SOCKET`",
        description="Serve an analyzer twin speaking one instrument's SCPI dialect on 127.0.0.1. The supply "
                    "draws --idle-power while nothing runs; --load adds a synthetic periodic load whose "
                    "active stretches raise the trigger line (for EXT triggers).")
    analyzer.add_argument("--dialect", default="keysight-n6705c",
                          choices=("keysight-n6705c", "rs-ngm202", "keithley-2281s"),
                          help="the instrument to speak (default keysight-n6705c)")
    analyzer.add_argument("--idle-power", type=float, default=0.05, metavar="W",
                          help="what the idle board draws, in watts (default 0.05)")
    analyzer.add_argument("--supply", type=float, default=3.3, metavar="V", help="nominal supply (default 3.3)")
    analyzer.add_argument("--load", metavar="PERIOD_S,ACTIVE_S,POWER_W",
                          help="a synthetic periodic load, e.g. 0.02,0.005,0.5")
    analyzer.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    analyzer.set_defaults(handler=_run_sim_analyzer)
    device = kinds.add_parser(
        "device", help="a device twin on a pseudo-terminal, in this process (a board's stand-in)",
        description="Serve a device twin (its firmware protocol, real LiteRT inference, the kind's timing and "
                    "power model) on a new pseudo-terminal and print the port for pyserial. It runs in this "
                    "process, apart from any host, as a board does: point DeviceClient, a script or a lab "
                    "file's `port` at it.")
    device.add_argument("kind", help="the device kind (a twin profile: imx500, coral, spresense, cortex-m4, ...)")
    device.add_argument("--name", default=None,
                        help="the board's name in HELLO, from which its USB serial number derives (default: "
                             "KIND-PID, so two twins of one kind differ; a name keeps the serial number across "
                             "starts, as a board's does)")
    device.add_argument("--seed", type=int, default=0, help="jitter and noise seed (default 0)")
    device.add_argument("--as-board", action="store_true",
                        help="answer HELLO as a board does (no mark of simulated firmware), so `--backend hw` "
                             "accepts it")
    device.set_defaults(handler=_run_sim_device)


def _run_sim_device(args: argparse.Namespace) -> int:
    from pytest_edgehil.sim import start_device_twin  # the simulation stays off the other commands

    name = args.name or f"{args.kind}-{os.getpid()}"
    _take_stop_signals()
    twin = None
    try:
        twin, port = start_device_twin(args.kind, name, seed=args.seed, as_board=args.as_board)
        print(port, flush=True)
        print(f"device twin {twin.name!r} ({args.kind}, firmware {twin.profile.firmware!r}) serving on {port}; "
              "Ctrl-C stops it", file=sys.stderr, flush=True)
        _serve_until_stopped()
    except KeyboardInterrupt:
        pass  # stopped before it got to wait: as asked
    finally:
        if twin is not None:
            twin.close()
    return EXIT_OK


def _take_stop_signals() -> None:
    """SIGINT and SIGTERM stop the twin cleanly (KeyboardInterrupt), from before its address is printed: a
    script that reads the address and signals at once used to kill it with the default SIGTERM action
    (exit status -15, nothing closed). A shell starting us in the background ignores SIGINT for us: take
    it back too."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _serve_until_stopped() -> None:
    """Sleep until SIGINT or SIGTERM (`_take_stop_signals`)."""
    try:
        while True:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
