"""The analyzer twin's fault layer: what a real bench's analyzer does wrong, injected on purpose.

A fault is armed on a twin (`AnalyzerTwin(faults=[...])` or `twin.inject(kind, count=...)`) and fires
on the next `count` commands it applies to; the twin's replies and captures are then really wrong on
the wire (no mocks): the driver must raise its typed error or recover. Kinds:

| kind | what the twin does | default target |
|---|---|---|
| `timeout` | sends no reply at all | the first fetch query |
| `late` | sends the whole reply `delay_s` late | the first fetch query |
| `half` | sends half the reply, the rest `delay_s` later | the first fetch query |
| `short-block` | a block whose payload is shorter than its header announces | the first fetch query |
| `bad-header` | a block whose length field is not digits (`#4` + `1x2y`) | the first fetch query |
| `surplus` | a block followed by bytes it did not announce (`EXTRA`) | the first fetch query |
| `non-ascii` | a non-ASCII byte (0xB5, "µ" in Latin-1) inside a text reply | the status query |
| `inf-status` | `INF` (or `text`, e.g. `9.9E37`) instead of the reply | the status query |
| `scpi-error` | queues `error` in SYST:ERR? after the command | the next setting or command sent |
| `lost-trigger` | the acquisition is armed but never triggers | the next acquisition |
| `clip` | the device draws twice the range; samples pinned at the range limit | the next acquisition |
| `lost-chunk` | FastLog (NGM202): the stream's second chunk is overwritten before it is offered | the next `FLOG 1` |

`on` names the header a fault applies to (upper case, no `?`, e.g. "STAT:OPER:COND"), overriding
the default target. Counts are per fault; `fired` counts what happened, for the tests' books.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.sim.scpi_server import Reply, StagedReply

#: Faults that reshape the reply to a query.
REPLY_FAULTS = ("timeout", "late", "half", "short-block", "bad-header", "surplus", "non-ascii", "inf-status")
#: Faults that act on a command or an acquisition.
ACTION_FAULTS = ("scpi-error", "lost-trigger", "clip", "lost-chunk")
FAULT_KINDS = REPLY_FAULTS + ACTION_FAULTS
BLOCK_FAULTS = ("short-block", "bad-header", "surplus")
_TEXT_FAULTS = ("non-ascii", "inf-status")
# Header groups a default target stands for; the twin resolves them against its dialect.
FETCH, STATUS, ANY_COMMAND, ACQUISITION = "<fetch>", "<status>", "<command>", "<acquisition>"
_DEFAULT_TARGET = {**dict.fromkeys(("timeout", "late", "half", *BLOCK_FAULTS), FETCH),
                   **dict.fromkeys(_TEXT_FAULTS, STATUS), "scpi-error": ANY_COMMAND,
                   "lost-trigger": ACQUISITION, "clip": ACQUISITION, "lost-chunk": ACQUISITION}


@dataclass
class AnalyzerFault:
    """One armed fault: `kind` fires on the next `count` matching commands (see the module table)."""

    kind: str
    count: int = 1
    on: str | None = None  # a header (upper case, no '?'); None: the kind's default target
    delay_s: float = 1.0  # late / half: how long the (rest of the) reply is held back, real seconds
    text: bytes = b"INF"  # inf-status: what the instrument answers instead
    error: tuple[int, str] = (-240, "Hardware error")  # scpi-error: the queue entry
    overload: float = 2.0  # clip: the device's peak current as a multiple of the range

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"analyzer fault {self.kind!r} is unknown; use one of {', '.join(FAULT_KINDS)}")
        if self.count < 1 or self.delay_s < 0 or self.overload <= 1:
            raise ConfigError(f"analyzer fault {self.kind!r}: count must be >= 1, delay_s >= 0 and "
                              f"overload > 1 (got {self.count}, {self.delay_s}, {self.overload})")
        self.on = self.on.upper().lstrip(":").rstrip("?") if self.on else _DEFAULT_TARGET[self.kind]


class FaultPlan:
    """The faults armed on one twin, consumed as they fire (thread-safe)."""

    def __init__(self, faults: list[AnalyzerFault] | tuple[AnalyzerFault, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._armed: list[AnalyzerFault] = list(faults)
        self.fired: dict[str, int] = {}

    def inject(self, fault: AnalyzerFault) -> AnalyzerFault:
        with self._lock:
            self._armed.append(fault)
        return fault

    def pending(self) -> int:
        """Fault firings still armed."""
        with self._lock:
            return sum(fault.count for fault in self._armed)

    def take(self, kinds: tuple[str, ...], targets: set[str]) -> AnalyzerFault | None:
        """Consume one firing of the first armed fault of `kinds` aimed at one of `targets`."""
        with self._lock:
            for fault in self._armed:
                if fault.kind in kinds and fault.on in targets:
                    fault.count -= 1
                    if fault.count == 0:
                        self._armed.remove(fault)
                    self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
                    return fault
        return None


def reshape_reply(fault: AnalyzerFault, reply: bytes) -> Reply:
    """The reply as the faulty instrument sends it (`reply` without its LF terminator)."""
    if fault.kind == "timeout":
        return None
    if fault.kind == "late":
        return StagedReply(((fault.delay_s, reply),))
    if fault.kind == "half":
        return StagedReply(((0.0, reply[:len(reply) // 2]), (fault.delay_s, reply[len(reply) // 2:])))
    if fault.kind == "non-ascii":
        return reply[:1] + b"\xb5" + reply[1:]
    if fault.kind == "inf-status":
        return fault.text
    # Block faults: `#<n><length><payload>`.
    digits = int(reply[1:2]) if reply[:1] == b"#" and reply[1:2].isdigit() else 0
    header, payload = reply[:2 + digits], reply[2 + digits:]
    if fault.kind == "short-block":
        return header + payload[:len(payload) // 2]
    if fault.kind == "bad-header":
        garbled = bytes(b if k % 2 == 0 else ord("x") for k, b in enumerate(header[2:]))
        return header[:2] + (garbled if digits > 1 else b"x") + payload
    return reply + b"EXTRA"  # surplus
