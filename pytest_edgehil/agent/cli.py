"""`edgehil agent [--host 127.0.0.1] [--port 4000] [--token-file PATH] [--init-token] …`: start the agent."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

DEFAULT_TOKEN_FILE = "~/.config/edgehil/agent.token"


def add_agent_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "agent", help="serve this Linux board to a pytest-edgehil host over TCP (LiteRT on the CPU)",
        description="Serve the device protocol on HOST:PORT to hosts that prove the shared token. Binds "
                    "127.0.0.1 unless --host says otherwise. See docs/hardware.md.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=4000, help="TCP port (default 4000)")
    parser.add_argument("--token-file", default=DEFAULT_TOKEN_FILE,
                        help=f"the shared token, mode 0600 (default {DEFAULT_TOKEN_FILE})")
    parser.add_argument("--init-token", action="store_true",
                        help="write a new random token to --token-file first if it does not exist")
    parser.add_argument("--kind", default="linux-cpu", help="device kind reported in HELLO (default linux-cpu)")
    parser.add_argument("--name", default=None, help="device name reported in HELLO (default: the host name)")
    parser.add_argument("--backend", default="litert-cpu", help="litert-cpu (default) or imx500")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads (default 1)")
    parser.add_argument("--store-mb", type=int, default=256, help="memory kept for uploaded models (default 256)")
    parser.add_argument("--trigger-chip", default=None, help="GPIO chip of the trigger output, e.g. /dev/gpiochip0 "
                        "(needs the agent extra: gpiod)")
    parser.add_argument("--trigger-line", type=int, default=None, help="line offset on --trigger-chip")
    parser.add_argument("--max-power-w", type=float, default=500.0,
                        help="the board's power ceiling for telling RAPL counter wraps apart (default 500 W)")
    parser.add_argument("--list-power", action="store_true",
                        help="list the on-board power readers and the energy sources served over ENERGY_READ, and exit")
    parser.set_defaults(handler=run_agent)


def run_agent(args: argparse.Namespace) -> int:
    from pytest_edgehil.agent.backends import check_backend
    from pytest_edgehil.agent.litert_device import LiteRTDevice
    from pytest_edgehil.agent.onboard_energy import OnboardEnergy, find_sources
    from pytest_edgehil.agent.power import find_monitors, power_capabilities
    from pytest_edgehil.agent.server import AgentServer
    from pytest_edgehil.errors import ConfigError
    from pytest_edgehil.link.auth import read_token, write_new_token

    readers = find_monitors()
    energy = OnboardEnergy(find_sources(max_power_w=args.max_power_w))
    if args.list_power:
        for reader in readers:
            print(f"{reader.kind:10} {reader.name:30} {reader.path}")
        for source in energy.sources:
            print(f"{'energy':10} {source.counter_id:30} served over ENERGY_READ")
        if not readers:
            print("no on-board power reader present (hwmon INA3221/INA2xx, powercap RAPL, NVML)")
        return 0
    check_backend(args.backend)
    token_file = Path(args.token_file).expanduser()
    if args.init_token and not token_file.exists():
        print(f"edgehil agent: wrote a new token to {write_new_token(token_file)}; copy it to the host's lab")
    token = read_token(token_file, what="edgehil agent")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    trigger = None
    if (args.trigger_chip is None) != (args.trigger_line is None):
        raise ConfigError("edgehil agent: give --trigger-chip and --trigger-line together (or neither)")
    if args.trigger_chip is not None:
        from pytest_edgehil.agent.trigger_gpio import GpiodTrigger

        trigger = GpiodTrigger(args.trigger_chip, args.trigger_line)
    device = LiteRTDevice(kind=args.kind, name=args.name, threads=args.threads, store_bytes=args.store_mb << 20,
                          extra_capabilities=power_capabilities(readers), trigger=trigger, energy=energy)
    server = AgentServer(device, token, host=args.host, port=args.port)
    print(f"edgehil agent: serving kind {args.kind!r} on {server.url} (token {token_file}); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
