"""Bring-up of a lab device that runs the unmodified MLPerf Tiny reference firmware (`protocol = "eembc"`).

The firmware's model is compiled in: the lab names it (`firmware_model`, a catalog model), its output
tensors tell the client how to read `m-results`, and its name is checked against the firmware's
`profile%` reply at start-up (`EembcClient.hello`). A real board is locked and opened like any other; a
simulated one gets the firmware twin (`sim.eembc_twin`, imported only then) with that model compiled in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.link import eembc
from pytest_edgehil.link.eembc_client import EembcClient
from pytest_edgehil.link.traffic_log import TrafficLog

if TYPE_CHECKING:
    from pytest_edgehil.bench import Bench, DeviceUnderTest
    from pytest_edgehil.config.lab import DeviceConfig
    from pytest_edgehil.link.client import DeviceClient


def bring_up_eembc(bench: Bench, config: DeviceConfig) -> tuple[DeviceUnderTest, Any]:
    """(the device, its firmware twin or None). ConfigError without a catalog or an unknown model;
    DeviceError / ProtocolError from the firmware (another model, garbled text, silence)."""
    from pytest_edgehil.bench import DeviceUnderTest, _close_quietly, device_lock, resolve_port

    if bench.catalog is None or config.firmware_model is None:
        raise ConfigError(f"device {config.name!r}: an eembc device needs the model catalog (a pytest run has it) "
                          "and `firmware_model` in its lab-file table")
    model = bench.catalog.get(config.firmware_model)
    energy_mode = config.eembc_mode == "energy"
    results_print = eembc.results_print(model.name, config.eembc_results_print)
    twin, lock, client = None, None, None
    try:
        if config.simulated:
            from pytest_edgehil.sim import has_twin
            from pytest_edgehil.sim.bench_physics import BenchPhysics
            from pytest_edgehil.sim.eembc_twin import REFERENCE_HOLD_S, EembcTwin
            from pytest_edgehil.sim.profile import twin_profile

            # The kind's profile puts its activity on a timeline, so a monitor twin can measure it.
            hold_s = config.timestamp_hold_us * 1e-6 if config.timestamp_hold_us is not None else REFERENCE_HOLD_S
            twin = EembcTwin(model.data, model.name, device_name=config.name, energy_mode=energy_mode,
                             profile=twin_profile(config.kind) if has_twin(config.kind) else None,
                             physics=BenchPhysics.from_table(bench.lab.physics), timestamp_hold_s=hold_s,
                             seed=bench.seed,
                             th_results="keyword_spotting" if results_print == eembc.TRUNCATED else "image_classification",
                             io_manager=config.eembc_io_manager)
            port = twin.port
        else:
            port = resolve_port(config)
            lock = device_lock(config, port, owner=bench.owner)
            lock.acquire(bench.lock_timeout_s, bench.on_lock_wait)
        traffic = TrafficLog()
        client = EembcClient(port, model_name=model.name, outputs=model.info.outputs, kind=config.kind,
                             baudrate=config.baud, timeout_s=bench.timeout_s, name=config.name, traffic_log=traffic,
                             energy_mode=energy_mode, results_print=results_print,
                             io_manager=config.eembc_io_manager)
        client.open()
        hello = client.hello()  # checks the compiled-in model against the lab
        # Duck-typed: EembcClient offers the DeviceClient methods the bench, meter and suites call.
        dut = DeviceUnderTest(config, port, cast("DeviceClient", client), hello, traffic, None, lock=lock)
        return dut, twin
    except BaseException:
        _close_quietly(cast("DeviceClient | None", client), None, lock)
        if twin is not None:
            twin.close()
        raise
