"""Plain EVAL's reply checks in a pipelined evaluation: telling a mislabelled reply from an identical one.

A RESULT does not say which request it answers (EVAL_BATCH's reply does: `link/batch_messages.py`), so with
several EVALs in flight a reply stamped with another request's seq could pass for the answer to another
image. These checks refuse what the wire shows of it (docs/protocol.md, "Pipelined evaluation"): two
different replies under one seq, and a retransmitted request answered with the frame taken for the request
before it, unless that request, asked again, has the same outputs (two images with identical replies).
`link.pipeline._Pipeline` mixes them in.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgehil.errors import FrameCorrupt, ProtocolError
from pytest_edgehil.link.exchange import Exchange
from pytest_edgehil.link.messages import Frame, Result

if TYPE_CHECKING:
    from pytest_edgehil.link.client import DeviceClient

__all__ = ["EvalReplyChecks"]


class EvalReplyChecks:
    """The checks, on the pipeline's state: its client, requests in flight and last answered request."""

    client: DeviceClient
    in_flight: deque[Exchange]
    previous: tuple[Exchange, Frame] | None  # the last request answered, and its reply

    def _write(self, exchange: Exchange) -> None:
        raise NotImplementedError  # the pipeline's full-duplex write

    def _corrupt(self, item: FrameCorrupt) -> None:
        raise NotImplementedError  # the pipeline's answer to a corrupt frame: resend what is unanswered

    def _keep(self, frame: Frame) -> bool:
        raise NotImplementedError  # the pipeline's hold of a reply to a younger request

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


def _same_outputs(a: Frame, b: Frame) -> bool:
    """Whether two RESULT frames carry the same outputs (a request run again has other timings)."""
    try:
        first, second = Result.decode_payload(a.payload), Result.decode_payload(b.payload)
    except ProtocolError:
        return False
    return (a.msg_type == b.msg_type and len(first.outputs) == len(second.outputs)
            and all(x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
                    for x, y in zip(first.outputs, second.outputs)))
