"""The device twin's fault layer: what a serial line and a board's firmware do wrong, injected on purpose.

A plan is handed to the twin (`DeviceTwin(..., faults=plan)`, `start_device_twin(..., faults=...)`) or
armed later on `twin.faults`; the pty link (`sim/pty_link.py`) consults it for every frame it receives
(direction "request", host → twin) and every reply it sends ("reply", twin → host). Faults are real on
the wire, not mocks: a flipped bit reaches the host's decoder as a flipped bit. Kinds:

| kind | direction | what happens on the wire | default target |
|---|---|---|---|
| `drop-byte` | either | one byte of the frame is lost (the receiver sees a corrupt frame) | any frame |
| `corrupt` | either | one bit of the frame is flipped (never into a 0x00 delimiter) | any frame |
| `drop-frame` | either | the whole frame is lost (silence) | any frame |
| `duplicate` | either | the frame arrives twice | any frame |
| `noise` | either | text without a delimiter (a debug print, a boot log on the same UART) arrives just before the frame, so the receiver sees one garbled frame | any frame |
| `delay` | reply | the reply is sent `delay_s` late (the firmware is busy) | any reply |
| `stale-seq` | reply | the reply carries the previous sequence number (seq − 1) | any reply |
| `bad-version` | reply | the reply frame is stamped with protocol version `version` | any reply |
| `hang` | request | the inference runs but the request is never answered, nor its retransmissions | a request that runs inferences: RUN, EVAL, EVAL_BATCH |
| `reboot` | request | the board resets: its pty closes, and after `down_s` it serves on a NEW pty path (a USB-CDC port re-enumerating); RAM state is lost (active model, inputs), flash kept unless `wipe_flash` | any request |
| `no-invoke` | firmware | the firmware answers without running anything: per inference it pulses its trigger line for `NO_INVOKE_PULSE_S` and stamps its stages around a call that returns at once (a model call stubbed out, an interpreter never allocated whose error is ignored), the board idle throughout; the outputs are zeros | RUN and EVAL |

A `firmware` fault acts in the twin's command handler, not on the line (the pty link never takes one); it
is armed only (`rate` never draws it). `after` lets that many matching frames pass before a fault fires
(a board that answers its first RUN soundly and its second from a stub).
`on` names the request type a fault waits for (`"RUN"`, `"SET_INPUT"`, …; for a reply fault: the request
being answered); without it a fault acts on its default target. A hang targets every request that runs an
inference (`INFERENCE_REQUESTS`), pipelined evaluation included: a firmware stuck in an inference is stuck
whichever request started it. Two modes, usable together: armed faults (`inject`, each fires on its next `count`
matching frames) and a rate (`rate=p`: every frame is faulted with probability p, the kind drawn
uniformly among `kinds` that apply to that frame). Everything random comes from one seeded generator,
so a plan with the same seed on the same traffic injects the same faults. `fired` counts each kind that
fired and `log` lists them (kind, direction, request type, seq), for the tests' books.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_edgehil.errors import ConfigError, FrameCorrupt
from pytest_edgehil.link.messages import Frame, decode_frame

WIRE_KINDS = ("drop-byte", "corrupt", "drop-frame", "duplicate", "noise")
REPLY_KINDS = (*WIRE_KINDS, "delay", "stale-seq", "bad-version")
REQUEST_KINDS = (*WIRE_KINDS, "hang", "reboot")
FIRMWARE_KINDS = ("no-invoke",)
FAULT_KINDS = (*REPLY_KINDS, "hang", "reboot", *FIRMWARE_KINDS)
DIRECTIONS = ("request", "reply", "firmware")
# no-invoke: how long the firmware holds its trigger line high around a call that returns at once (s).
NO_INVOKE_PULSE_S = 2e-6
# The requests that run an inference (RUN, and pipelined evaluation's EVAL and EVAL_BATCH): where a hang acts
# unless `on` names one request type.
INFERENCE_REQUESTS = ("RUN", "EVAL", "EVAL_BATCH")
NOISE = b"\r\nI (4711) app: free heap 183412 bytes\r\n"  # what firmware logging on the protocol UART looks like


@dataclass
class DeviceFault:
    """One armed fault: `kind` fires on the next `count` frames of `direction` matching `on`.

    Raises ConfigError for an unknown kind, a direction the kind cannot act in, or bad numbers.
    """

    kind: str
    count: int = 1
    direction: str = ""  # "request" or "reply"; "" picks the kind's only one ("reply" for wire kinds)
    on: str | None = None  # request type name, e.g. "RUN"; None: any (hang: any of INFERENCE_REQUESTS)
    delay_s: float = 0.5  # delay: how long the reply is held back, real seconds
    down_s: float = 0.2  # reboot: how long the board is gone before its new port appears
    wipe_flash: bool = False  # reboot: the board loses the models stored in flash too
    version: int = 9  # bad-version: the protocol version stamped on the reply
    after: int = 0  # how many matching frames pass before this fault fires

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"device fault {self.kind!r} is unknown; use one of {', '.join(FAULT_KINDS)}")
        if not self.direction:
            self.direction = ("firmware" if self.kind in FIRMWARE_KINDS else
                              "request" if self.kind in ("hang", "reboot") else "reply")
        allowed = {"request": REQUEST_KINDS, "reply": REPLY_KINDS, "firmware": FIRMWARE_KINDS}.get(self.direction, ())
        if self.direction not in DIRECTIONS or self.kind not in allowed:
            raise ConfigError(f"device fault {self.kind!r} cannot act in direction {self.direction!r}; "
                              f"request faults: {', '.join(REQUEST_KINDS)}; reply faults: {', '.join(REPLY_KINDS)}; "
                              f"firmware faults: {', '.join(FIRMWARE_KINDS)}")
        if self.count < 1 or self.after < 0 or self.delay_s < 0 or self.down_s < 0 or not 0 <= self.version <= 255:
            raise ConfigError(f"device fault {self.kind!r}: count must be >= 1, after, delay_s and down_s >= 0, "
                              f"version 0..255 (got {self.count}, {self.after}, {self.delay_s}, {self.down_s}, "
                              f"{self.version})")
        self.on = (self.on or "").upper() or None

    def targets(self, request: str) -> bool:
        """Whether this fault may act on a frame of (or answering) request type `request`."""
        if self.on is not None:
            return self.on == request
        if self.kind in FIRMWARE_KINDS:
            return request in ("RUN", "EVAL")
        return self.kind != "hang" or request in INFERENCE_REQUESTS


@dataclass(frozen=True)
class FiredFault:
    """One fault as it fired: which kind, in which direction, on which request type and sequence number."""

    kind: str
    direction: str
    request: str
    seq: int


@dataclass
class DeviceFaultPlan:
    """The faults of one device twin, consumed as they fire (thread-safe).

    `rate` (0..1) faults each frame with that probability, drawing the kind among `kinds`; rate-mode
    faults take their parameters from `template` (delay_s, down_s, wipe_flash, version).
    """

    faults: list[DeviceFault] = field(default_factory=list)
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    template: DeviceFault = field(default_factory=lambda: DeviceFault("delay"))
    fired: dict[str, int] = field(default_factory=dict)
    log: list[FiredFault] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in FAULT_KINDS]
        if unknown:  # say only what is wrong: a good rate beside a misspelt kind is not the fault
            raise ConfigError(f"device fault plan: unknown fault kind(s) {', '.join(map(repr, unknown))}; use "
                              f"{', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"device fault plan: rate must be within 0..1, got {self.rate}")
        self.kinds = tuple(self.kinds)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(self.seed)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> DeviceFaultPlan:
        """A plan from a lab-file style table: `rate`, `seed`, `kinds`, `delay_s`, `down_s`, `wipe_flash`,
        and `faults` (a list of tables with DeviceFault's fields). ConfigError naming the bad key."""
        allowed = {"rate", "seed", "kinds", "delay_s", "down_s", "wipe_flash", "faults"}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ConfigError(f"device faults: unknown keys {unknown}; allowed: {sorted(allowed)}")
        try:
            template = DeviceFault("delay", delay_s=float(table.get("delay_s", 0.5)),
                                   down_s=float(table.get("down_s", 0.2)), wipe_flash=bool(table.get("wipe_flash", False)))
            faults = [DeviceFault(**dict(entry)) for entry in table.get("faults", [])]
            return cls(faults, rate=float(table.get("rate", 0.0)), kinds=tuple(table.get("kinds", FAULT_KINDS)),
                       seed=int(table.get("seed", 0)), template=template)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"device faults: {exc}; see pytest_edgehil/sim/device_faults.py for the keys") from exc

    def disarm_all_but(self, keep: Iterable[DeviceFault]) -> None:
        """Drop every armed fault not in `keep` (by identity): what a test armed goes after the test."""
        kept = list(keep)
        with self._lock:
            self.faults[:] = [f for f in self.faults if any(f is k for k in kept)]

    def inject(self, fault: DeviceFault) -> DeviceFault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def set_rate(self, rate: float, *, seed: int | None = None) -> None:
        """Fault every frame with probability `rate` from now on (0 stops); `seed` restarts the generator."""
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"device fault plan: rate must be within 0..1, got {rate}")
        with self._lock:
            self.rate = rate
            if seed is not None:
                self.seed, self._rng = seed, np.random.default_rng(seed)

    def pending(self) -> int:
        """Armed fault firings still to come (rate-mode faults not included)."""
        with self._lock:
            return sum(fault.count for fault in self.faults)

    @property
    def active(self) -> bool:
        """Whether any fault can still fire (armed faults, or a rate above 0)."""
        return self.rate > 0.0 or bool(self.faults)

    @property
    def total_fired(self) -> int:
        with self._lock:
            return sum(self.fired.values())

    def take(self, direction: str, request: str, seq: int) -> DeviceFault | None:
        """The fault to apply to this frame, if any, consumed and counted. `request` is the request's
        type name (for a reply: the request it answers), `seq` its sequence number."""
        with self._lock:
            fault = self._armed(direction, request) or self._drawn(direction, request)
            if fault is not None:
                self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
                self.log.append(FiredFault(fault.kind, direction, request, seq))
            return fault

    def draw(self, high: int) -> int:
        """A seeded integer in 0..high-1 (where a byte is dropped or a bit flipped)."""
        with self._lock:
            return int(self._rng.integers(high))

    def _armed(self, direction: str, request: str) -> DeviceFault | None:
        for fault in self.faults:
            if fault.direction == direction and fault.targets(request):
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _drawn(self, direction: str, request: str) -> DeviceFault | None:
        if direction == "firmware" or self.rate <= 0.0 or self._rng.random() >= self.rate:
            return None
        allowed = REQUEST_KINDS if direction == "request" else REPLY_KINDS
        kinds = [k for k in self.kinds if k in allowed and (k != "hang" or request in INFERENCE_REQUESTS)]
        if not kinds:
            return None
        kind = kinds[int(self._rng.integers(len(kinds)))]
        return replace(self.template, kind=kind, direction=direction, on=None, count=1)


def as_plan(faults: DeviceFaultPlan | Iterable[DeviceFault] | Mapping[str, Any] | None) -> DeviceFaultPlan:
    """A plan from what a caller hands `start_device_twin(faults=...)`: a plan, faults, a table or None."""
    if faults is None:
        return DeviceFaultPlan()
    if isinstance(faults, DeviceFaultPlan):
        return faults
    if isinstance(faults, Mapping):
        return DeviceFaultPlan.from_table(faults)
    return DeviceFaultPlan(list(faults))


# -- what a fault does to the bytes ------------------------------------------------------------------------
def damage(wire: bytes, fault: DeviceFault, plan: DeviceFaultPlan) -> list[bytes]:
    """The byte strings a wire fault turns `wire` (one or more whole frames, each ending in 0x00) into."""
    if fault.kind == "drop-frame":
        return []
    if fault.kind == "duplicate":
        return [wire, wire]
    if fault.kind == "noise":
        return [NOISE + wire]
    if fault.kind not in ("drop-byte", "corrupt"):
        return [wire]
    end = wire.index(0)  # damage the first frame, never its delimiter
    at = plan.draw(end)
    if fault.kind == "drop-byte":
        return [wire[:at] + wire[at + 1:]]
    damaged = bytearray(wire)
    bit = plan.draw(8)
    if damaged[at] ^ (1 << bit) == 0:  # a flip into 0x00 would split the frame in two: flip another bit
        bit = (bit + 1) % 8
    damaged[at] ^= 1 << bit
    return [bytes(damaged)]


def restamp(wire: bytes, *, seq_delta: int = 0, version: int | None = None) -> bytes:
    """`wire` (the twin's own well-formed frames) re-encoded with seq + seq_delta and/or another version."""
    out = bytearray()
    for part in wire.split(b"\x00")[:-1]:
        try:
            frame = decode_frame(part)
        except FrameCorrupt:  # not ours to fix: pass it on as it is
            out += part + b"\x00"
            continue
        out += Frame(frame.version if version is None else version, frame.msg_type,
                     (frame.seq + seq_delta) & 0xFFFF, frame.payload).encode()
    return bytes(out)
