"""Device profiles: the data a device twin applies to a model's counted work to produce timing and power.

Inference time model (`DeviceProfile.inference_s`), from the two work figures of `ModelInfo`:

    inference_s = inference_overhead_s
                  + (macs / int8_macs_per_s + elementwise_ops / elementwise_ops_per_s) * slowdown

`slowdown` is `float_slowdown` when the model's conv/matmul ops compute in float, else 1. MACs run on the
board's MAC array (or SIMD MAC loop); elementwise ops (activations, adds, pooling, resizes, quantize,
copies) are bound by how fast the board can read and write elements, so they have their own rate: for a
memory-bound board, about memory bandwidth / bytes moved per element. A profile without
`elementwise_ops_per_s` prices an elementwise op like one MAC (`int8_macs_per_s`), which is how the twins
timed them when they were folded into the MAC count; the calibrated boards (imx500, coral) keep that,
since no published figure separates the two.

Sensor readout follows the frame the model consumes (`DeviceProfile.readout`): a camera-side board reads
its sensor in the mode set for the network's input tensor, and the mode sets both the readout time and
its power. `[device.KIND.frame_readout."HxWxC"]` gives `readout_s` and `readout_w` for one input frame
(NHWC input, batch 1); other frames take `readout_s` and `power.readout_w`. It is a table, not a formula,
because the published IMX500 figures are not monotonic in frame size: TinyTracker's 96×96×1 frame reads
out in 17.9 ms, Q-Segment's larger 128×128×3 one in ≈ 16.4 ms (17 ms end to end less 0.23 ms inference
and its retrieval), so neither pixels nor bytes predict it.

A profile is data, not code (`profiles.toml` beside this module), so a lab can calibrate a twin to its own
board without touching Python. The file holds only the twin's calibration; the hardware facts (display
name, RAM, flash, supply voltage) are the kind's (`pytest_edgehil.config.kinds`) and are copied in here. The numbers for the boards with published figures are fitted by
`scripts/calibrate_profiles.py` from the shipped reference models' MAC counts; the others are estimates
from the boards' datasheets and are marked as such in the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_edgehil.config.kinds import DeviceKind, get_device_kind
from pytest_edgehil.config.tomlfile import read_toml
from pytest_edgehil.errors import ConfigError

if TYPE_CHECKING:
    from pytest_edgehil.sim.profile_schema import ProfileTable

PROFILES_FILE = Path(__file__).with_name("profiles.toml")


@dataclass(frozen=True)
class StagePower:
    """Mean supply power of each activity stage, in watts."""

    idle_w: float
    readout_w: float
    inference_w: float
    retrieval_w: float


@dataclass(frozen=True)
class FrameReadout:
    """Sensor readout of one input frame (one sensor mode): seconds and mean supply power in watts."""

    readout_s: float
    readout_w: float


def frame_key(shape: Sequence[int]) -> str | None:
    """`"96x96x1"` for an NHWC input of batch 1 (what `frame_readout` is keyed by); None for any other."""
    if len(shape) != 4 or shape[0] != 1:
        return None
    return "x".join(str(int(d)) for d in shape[1:])


@dataclass(frozen=True)
class DeviceProfile:
    """What a board can do: memory, int8 throughput, fixed stage times, power and jitter."""

    kind: str
    display_name: str
    firmware: str
    ram_bytes: int  # activation memory (tensor arena) available to a model
    flash_bytes: int  # model storage
    int8_macs_per_s: float
    inference_overhead_s: float  # per-inference fixed cost (invoke, DMA set-up)
    float_slowdown: float  # a float32 model runs this many times slower than int8
    readout_s: float  # sensor readout of one frame
    retrieval_fixed_s: float  # result retrieval: fixed part ...
    retrieval_bytes_per_s: float  # ... plus output bytes over the link
    jitter_rel: float  # relative standard deviation of each stage time
    supply_v: float
    power: StagePower
    source: str  # where the numbers come from
    elementwise_ops_per_s: float | None = None  # elements/s of non-MAC work; None: priced like one MAC
    # Readout per input frame ("HxWxC"): the sensor mode a model's input sets (module docstring).
    frame_readout: Mapping[str, FrameReadout] = field(default_factory=dict, hash=False)

    def readout(self, input_shape: Sequence[int] | None) -> FrameReadout:
        """Readout time (s) and power (W) for a model whose first input has `input_shape`: its frame's
        entry in `frame_readout`, else the profile's `readout_s` and `power.readout_w`."""
        key = frame_key(input_shape) if input_shape is not None else None
        found = self.frame_readout.get(key) if key is not None else None
        return found if found is not None else FrameReadout(self.readout_s, self.power.readout_w)

    @property
    def elementwise_rate(self) -> float:
        """Elementwise ops per second this twin applies (`elementwise_ops_per_s`, else `int8_macs_per_s`)."""
        return self.elementwise_ops_per_s if self.elementwise_ops_per_s is not None else self.int8_macs_per_s

    def inference_s(self, macs: int, elementwise_ops: int = 0, *, float_model: bool = False) -> float:
        """Nominal (jitter-free) inference time in seconds of a model with `macs` multiply-accumulates and
        `elementwise_ops` elements touched by its other ops (`ModelInfo.macs`, `.elementwise_ops`).

        `float_model`: the model's convolutions/matmuls compute in float (`ModelInfo.compute_dtype`), not
        merely its input/output dtype — an int8 graph behind float32 I/O runs at the int8 rate.
        """
        compute_s = macs / self.int8_macs_per_s + elementwise_ops / self.elementwise_rate
        if float_model:
            compute_s *= self.float_slowdown
        return self.inference_overhead_s + compute_s

    def retrieval_s(self, output_bytes: int) -> float:
        return self.retrieval_fixed_s + output_bytes / self.retrieval_bytes_per_s


# Fields a profile takes from its kind rather than from profiles.toml.
KIND_FACTS = ("display_name", "ram_bytes", "flash_bytes", "supply_v")


def profile_from_dict(kind: str, raw: dict[str, Any], source: str = "device profile") -> DeviceProfile:
    """Build a profile from one TOML table and the kind's hardware facts; a missing, unknown, wrong-typed or
    out-of-range key (or a kind without a supply voltage) is a ConfigError naming it."""
    from pytest_edgehil.config.schema import validate  # pydantic: loaded on use only
    from pytest_edgehil.sim.profile_schema import ProfileTable

    table = validate(ProfileTable, raw, what=source, source=f"[device.{kind}]",
                     fix=f"compare it with {PROFILES_FILE.name} (keys: docs/config-files.md)")
    return _profile(kind, table)


def _profile(kind: str, table: ProfileTable) -> DeviceProfile:
    facts = get_device_kind(kind)
    if facts.supply_v is None:
        raise ConfigError(f"device profile {kind!r}: kind {kind!r} has no supply_v, which a twin needs; "
                          "add it to the kind's table")
    values = table.model_dump()
    power = StagePower(**values.pop("power"))
    frames = {key: FrameReadout(**entry) for key, entry in values.pop("frame_readout").items()}
    return DeviceProfile(kind=kind, power=power, frame_readout=frames, **values, **kind_facts(facts))


def kind_facts(kind: DeviceKind) -> dict[str, Any]:
    """The hardware facts a twin of `kind` reports (HELLO) and runs on."""
    return {"display_name": kind.display_name, "ram_bytes": kind.ram_bytes, "flash_bytes": kind.flash_bytes,
            "supply_v": kind.supply_v}


@lru_cache(maxsize=8)
def load_profiles(path: Path = PROFILES_FILE) -> dict[str, DeviceProfile]:
    """Every `[device.KIND]` of a profiles file. Raises ConfigError naming the file, entry and key."""
    from pytest_edgehil.config.schema import named_tables, validate  # pydantic: loaded on use only
    from pytest_edgehil.sim.profile_schema import ProfilesFile

    data = read_toml(path, "device profiles", "reinstall pytest-edgehil")
    profiles = validate(ProfilesFile, data, what="device profiles", source=str(path),
                        fix="fix the file (keys: docs/config-files.md) or rerun scripts/calibrate_profiles.py",
                        entry=named_tables("device", lambda name, _: f"[device.{name}]"))
    return {kind: _profile(kind, table) for kind, table in profiles.device.items()}


# Twins registered at run time (a lab's own board, or a test's altered calibration), by kind name.
_REGISTERED: dict[str, DeviceProfile] = {}


def register_twin_profile(profile: DeviceProfile, *, replace: bool = False) -> DeviceProfile:
    """Make `profile` the twin of its kind (the kind must be registered); a second one needs `replace`."""
    get_device_kind(profile.kind)
    if profile.kind in twin_profiles() and not replace:
        raise ConfigError(f"kind {profile.kind!r} already has a twin profile; pass replace=True to change it")
    _REGISTERED[profile.kind] = profile
    return profile


def register_profiles_file(path: Path, where: str) -> dict[str, DeviceProfile]:
    """Make every `[device.KIND]` of a lab's own profiles file (`[lab] profiles`) the twin of its kind,
    replacing a shipped calibration of that kind (a lab calibrates its own board). ConfigError naming
    `where` when the file is missing, malformed or names an unregistered kind."""
    if not Path(path).is_file():
        raise ConfigError(f"{where}: no file {path}; the path is relative to the lab file")
    try:
        profiles = load_profiles(Path(path))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for profile in profiles.values():
        register_twin_profile(profile, replace=True)
    return profiles


def unregister_twin_profile(kind: str) -> None:
    """Drop a run-time profile: the kind's twin is the one from profiles.toml again (if any)."""
    _REGISTERED.pop(kind, None)


def twin_profiles() -> dict[str, DeviceProfile]:
    """Every kind that has a twin, with its profile: profiles.toml, then run-time registrations."""
    return {**load_profiles(), **_REGISTERED}


def twin_profile(kind: str) -> DeviceProfile:
    try:
        return twin_profiles()[kind]
    except KeyError:
        raise ConfigError(f"device kind {kind!r} has no twin; known twins: {', '.join(sorted(twin_profiles()))}. "
                          "Register one with pytest_edgehil.sim.profile.register_twin_profile") from None
