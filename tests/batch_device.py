"""A scripted firmware serving EVAL_BATCH over `serve_pty`, and a fault plan that picks replies by request
order: the tests of batched evaluation (test_batch_eval*.py) build their devices and faults from these."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from pytest_edgehil.link import messages as p
from pytest_edgehil.sim.device_faults import DeviceFault, DeviceFaultPlan, FiredFault
from pytest_edgehil.sim.pty_link import REPLY_CACHE


class BatchDevice:
    """Firmware that serves EVAL_BATCH (`eval`, `pipeline=depth`, `batch=batch`): each image's output is
    the sum of its input (int32), so a reply taken for other images shows as other numbers.

    `crc_delta` is added to the echoed request CRC-32 (0: the right one; else a firmware bug); `twice`
    answers every request with two BATCH_RESULTs, the second with other timings (a request run twice).
    `sizes` records the number of images of each EVAL_BATCH it ran, in order.
    """

    def __init__(self, *, batch: int = 8, depth: int = REPLY_CACHE, crc_delta: int = 0, twice: bool = False) -> None:
        self.caps = (p.EVAL_CAPABILITY, f"{p.PIPELINE_CAPABILITY}{depth}", f"{p.BATCH_CAPABILITY}{batch}")
        self.crc_delta, self.twice = crc_delta, twice
        self.sizes: list[int] = []

    def __call__(self, message: p.Message) -> list[p.Message]:
        if isinstance(message, p.Hello):
            return [p.HelloReply("batch-echo", "b0", "t", p.PROTOCOL_VERSION, self.caps, 1, 1, "B-1")]
        if not isinstance(message, p.EvalBatch):
            return [p.Error(p.ErrorCode.UNKNOWN_MESSAGE, type(message).__name__)]
        self.sizes.append(len(message.images))
        outputs = tuple((np.array([int(np.asarray(t).astype(np.int64).sum())], np.int32),)
                        for (t, *_) in message.images)
        crc = (message.payload_crc32 + self.crc_delta) & 0xFFFFFFFF
        replies = [self._result(crc, outputs, 1.0)]
        if self.twice:
            replies.append(self._result(crc, outputs, 1.5))
        return list(replies)

    @staticmethod
    def _result(crc: int, outputs: tuple[tuple[np.ndarray, ...], ...], stage_us: float) -> p.BatchResult:
        timings = tuple(p.StageTiming(10.0 * i, stage_us, 2 * stage_us, 3 * stage_us) for i in range(len(outputs)))
        return p.BatchResult(bytes(32), crc, timings, outputs)


@dataclass
class ReplyScript(DeviceFaultPlan):
    """Reply faults chosen by request order, where rate and armed faults cannot aim: `script[(n, i)]` is the
    kind applied the i-th time (0: the reply, 1: its first replay from the reply cache, ...) the reply to the
    n-th EVAL_BATCH received (0-based, retransmissions not counted) goes out; `always`: every reply."""

    script: dict[tuple[int, int], str] = field(default_factory=dict)
    always: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.order: dict[int, int] = {}  # request seq -> its place among the EVAL_BATCHes received
        self.sends: Counter[int] = Counter()

    @property
    def active(self) -> bool:
        return True

    def take(self, direction: str, request: str, seq: int) -> DeviceFault | None:
        if request != "EVAL_BATCH":
            return None
        if direction == "request":
            self.order.setdefault(seq, len(self.order))
            return None
        n = self.order[seq]
        kind = self.script.get((n, self.sends[n]), self.always)
        self.sends[n] += 1
        if kind is None:
            return None
        with self._lock:
            self.fired[kind] = self.fired.get(kind, 0) + 1
            self.log.append(FiredFault(kind, direction, request, seq))
        return DeviceFault(kind, direction="reply")


def images(n: int, size: int = 100, seed: int = 11) -> list[np.ndarray]:
    """`n` int8 inputs of `size` elements with pairwise different sums (so every mislabel shows)."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    while len(out) < n:
        x = rng.integers(-128, 128, size=(1, size), dtype=np.int8)
        if int(x.astype(np.int64).sum()) not in sums(out):
            out.append(x)
    return out


def sums(batch: list[np.ndarray]) -> list[int]:
    return [int(b.astype(np.int64).sum()) for b in batch]
