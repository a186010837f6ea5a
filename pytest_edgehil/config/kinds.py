"""Registry of device kinds: the hardware facts of each kind of board.

A kind is what a real board and its twin share: display name, RAM, flash, default baud rate and nominal
supply voltage. The built-in kinds are data (`kinds.toml` beside this module). A lab adds its own board
without forking: it registers a `DeviceKind` from its own package through the `pytest_edgehil.config.kinds`
entry-point group (the entry point names a `DeviceKind`, or a callable returning one or a list of them),
or calls `register_device_kind` from a conftest.

Whether a kind can be simulated is the simulation's business, not the kind's: a twin profile
(`pytest_edgehil.sim`) calibrates a kind; this module never imports the simulation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_edgehil.config.tomlfile import read_toml
from pytest_edgehil.errors import ConfigError

if TYPE_CHECKING:
    from pytest_edgehil.model.info import ModelInfo

ENTRY_POINT_GROUP = "pytest_edgehil.devices"  # a public name: labs register their boards here
KINDS_FILE = Path(__file__).with_name("kinds.toml")


@dataclass(frozen=True)
class DeviceKind:
    """A kind of board. Sizes in bytes; `supply_v` in volts (None: the lab file must give it)."""

    name: str
    display_name: str
    ram_bytes: int = 0  # activation memory (tensor arena) available to a model; 0: unknown
    flash_bytes: int = 0  # model storage; 0: unknown
    default_baud: int = 115200
    supply_v: float | None = None
    # False: the board runs quantized models only (an NPU with no float path, as the IMX500's DSP): a model
    # whose conv/matmul ops compute in float has no deployment there, so no figure of it can exist.
    float_compute: bool = True

    @property
    def description(self) -> str:
        return self.display_name

    def refuses(self, info: ModelInfo) -> str | None:
        """Why a board of this kind cannot run the model `info` describes, or None when it can: a kind that
        runs quantized models only (`float_compute = false`) and a model whose arithmetic is float
        (`ModelInfo.float_compute`). The one rule the plugin (before any upload) and the twins (at LOAD,
        as the board's own loader) apply."""
        if self.float_compute or not info.float_compute:
            return None
        import numpy as np  # loaded with the model analysis already; kinds stay light for the plugin's import

        what = (f"its conv/matmul ops compute in {info.compute_dtype}" if info.compute_dtype != "none"
                else f"it has no conv/matmul ops and its input is {np.dtype(info.inputs[0].dtype)}")
        return (f"{what}, and a {self.display_name} (kind {self.name!r}: float_compute = false) runs quantized "
                "models only")


_REGISTRY: dict[str, DeviceKind] = {}
_loaded = False


def register_device_kind(kind: DeviceKind, *, replace: bool = False) -> DeviceKind:
    """Add a kind; a second kind with the same name is an error unless `replace` is asked for."""
    _load_builtin_and_plugins()
    return _register(kind, replace=replace)


def _register(kind: DeviceKind, *, replace: bool) -> DeviceKind:
    if kind.name in _REGISTRY and not replace:
        raise ConfigError(
            f"device kind {kind.name!r} is already registered ({_REGISTRY[kind.name].display_name}); "
            "pick another name or pass replace=True"
        )
    _REGISTRY[kind.name] = kind
    return kind


def load_kinds_file(path: Path = KINDS_FILE) -> list[DeviceKind]:
    """The kinds of one TOML file (`[kind.NAME]` tables); a missing, unknown or wrong-typed key is a
    ConfigError naming the `[kind.NAME]` entry and the key."""
    from pytest_edgehil.config.schema import named_tables, validate  # pydantic: loaded on use only
    from pytest_edgehil.config.schemas import KindsFile

    data = read_toml(path, "device kinds", "check the path (a lab's `[lab] kinds`) or reinstall pytest-edgehil")
    kinds_file = validate(KindsFile, data, what="device kinds", source=str(path),
                          fix="fix the file (keys: docs/config-files.md) or reinstall pytest-edgehil",
                          entry=named_tables("kind", lambda name, _: f"[kind.{name}]"))
    return [DeviceKind(name=name, **table.model_dump()) for name, table in kinds_file.kind.items()]


def register_lab_kinds(path: Path, where: str) -> list[DeviceKind]:
    """Register the kinds of a lab's own kinds file (`[lab] kinds`). A name already registered with the
    same facts is left as it is (the lab is read again in the same process); with other facts it is a
    ConfigError naming `where`: a lab cannot silently change a shipped board's RAM or supply voltage."""
    if not Path(path).is_file():
        raise ConfigError(f"{where}: no file {path}; the path is relative to the lab file")
    kinds = load_kinds_file(path)
    known = device_kinds()
    for kind in kinds:
        old = known.get(kind.name)
        if old is not None and old != kind:
            raise ConfigError(f"{where}: kind {kind.name!r} in {path} differs from the registered one "
                              f"({old.display_name}); give your board its own kind name")
        if old is None:
            _register(kind, replace=False)
    return kinds


def _as_kinds(obj: Any) -> Iterable[DeviceKind]:
    if callable(obj) and not isinstance(obj, DeviceKind):
        obj = obj()
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    for item in items:
        if not isinstance(item, DeviceKind):
            raise ConfigError(f"entry point in {ENTRY_POINT_GROUP!r} gave {item!r}, expected a DeviceKind")
        yield item


def _load_builtin_and_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for kind in load_kinds_file():
        _register(kind, replace=True)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        loader: Callable[[], Any] = ep.load
        for kind in _as_kinds(loader()):
            _register(kind, replace=True)


def device_kinds() -> dict[str, DeviceKind]:
    _load_builtin_and_plugins()
    return dict(_REGISTRY)


def get_device_kind(name: str) -> DeviceKind:
    kinds = device_kinds()
    try:
        return kinds[name]
    except KeyError:
        raise ConfigError(
            f"unknown device kind {name!r}; known kinds: {', '.join(sorted(kinds))}. "
            f"Register a new kind through the {ENTRY_POINT_GROUP!r} entry-point group."
        ) from None
