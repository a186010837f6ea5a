"""pytest-xdist: each device's tests on one worker (`--dist loadgroup`).

A board can serve one process at a time (its lock, `pytest_edgehil.locks`), so the worker that brings a
device up must run all of that device's tests. The plugin does two things:

- each pair item gets `pytest.mark.xdist_group(device)` (see the collection hook in `plugin/__init__`),
  the marker xdist's own `loadgroup` reads;
- on the controller, `DeviceGroupScheduling` replaces xdist's loadgroup scheduler and groups a pair item by
  the device of its pair, found from the item's parameter id. It does not rely on xdist's worker renaming
  items `nodeid@group`, which has no effect under pytest ≥ 9 (the node id is no longer a plain
  attribute); any other item keeps xdist's own loadgroup rule.

Imported only from the `pytest_xdist_make_scheduler` hook, i.e. only when xdist schedules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from xdist.scheduler import LoadGroupScheduling

GROUP_PREFIX = "edgehil-device:"


def device_of(nodeid: str, pair_devices: Mapping[str, str]) -> str | None:
    """The device of the pair whose id is one of `nodeid`'s parameter ids (`test_x[qsegment-imx500]`,
    `test_y[qsegment-imx500-3]`); the longest matching pair id wins. None when no pair id is there."""
    tail = nodeid.rsplit("::", 1)[-1]
    start = tail.find("[")
    if start < 0 or not tail.endswith("]"):
        return None
    params = tail[start + 1:-1]
    found = [pid for pid in pair_devices
             if params == pid or params.startswith(f"{pid}-") or params.endswith(f"-{pid}") or f"-{pid}-" in params]
    return pair_devices[max(found, key=len)] if found else None


class DeviceGroupScheduling(LoadGroupScheduling):  # type: ignore[misc]  # xdist ships no type for its base
    """xdist's load-group scheduling, with one group per device for the edgehil pair items."""

    def __init__(self, config: pytest.Config, log: Any = None, *, pair_devices: Mapping[str, str]) -> None:
        super().__init__(config, log)
        self.pair_devices = dict(pair_devices)

    def _split_scope(self, nodeid: str) -> str:
        device = device_of(nodeid, self.pair_devices)
        return f"{GROUP_PREFIX}{device}" if device is not None else str(super()._split_scope(nodeid))


def pair_devices(pairs: Iterable[Any]) -> dict[str, str]:
    """pair id → device name, for `DeviceGroupScheduling`."""
    return {pair.id: pair.device for pair in pairs}
