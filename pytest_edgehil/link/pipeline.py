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
again, is answered with the same outputs (two images with identical replies: nothing was mislabelled);
those checks are `link.eval_reply_checks`.

A device offering `batch=N` gets EVAL_BATCH requests instead, each carrying up to N images
(`link.batch_messages`): the per-request work on both ends is paid once per N images. Its reply echoes
the CRC-32 of the request payload it answers, so matching needs no guesswork: a reply under a request's
seq whose CRC-32 is another request's answers other images and is skipped as stale (the request is then
retransmitted and answered from the device's reply cache, or times out), never taken; two replies that
both answer a request (it ran twice) are equally valid, and the first is taken.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgehil.errors import (
    ConfigError,
    DeviceTimeout,
    EdgeHILError,
    FrameCorrupt,
    InvalidPayload,
    ModelMismatch,
)
from pytest_edgehil.link.eval_reply_checks import EvalReplyChecks
from pytest_edgehil.link.exchange import Exchange
from pytest_edgehil.link.messages import (
    HEADER,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    BatchResult,
    Eval,
    EvalBatch,
    Frame,
    MsgType,
    Result,
    payload_crc32,
)
from pytest_edgehil.link.replies import check_result, check_timings

if TYPE_CHECKING:
    from pytest_edgehil.link.client import DeviceClient

MAX_DEPTH = 8  # the host never keeps more in flight, whatever a device offers
MAX_BATCH = 64  # nor puts more images in one EVAL_BATCH
# Nor more than this many bytes of images in one EVAL_BATCH (one image always goes): a request is received
# whole before its first inference starts, and a board buffers `depth` of them.
BATCH_BYTES = 64 * 1024
# Nor more than this many bytes of outputs in its reply (when the caller knows them): a quarter of a frame.
REPLY_BYTES = MAX_PAYLOAD // 4


def evaluate(client: DeviceClient, inputs: Iterable[Sequence[np.ndarray]], *, depth: int,
             batch: int = 0, reply_bytes: int = 0) -> list[Result]:
    """One inference per item of `inputs` (each: the tensors of the model's inputs 0..k-1), up to `depth`
    requests in flight; one RESULT per item, in order, each checked as RUN 1's (`check_result`).

    `depth` is what the device offered (`messages.pipeline_depth` of its HELLO_REPLY), capped at
    MAX_DEPTH. `batch` (`messages.batch_size`; 0: the device has no EVAL_BATCH) sends EVAL_BATCH requests
    of up to `batch` items (capped at MAX_BATCH) instead of one EVAL per item; the RESULTs are the same.
    `reply_bytes`: the bytes of one item's outputs, when known (the model's output specs): a request then
    holds no more items than REPLY_BYTES of outputs (an upsampling model's reply would otherwise outgrow a
    frame's MAX_PAYLOAD, which the device can only answer with an ERROR).
    Each reply must name the model this client loaded or selected (ModelMismatch otherwise), as RUN's
    does. Raises ConfigError for depth < 1 or batch < 0, and what `DeviceClient.run` raises
    (DeviceRejected, DeviceTimeout, FrameCorrupt, InvalidPayload, ModelMismatch, DeviceError) for the
    first request that fails. Before raising anything but a timeout (an exception of `inputs` included),
    it waits out the replies to the requests still in flight (`_Pipeline.drain`), so the link is idle.
    """
    if depth < 1 or batch < 0:
        raise ConfigError(f"evaluate: depth must be >= 1 (the device's `pipeline=` capability) and batch >= 0 "
                          f"(its `batch=`), got depth {depth}, batch {batch}")
    depth = min(depth, MAX_DEPTH)
    with client._lock:
        client._check_usable("evaluate")
        if reply_bytes > 0:  # as many items as REPLY_BYTES of outputs hold, one at least
            batch = min(batch, max(1, REPLY_BYTES // reply_bytes))
        pipeline = _Pipeline(client, depth, min(batch, MAX_BATCH))
        try:
            return pipeline.run(iter(inputs))
        except DeviceTimeout as exc:
            raise pipeline.unanswered(exc) from exc
        except Exception:
            pipeline.drain()
            raise


class _Pipeline(EvalReplyChecks):
    def __init__(self, client: DeviceClient, depth: int, batch: int = 0) -> None:
        self.client, self.depth, self.batch = client, depth, batch
        # EVAL_BATCH requests in flight, by seq: the CRC-32 of the payload (what the reply must echo) and
        # the number of images.
        self.batches: dict[int, tuple[int, int]] = {}
        self.batches_sent = 0  # EVAL_BATCH requests sent (the ramp's step)
        self.held: Sequence[np.ndarray] | None = None  # an image drawn that did not fit the last request
        # Replies taken and not yet decoded: the device gets its next request before the host decodes.
        self.unread: list[tuple[Exchange, Frame]] = []
        self.in_flight: deque[Exchange] = deque()
        self.answered: dict[int, Frame] = {}  # replies that came before older ones were answered
        # The reply taken for each request of this evaluation, by seq, and the request's name: a second,
        # different reply with the same seq means one of them answers another request (see `_check_same`).
        self.taken: dict[int, tuple[Frame, str]] = {}
        self.previous: tuple[Exchange, Frame] | None = None  # the last request answered, and its reply
        self.count = 0
        self.model: bytes | None = None  # the model (SHA-256) the evaluation's first reply named
        self.reply_bytes_per_image = 0.0  # the most bytes per image a reply took (for its time on the line)

    def unanswered(self, exc: DeviceTimeout) -> DeviceTimeout:
        """`exc` (a request of this evaluation timed out) naming every request still in flight: the images
        whose results are lost with it, not only the oldest's."""
        requests = ", ".join(e.command.removeprefix("evaluate (").removesuffix(")") for e in self.in_flight)
        return type(exc)(f"{exc} In flight: {requests}; no result of this evaluation is returned. recover() "
                         "the device and evaluate again.")

    def drain(self) -> None:
        """The evaluation ended in an error that is not a timeout (an ERROR reply, a reply refused, the
        caller's iterator raising): wait out the replies to the requests still in flight, skipping them.

        Why: the device runs what it buffered (up to `depth` requests of `batch` images) and answers each; a
        next command sent meanwhile waits behind that work with only its own `timeout_s` and times out
        blaming the cable. Best effort: a request not answered within its wait ends the drain (noted in the
        traffic log) and the evaluation's own error is raised either way."""
        c = self.client
        while self.in_flight and c._serial is not None:  # a port lost (its error raised) has nothing to drain
            oldest = self.in_flight[0]
            if self.answered.pop(oldest.frame.seq, None) is None:
                oldest.started_s = time.monotonic()
                try:
                    self._wait(oldest)
                except EdgeHILError as exc:
                    c.traffic_log.note("--", f"evaluation ended with requests in flight; waiting them out, "
                                             f"{oldest.command} was not answered: {exc}", device=c.name)
                    return
            self.in_flight.popleft()

    def run(self, items: Iterable[Sequence[np.ndarray]]) -> list[Result]:
        c = self.client
        results: list[Result] = []
        pending = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(self.in_flight) < self.depth:
                if self.batch:
                    images = self._next_batch(pending)
                    if images:
                        self._submit_batch(images)
                    exhausted = not images
                    continue
                tensors = next(pending, None)
                if tensors is None:
                    exhausted = True
                else:
                    self._submit(tensors)
            for exchange, reply in self.unread:  # decoded once the next request is on the wire
                results += self._batch_results(exchange, reply)
            self.unread.clear()
            if not self.in_flight:
                return results
            oldest = self.in_flight[0]
            held = self.answered.pop(oldest.frame.seq, None)
            reply = held if held is not None else self._wait(oldest)
            if self.batch:
                self.in_flight.popleft()
                if self.in_flight:
                    self.in_flight[0].started_s = time.monotonic()
                self.unread.append((oldest, reply))
                continue
            self._check_not_a_copy(oldest, reply)
            self.taken[reply.seq] = (reply, oldest.command)
            self.previous = (oldest, reply)
            self.in_flight.popleft()
            self.answered.pop(oldest.frame.seq, None)  # a copy held while the request before was asked again
            if self.in_flight:  # the device answers in order: the next one's wait starts now
                self.in_flight[0].started_s = time.monotonic()
            self.reply_bytes_per_image = max(self.reply_bytes_per_image, len(reply.payload))
            result = c._expect(oldest.command, reply, Result)
            self._check_model(oldest.command, result.model_sha256)  # the model this host selected, as RUN
            results.append(check_result(result, 1, device=c.name, port=c.port, command=oldest.command))
            c.run_wait.learn(result.timings)

    def _check_model(self, command: str, found: bytes) -> None:
        """A reply's model (`found`) must be the one this client selected (`DeviceClient._check_model`) and,
        with none selected, the one the evaluation's first reply named: one evaluation's results are one
        model's outputs, never a mix (a model switched under the host mid-evaluation). ModelMismatch."""
        c = self.client
        c._check_model(command, found)
        if self.model is None:
            self.model = found
        elif found != self.model:
            raise ModelMismatch(
                f"device {c.name!r} on {c.port}: {command} ran model SHA-256 {found.hex()[:16]}…, the images "
                f"before it in this evaluation model SHA-256 {self.model.hex()[:16]}…: the board's active model "
                "changed during the evaluation (another program on the port, firmware that switched models, a "
                "reboot into a default model). No result of this evaluation is returned; load or select the "
                "model first (every reply is then checked against it) and evaluate again.",
                device=c.name, port=c.port, expected=self.model.hex(), found=found.hex())

    def _submit(self, tensors: Sequence[np.ndarray]) -> None:
        request = Eval(tuple((i, np.asarray(t)) for i, t in enumerate(tensors)))
        self._send(request.msg_type, request.encode_payload(), 1)

    def _send(self, msg_type: int, payload: bytes, images: int) -> int:
        """A request of `images` images put on the wire and in flight; its seq. Each image is RUN 1's work:
        the wait comes from the expected run time of that many inferences, as a RUN's does."""
        c = self.client
        first = self.count + 1
        self.count += images
        c._seq = (c._seq + 1) & 0xFFFF
        c.stats.requests += 1
        frame = Frame(PROTOCOL_VERSION, msg_type, c._seq, payload)
        command = f"evaluate (image {first})" if images == 1 else f"evaluate (images {first}-{self.count})"
        exchange = Exchange(c, command, frame, c.run_wait.wait_s(images),
                            expected=lambda: c.run_wait.describe(images), write=self._write)
        exchange.send("")
        self.in_flight.append(exchange)
        return frame.seq

    def _next_batch(self, pending: Iterator[Sequence[np.ndarray]]) -> list[Sequence[np.ndarray]]:
        """The images of the next EVAL_BATCH: at most `batch`, at most BATCH_BYTES of tensors (but one at
        least), each with as many tensors as the first, and 1, 2, 4, … for the first requests, so that the device starts on the first image
        while the next requests are still on the line (a full first request would keep it idle)."""
        limit = min(self.batch, 1 << min(self.batches_sent, 16))
        images: list[Sequence[np.ndarray]] = []
        size = 0
        while len(images) < limit:
            tensors: Sequence[np.ndarray] | None
            if self.held is not None:
                tensors, self.held = self.held, None
            else:
                tensors = next(pending, None)
                if tensors is None:
                    break
            nbytes = sum(np.asarray(t).nbytes for t in tensors)
            # One input count per request (EVAL_BATCH's k); EVAL carries each image's own, so a change of
            # count starts the next request rather than failing to encode this one.
            if images and (size + nbytes > BATCH_BYTES or len(tensors) != len(images[0])):
                self.held = tensors  # the first image of the next request
                break
            images.append(tensors)
            size += nbytes
        self.batches_sent += bool(images)
        return images

    def _submit_batch(self, images: list[Sequence[np.ndarray]]) -> None:
        k = len(images[0])
        request = EvalBatch(tuple(range(k)), tuple(tuple(np.asarray(t) for t in tensors) for tensors in images))
        payload = request.encode_payload()
        seq = self._send(request.msg_type, payload, len(images))  # replies are taken only in the waits, later
        self.batches[seq] = (payload_crc32(payload), len(images))

    def _answers(self, exchange: Exchange, frame: Frame) -> bool:
        """Whether `frame` (carrying `exchange`'s seq) answers it: a BATCH_RESULT must echo the CRC-32 of
        its request payload; any other reply (ERROR, a wrong type) is for `_expect` to judge."""
        if frame.msg_type != MsgType.BATCH_RESULT:
            return True
        crc, _ = self.batches[exchange.frame.seq]
        echoed = BatchResult.peek_request_crc32(frame.payload)
        if echoed == crc:
            return True
        c = self.client
        shown = "none" if echoed is None else f"0x{echoed:08X}"
        c.traffic_log.note("rx", f"reply seq={frame.seq} echoes request CRC-32 {shown}, not 0x{crc:08X} of "
                                 f"{exchange.command}: it answers another request; skipped", device=c.name)
        # Why, for the timeout's message: the echo must be the zlib CRC-32 of the EVAL_BATCH payload; a
        # firmware echoing its frame's CRC trailer (header + payload) is refused on every reply.
        exchange.refused.append(
            f"the BATCH_RESULT echoes request CRC-32 {shown}, not 0x{crc:08X} (zlib CRC-32 of the EVAL_BATCH "
            f"payload it answers{self._frame_crc_hint(exchange, echoed)})")
        return False

    @staticmethod
    def _frame_crc_hint(exchange: Exchange, echoed: int | None) -> str:
        f = exchange.frame
        trailer = zlib.crc32(f.payload, zlib.crc32(HEADER.pack(f.version, f.msg_type, f.seq, len(f.payload))))
        return "; it echoes the request frame's CRC trailer, over header and payload" if echoed == trailer else ""

    def _batch_results(self, exchange: Exchange, reply: Frame) -> list[Result]:
        """One EVAL_BATCH's reply, checked (type, model, one timing and output set per image), as Results."""
        c = self.client
        _, n = self.batches.pop(exchange.frame.seq)
        batch = c._expect(exchange.command, reply, BatchResult)
        self._check_model(exchange.command, batch.model_sha256)
        check_timings(batch.timings, n, device=c.name, port=c.port, command=exchange.command,
                      asked=f"EVAL_BATCH of {n} images")
        if len(batch.outputs) != n:
            raise InvalidPayload(f"device {c.name!r} on {c.port}: {exchange.command}: EVAL_BATCH of {n} images "
                                 f"answered with the outputs of {len(batch.outputs)}; the firmware must send "
                                 "every image's outputs (docs/protocol.md, \"Batched evaluation\")")
        c.run_wait.learn(batch.timings)
        self.reply_bytes_per_image = max(self.reply_bytes_per_image, len(reply.payload) / n)
        return [Result((timing,), outputs, batch.model_sha256) for timing, outputs in zip(batch.timings, batch.outputs)]

    def _wait(self, oldest: Exchange) -> Frame:
        """Read until the oldest request's reply arrives, keeping the replies to younger ones."""
        # Its wait from what is known now, not when it was sent: requests sent before the first reply taught
        # the period (after every model select) would wait timeout_s per image (`RunWait`), 16 s and slices
        # of 5.3 s for 8 images at a 2 s timeout, before a lost frame is sent again or a hang is reported.
        images = self.batches[oldest.frame.seq][1] if self.batch else 1
        oldest.wait_s = self.client.run_wait.wait_s(images)
        oldest.slice_s = oldest.wait_s / oldest.attempts
        accept = (lambda frame: self._answers(oldest, frame)) if self.batch else None
        return oldest.await_reply(oldest.started_s, on_corrupt=self._corrupt, keep=self._keep, progress=False,
                                  waiting_for=lambda: f"in flight: {[e.frame.seq for e in self.in_flight]}",
                                  accept=accept, stream_s=self._reply_line_s(images))

    def _reply_line_s(self, images: int) -> float:
        """Seconds a reply of `images` images takes on the line at the link's baud rate (8N1), from the most
        bytes per image a reply took so far (0 before the first): how long its wait may stretch while its
        bytes are arriving (`Exchange.await_reply`'s `stream_s`). Why: a BATCH_RESULT carries every image's
        outputs; on a UART (11.5 KB/s at 115200 baud) it takes N times one image's reply time, which
        `timeout_s` covers once: batching turned a set-up that works one image per request into timeouts
        mid-reply, the request sent again (each replay holding the line as long). Only bytes actually
        arriving stretch a wait, so a hung device is reported as soon as before, on a fast port too."""
        return self.client.line_time_s(images * self.reply_bytes_per_image)

    def _keep(self, frame: Frame) -> bool:
        """A reply to a younger request still in flight: held for its turn (replies go back in request order).
        Any other frame is stale, unless it contradicts a reply already held or taken (ProtocolError). With
        EVAL_BATCH, a reply is held only if it answers its seq's request (`_answers`); the first one wins."""
        if self.batch:
            exchange = next((e for e in self.in_flight if e.frame.seq == frame.seq), None)
            if exchange is None or not self._answers(exchange, frame):
                return False
            self.answered.setdefault(frame.seq, frame)
            return True
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

    def _corrupt(self, item: FrameCorrupt) -> None:
        """A damaged reply: it may be anyone's, so every request still unanswered is sent again."""
        for exchange in self.in_flight:
            if exchange.frame.seq not in self.answered:
                exchange.resend_after_corrupt(item)

    def _write(self, exchange: Exchange) -> None:
        """The request written full duplex: the replies to the requests in flight are read meanwhile."""
        self.client._write(exchange.command, exchange.wire, read_replies=True)

