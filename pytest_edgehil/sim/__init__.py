"""Everything simulated: device twins, their profiles, the pty link, the SCPI analyzer twin, the activity
timeline, synthetic data.

The hardware path never imports this package at module level; the bench (and the lab loader, for a device
marked simulated) asks for a twin through the functions below, imported inside the function that needs
one. Importing this package itself loads nothing heavy: each function imports its module when called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serial.tools.list_ports_common import ListPortInfo

    from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
    from pytest_edgehil.sim.device_faults import DeviceFault, DeviceFaultPlan
    from pytest_edgehil.sim.device_twin import DeviceTwin
    from pytest_edgehil.sim.eembc_twin import EembcTwin
    from pytest_edgehil.sim.monitor_pty import SerialTwin

__all__ = ["has_twin", "sim_comports", "start_analyzer_twin", "start_device_twin", "start_monitor_twin",
           "twin_kinds"]


def twin_kinds() -> list[str]:
    """Names of the device kinds that have a twin (profiles.toml plus run-time registrations)."""
    from pytest_edgehil.sim.profile import twin_profiles

    return list(twin_profiles())


def has_twin(kind: str) -> bool:
    return kind in twin_kinds()


def start_device_twin(kind: str, name: str, *, seed: int = 0,
                      faults: DeviceFaultPlan | Iterable[DeviceFault] | Mapping[str, Any] | None = None,
                      realtime: float = 0.0,
                      physics: Mapping[str, object] | None = None, as_board: bool = False) -> tuple[DeviceTwin, str]:
    """Start the twin of a `kind` board called `name` on a pty: (twin, port path for pyserial).

    `faults`: a `DeviceFaultPlan`, a list of `DeviceFault`s or a lab-file style table (`rate`, `seed`,
    `kinds`, `faults`, ...; see `sim/device_faults.py`); None serves a clean line (faults can still be
    armed later on `twin.faults`). `realtime` > 0 makes a RUN take its simulated time × `realtime` of
    wall-clock time (1.0: as long as the board would), for measuring what parallel runs gain; 0 (the
    default) answers at once. `physics`: the lab file's `[physics]` table (bench effects,
    `sim.bench_physics`; None: the defaults, every effect on). `as_board`: HELLO carries no mark of
    simulated firmware, so `--backend hw` accepts the twin as a board (tests of the hardware path, a
    farm's stand-in board). Raises ConfigError when the kind has no
    twin or the faults are invalid. The caller owns the twin and must `close()` it.
    """
    from pytest_edgehil.sim.bench_physics import BenchPhysics
    from pytest_edgehil.sim.device_faults import as_plan
    from pytest_edgehil.sim.device_twin import DeviceTwin
    from pytest_edgehil.sim.profile import twin_profile

    twin = DeviceTwin(twin_profile(kind), name, seed=seed, faults=as_plan(faults), realtime=realtime,
                      physics=BenchPhysics.from_table(physics), as_board=as_board)
    return twin, twin.start()


def sim_comports() -> list[ListPortInfo]:
    """The device twins' ports present now, shaped like `serial.tools.list_ports.comports()` (USB serial
    number, VID:PID 1209:0001): what the bench's port resolver consults for a simulated device."""
    from pytest_edgehil.sim.usb_ports import comports

    return comports()


# Real seconds a bench's analyzer twin takes from INITiate to ready-for-trigger: "a few milliseconds" on an
# N6705C (its programming guide: a trigger before the WTG-meas bit is set is ignored), so a driver that
# starts the device before the bit is up misses the first inference on the simulated bench too.
ARM_LATENCY_S = 0.005
# A board's peak stage current times this is what its range must hold: the session's power drift (±6 % at most,
# `bench_physics.session_factor`) and a peak of the layer structure.
PEAK_HEADROOM = 1.1
LIMIT_HEADROOM = 1.25  # ... and an output's current limit, where the setting is one (the 2281S), this above that


def start_analyzer_twin(device_twin: DeviceTwin, *, seed: int = 0,
                        dialect: str = "keysight-n6705c") -> tuple[AnalyzerTwin, str, float, float]:
    """Start the SCPI analyzer twin on `device_twin`'s supply, served over TCP for pyvisa-py.

    Returns (twin, VISA resource, supply voltage V, current range A): the range a lab writes for the board,
    the smallest of the instrument's data-sheet ranges (`instrument_specs`) that holds its peak stage current
    with 10 % headroom (the session's drift, ±6 % at most, and the layer structure's peaks), or, where the
    setting is the output's current limit (an autoranging 2281S), 1.25 × that. The smallest range,
    as a lab would choose: a larger range's offset is the larger (an N6781A's 3 A range reads ±250 µA, its
    100 mA range ±10 µA), and the former 1.25 × 1.1 × peak (0.111 A for the IMX500's 81 mA) put the IMX500
    on the 3 A range. It shares the device twin's bench physics and speaks `dialect` (one of
    `analyzer_twin.DIALECTS`). The caller owns the twin.
    """
    from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
    from pytest_edgehil.sim.instrument_specs import TWIN_SPECS

    profile = device_twin.profile
    twin = AnalyzerTwin(device_twin.timeline, seed=seed, dialect=dialect, physics=device_twin.physics,
                        arm_latency_s=ARM_LATENCY_S)
    resource = twin.start()
    frame_w = [f.readout_w for f in profile.frame_readout.values()]
    peak_w = max(profile.power.readout_w, profile.power.inference_w, profile.power.retrieval_w, *frame_w)
    needed_a = PEAK_HEADROOM * peak_w / profile.supply_v
    spec = TWIN_SPECS[twin.dialect.driver.__name__]
    # An autoranging instrument's setting is its output's current limit (the 2281S): a limit must not trip.
    range_a = LIMIT_HEADROOM * needed_a if spec.autoranging else spec.range_holding(needed_a)
    return twin, resource, profile.supply_v, range_a


def start_monitor_twin(device_twin: DeviceTwin | EembcTwin, kind: str, *, seed: int = 0) -> tuple[SerialTwin, str, float, float]:
    """Start the twin of USB power monitor `kind` ("ppk2", "lpm01a") on `device_twin`'s supply, on a pty.

    Returns (twin, port for the driver, supply voltage V, current range A: 1.25 × the profile's peak stage
    power over the supply voltage, as for the analyzer twin). It shares the device twin's bench physics.
    ConfigError for an unknown kind. The caller owns the twin.
    """
    from pytest_edgehil.errors import ConfigError

    profile = device_twin.profile
    if profile is None or device_twin.timeline is None:
        raise ConfigError(f"the {kind} twin measures a device twin's timeline; this firmware twin has no device "
                          "profile (its kind has no twin profile in profiles.toml)")
    twin: SerialTwin
    if kind == "ppk2":
        from pytest_edgehil.sim.ppk2_twin import PPK2Twin

        twin = PPK2Twin(device_twin.timeline, physics=device_twin.physics, seed=seed)
    elif kind == "lpm01a":
        from pytest_edgehil.sim.lpm01a_twin import LPM01ATwin

        twin = LPM01ATwin(device_twin.timeline, physics=device_twin.physics, seed=seed)
    else:
        raise ConfigError(f"no twin of the power monitor {kind!r}; twins exist of: ppk2, lpm01a")
    port = twin.start()
    peak_w = max(profile.power.readout_w, profile.power.inference_w, profile.power.retrieval_w) * 1.1
    return twin, port, profile.supply_v, 1.25 * peak_w / profile.supply_v
