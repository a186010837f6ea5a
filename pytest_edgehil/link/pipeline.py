"""Pipelined evaluation: several EVAL requests in flight on one link, replies matched by sequence number.

Why: accuracy evaluation through SET_INPUT then RUN 1 pays two round trips per image, and the device
idles while the host encodes and sends the next image. With EVAL (inputs + one inference in one
request) and `depth` requests in flight, the next image is already in the device's input buffer when
an inference ends, so the device stays busy (docs/protocol.md, "Pipelined evaluation").

The rules of `link.exchange` hold for every request in flight: replies are matched by seq (a reply to
a request no longer in flight is a stale reply, skipped and counted); a corrupt frame makes the host
retransmit every request still waiting (the device answers those from its reply cache, which holds
`depth` replies, so nothing runs twice); silence retransmits the oldest at the end of each wait slice;
the oldest's deadline running out is DeviceTimeout. Replies are returned in request order; an ERROR
reply is DeviceRejected for that image, after the requests before it have been answered. Two different
replies with the seq of one request of the evaluation are ProtocolError: one was stamped with another
request's seq, and with requests in flight it would pass for the answer to another image; so is a
retransmitted request answered with the frame taken for the request before it, unless that request, asked
again, is answered with the same outputs (two images with identical replies: nothing was mislabelled).
"""

from __future__ import annotations

import os
import select
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgehil.errors import ConfigError, DeviceTimeout, FrameCorrupt, ProtocolError
from pytest_edgehil.link.device_port import POLL_S, _posix_fd
from pytest_edgehil.link.exchange import Exchange
from pytest_edgehil.link.messages import PROTOCOL_VERSION, Eval, Frame, Result
from pytest_edgehil.link.replies import check_result

if TYPE_CHECKING:
    from pytest_edgehil.link.client import DeviceClient

MAX_DEPTH = 8  # the host never keeps more in flight, whatever a device offers


def evaluate(client: DeviceClient, inputs: Iterable[Sequence[np.ndarray]], *, depth: int) -> list[Result]:
    """One inference per item of `inputs` (each: the tensors of the model's inputs 0..k-1) as EVAL
    requests, up to `depth` in flight; the RESULTs in order, each checked as RUN 1's (`check_result`).

    `depth` is what the device offered (`messages.pipeline_depth` of its HELLO_REPLY), capped at
    MAX_DEPTH. Each RESULT must name the model this client loaded or selected (ModelMismatch otherwise),
    as RUN's does. Raises ConfigError for depth < 1, and what `DeviceClient.run` raises (DeviceRejected,
    DeviceTimeout, FrameCorrupt, InvalidPayload, ModelMismatch, DeviceError) for the first image that fails.
    """
    if depth < 1:
        raise ConfigError(f"evaluate: depth must be >= 1 (the device's `pipeline=` capability), got {depth}")
    depth = min(depth, MAX_DEPTH)
    with client._lock:
        client._check_usable("evaluate")
        return _Pipeline(client, depth).run(iter(inputs))


class _Pipeline:
    def __init__(self, client: DeviceClient, depth: int) -> None:
        self.client, self.depth = client, depth
        self.in_flight: deque[Exchange] = deque()
        self.answered: dict[int, Frame] = {}  # replies that came before older ones were answered
        # The reply taken for each request of this evaluation, by seq, and the request's name: a second,
        # different reply with the same seq means one of them answers another request (see `_check_same`).
        self.taken: dict[int, tuple[Frame, str]] = {}
        self.previous: tuple[Exchange, Frame] | None = None  # the last request answered, and its reply
        self.count = 0

    def run(self, items: Iterable[Sequence[np.ndarray]]) -> list[Result]:
        c = self.client
        results: list[Result] = []
        pending = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(self.in_flight) < self.depth:
                tensors = next(pending, None)
                if tensors is None:
                    exhausted = True
                else:
                    self._submit(tensors)
            if not self.in_flight:
                return results
            oldest = self.in_flight[0]
            reply = self.answered.pop(oldest.frame.seq, None) or self._wait(oldest)
            self._check_not_a_copy(oldest, reply)
            self.taken[reply.seq] = (reply, oldest.command)
            self.previous = (oldest, reply)
            self.in_flight.popleft()
            self.answered.pop(oldest.frame.seq, None)  # a copy held while the request before was asked again
            if self.in_flight:  # the device answers in order: the next one's wait starts now
                self.in_flight[0].started_s = time.monotonic()
            result = c._expect(oldest.command, reply, Result)
            c._check_model(oldest.command, result.model_sha256)  # the model this host selected, as RUN
            results.append(check_result(result, 1, device=c.name, port=c.port, command=oldest.command))
            c.run_wait.learn(result.timings)

    def _submit(self, tensors: Sequence[np.ndarray]) -> None:
        c = self.client
        self.count += 1
        c._seq = (c._seq + 1) & 0xFFFF
        c.stats.requests += 1
        request = Eval(tuple((i, np.asarray(t)) for i, t in enumerate(tensors)))
        frame = Frame(PROTOCOL_VERSION, request.msg_type, c._seq, request.encode_payload())
        # Each EVAL is RUN 1's work: its wait comes from the expected run time, as RUN 1's does.
        exchange = Exchange(c, f"evaluate (image {self.count})", frame, c.run_wait.wait_s(1),
                            expected=lambda: c.run_wait.describe(1), write=self._write)
        exchange.send("")
        self.in_flight.append(exchange)

    def _wait(self, oldest: Exchange) -> Frame:
        """Read until the oldest request's reply arrives, keeping the replies to younger ones."""
        return oldest.await_reply(oldest.started_s, on_corrupt=self._corrupt, keep=self._keep, progress=False,
                                  waiting_for=lambda: f"in flight: {[e.frame.seq for e in self.in_flight]}")

    def _keep(self, frame: Frame) -> bool:
        """A reply to a younger request still in flight: held for its turn (replies go back in request order).
        Any other frame is stale, unless it contradicts a reply already held or taken (ProtocolError)."""
        if any(e.frame.seq == frame.seq for e in self.in_flight):
            held = self.answered.get(frame.seq)
            if held is not None:
                self._check_same(held, frame, next(e.command for e in self.in_flight if e.frame.seq == frame.seq))
            self.answered[frame.seq] = frame
            return True
        if frame.seq in self.taken:
            taken, command = self.taken[frame.seq]
            self._check_same(taken, frame, command)
        return False

    def _check_not_a_copy(self, exchange: Exchange, reply: Frame) -> None:
        """A request answered only after a retransmission, with the very reply taken for the request before
        it (another image): either its first reply went out under that request's seq and was taken for it
        (the cache replaying it now), or the two images really have identical replies (equal outputs, a
        coarse device timer) and a corrupt or lost reply caused the retransmission. The wire cannot tell
        these apart, so the request before is asked again (`_ask_again`): its own reply, replayed from the
        cache, is the taken frame in the second case; another output means the first (ProtocolError, as
        `_check_same` explains)."""
        if self.previous is None or exchange.sent < 2:
            return
        before, taken = self.previous
        if ((reply.msg_type, reply.payload) != (taken.msg_type, taken.payload)
                or exchange.frame.payload == before.frame.payload):
            return
        own = self._ask_again(before)
        if (own.msg_type, own.payload) == (taken.msg_type, taken.payload) or _same_outputs(own, taken):
            return  # identical replies to two images: nothing was mislabelled
        c = self.client
        raise ProtocolError(
            f"device {c.name!r} on {c.port}: the reply to {exchange.command} (seq {exchange.frame.seq}, "
            f"retransmitted) is the frame taken for {before.command} (seq {before.frame.seq}), another "
            f"input, whose own reply (asked again) differs: its first reply carried the wrong sequence number "
            f"and was taken for that image. No result of this evaluation is returned. Check the firmware's "
            f"sequence numbering (each reply carries its request's seq); recover() and evaluate again")

    def _ask_again(self, before: Exchange) -> Frame:
        """`before`'s request sent once more and its reply awaited (answered from the device's reply cache,
        or run again if the cache no longer holds it), keeping the replies of the requests in flight."""
        c = self.client
        again = Exchange(c, f"{before.command}, asked again", before.frame,
                         c.run_wait.wait_s(1 + len(self.in_flight)), expected=before.expected, write=self._write)
        again.send("")

        def corrupt(item: FrameCorrupt) -> None:
            self._corrupt(item)
            again.resend_after_corrupt(item)

        return again.await_reply(time.monotonic(), on_corrupt=corrupt, keep=self._keep, progress=False,
                                 waiting_for=lambda: f"in flight: {[e.frame.seq for e in self.in_flight]}")

    def _check_same(self, taken: Frame, again: Frame, command: str) -> None:
        """A repeated reply (a duplicate, a replay for a retransmission) is the same frame. One with the same
        seq and another payload answers another request (a reply stamped with the wrong seq): which of the
        two is this request's cannot be told, so the evaluation is refused rather than a result guessed."""
        if (again.msg_type, again.payload) == (taken.msg_type, taken.payload):
            return
        c = self.client
        raise ProtocolError(
            f"device {c.name!r} on {c.port}: two different replies carry seq {taken.seq} ({command}), so one of "
            f"them answers another request in flight (a reply stamped with the wrong sequence number); no "
            f"result of this evaluation is returned. Check the firmware's sequence numbering (each reply "
            f"carries its request's seq); recover() and evaluate again")

    def _corrupt(self, item: FrameCorrupt) -> None:
        """A damaged reply: it may be anyone's, so every request still unanswered is sent again."""
        for exchange in self.in_flight:
            if exchange.frame.seq not in self.answered:
                exchange.resend_after_corrupt(item)

    def _write(self, exchange: Exchange) -> None:
        """The request written full duplex: while the device's input is full, read its replies.

        A device busy writing a reply does not read; a host blocked writing the next request does not
        read either: each waits for the other. So the write never blocks without reading (on a POSIX
        port; on other transports the device offers no more than it can buffer, see `evaluate`).
        """
        c = self.client
        fd = None if c._serial is None else _posix_fd(c._serial)
        if fd is None:
            c._write(exchange.command, exchange.wire)
        else:
            self._write_duplex(fd, exchange)

    def _write_duplex(self, fd: int, exchange: Exchange) -> None:
        c = self.client
        view = memoryview(exchange.wire)
        deadline = time.monotonic() + c.timeout_s
        while view:
            try:
                view = view[os.write(fd, view):]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise c._port_failed(exchange.command, exc) from exc
            if time.monotonic() >= deadline:
                raise DeviceTimeout(f"device {c.name!r} on {c.port}: writing {exchange.command} "
                                    f"({len(exchange.wire)} bytes) timed out after {c.timeout_s} s: the device is "
                                    "not reading. Check that the firmware/agent is running and flow control.")
            readable, _, _ = select.select([fd], [fd], [], POLL_S)
            if readable:
                data = c._read_fd(fd, time.monotonic())
                c._backlog += c._decoder.feed(data) if data else []


def _same_outputs(a: Frame, b: Frame) -> bool:
    """Whether two RESULT frames carry the same outputs (a request run again has other timings)."""
    try:
        first, second = Result.decode_payload(a.payload), Result.decode_payload(b.payload)
    except ProtocolError:
        return False
    return (a.msg_type == b.msg_type and len(first.outputs) == len(second.outputs)
            and all(x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
                    for x, y in zip(first.outputs, second.outputs)))
