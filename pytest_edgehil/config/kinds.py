"""Registry of device kinds.

A lab adds its own board without forking: it registers a `DeviceKind` from its own package through the
`pytest_edgehil.config.kinds` entry-point group (the entry point names a `DeviceKind`, or a callable returning
one or a list of them), or calls `register_device_kind` from a conftest. The built-in kinds come from
the twin profiles, so every built-in kind can be simulated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.sim.profile import DeviceProfile, load_profiles

ENTRY_POINT_GROUP = "pytest_edgehil.config.kinds"


@dataclass(frozen=True)
class DeviceKind:
    """A kind of board: how to talk to it and, when it can be simulated, the profile of its twin."""

    name: str
    description: str
    default_baud: int = 115200
    profile: DeviceProfile | None = None  # None: hardware only, no twin

    @property
    def simulatable(self) -> bool:
        return self.profile is not None


_REGISTRY: dict[str, DeviceKind] = {}
_loaded = False


def register_device_kind(kind: DeviceKind, *, replace: bool = False) -> DeviceKind:
    """Add a kind; a second kind with the same name is an error unless `replace` is asked for."""
    if kind.name in _REGISTRY and not replace:
        raise ConfigError(
            f"device kind {kind.name!r} is already registered ({_REGISTRY[kind.name].description}); "
            "pick another name or pass replace=True"
        )
    _REGISTRY[kind.name] = kind
    return kind


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
    for profile in load_profiles().values():
        register_device_kind(DeviceKind(profile.kind, profile.display_name, profile=profile), replace=True)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        loader: Callable[[], Any] = ep.load
        for kind in _as_kinds(loader()):
            register_device_kind(kind, replace=True)


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
