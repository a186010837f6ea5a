"""Batched evaluation under faults: a reply under another request's seq is never taken for its images.

With EVAL_BATCH, each BATCH_RESULT echoes the CRC-32 of the request payload it answers, so a reply that
carries a request's seq but answers other images is skipped (the request is retransmitted and answered from
the reply cache, or times out): every case here ends in the right outputs or a typed error naming the
device, never in another image's numbers. A scripted firmware (`batch_device.BatchDevice`: each output is
its input's sum) makes any mislabel show; `ReplyScript` aims reply faults at one request by its order.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.errors import DeviceTimeout, EdgeHILError, SequenceMismatch
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.messages import Result
from pytest_edgehil.link.pipeline import evaluate
from pytest_edgehil.sim.pty_link import REPLY_CACHE, serve_pty

from .batch_device import BatchDevice, ReplyScript, images, sums

# Requests of 1, 2, 4, 8, 8, 8 and 8 images, three in flight at once. A mislabel between two requests of
# 8 is what matters: a reply for another number of images fails the image count check anyway.
IMAGES = 39
SIZES = (1, 2, 4, 8, 8, 8, 8)


def run(device: BatchDevice, plan: ReplyScript | None, data: list[np.ndarray], *, retries: int = 2,
        timeout_s: float = 1.0) -> tuple[list[Result] | EdgeHILError, DeviceClient]:
    """`data` evaluated in EVAL_BATCH requests; the results, or the typed error it ended in."""
    with serve_pty(device, name="b0", faults=plan) as endpoint, \
            DeviceClient(endpoint.port, name="batcher", timeout_s=timeout_s, retries=retries) as client:
        client.run_wait.expect(1e-4, "the scripted device")  # each wait: timeout_s, not timeout_s per image
        try:
            return evaluate(client, ((x,) for x in data), depth=REPLY_CACHE, batch=8), client
        except EdgeHILError as exc:
            return exc, client


def outputs(results: list[Result]) -> list[int]:
    return [int(r.outputs[0][0]) for r in results]


def assert_right_or_typed_error(outcome: list[Result] | EdgeHILError, data: list[np.ndarray]) -> None:
    """Never a mislabelled result: either every image's own output, in order, or a typed error naming the
    device (a DeviceTimeout: the request was never answered with its own images' reply)."""
    if isinstance(outcome, EdgeHILError):
        assert isinstance(outcome, DeviceTimeout), outcome
        assert "'batcher'" in str(outcome)
    else:
        assert outputs(outcome) == sums(data)


@pytest.mark.parametrize("first_lost", [False, True])
@pytest.mark.parametrize("k", [0, 4])
def test_a_reply_stamped_with_the_previous_request_s_seq_is_skipped_and_the_request_answered_again(k, first_lost):
    # Request k+1's reply carries request k's seq. With request k's own reply lost (`first_lost`), it arrives
    # while the host waits for request k: the case where plain EVAL can only refuse the evaluation.
    data = images(IMAGES)
    script = {(k + 1, 0): "stale-seq", **({(k, 0): "drop-frame"} if first_lost else {})}
    plan = ReplyScript(script=script)
    outcome, client = run(BatchDevice(), plan, data)
    assert not isinstance(outcome, EdgeHILError), outcome  # the reply cache answers both requests again
    assert outputs(outcome) == sums(data)
    assert plan.fired == {"stale-seq": 1, **({"drop-frame": 1} if first_lost else {})}
    assert client.stats.retransmissions >= 1 + first_lost and client.stats.stale_replies >= 1
    notes = "\n".join(client.traffic_log.lines())
    assert "answers another request; skipped" in notes if first_lost else "skipped stale reply" in notes


def test_a_firmware_that_stamps_every_reply_with_the_previous_seq_is_a_sequence_mismatch():
    data = images(IMAGES)
    outcome, client = run(BatchDevice(), ReplyScript(always="stale-seq"), data)
    assert isinstance(outcome, SequenceMismatch), outcome
    assert "'batcher'" in str(outcome) and "evaluate (image 1)" in str(outcome)
    assert client.stats.stale_replies >= 1


def test_a_reply_echoing_a_wrong_request_crc32_is_never_taken():
    data = images(IMAGES)
    device = BatchDevice(crc_delta=1)  # the right seq, the right outputs: only the echo is wrong
    outcome, client = run(device, None, data)
    assert isinstance(outcome, SequenceMismatch), outcome  # a DeviceTimeout: only replies to other requests came
    message = str(outcome)
    assert "'batcher'" in message and "evaluate (image 1)" in message and "3 transmissions" in message
    assert client.stats.stale_replies >= 3  # the reply and both replays, each skipped
    assert "answers another request; skipped" in "\n".join(client.traffic_log.lines())


@pytest.mark.parametrize("retries", [1, 2, 3])
@pytest.mark.parametrize("lost", [1, 4])
def test_a_lost_reply_and_replay_with_the_next_reply_under_its_seq_is_never_mislabelled(retries, lost):
    # Request `lost`'s reply and the replay for its first retransmission are both lost; request lost+1's
    # reply carries its seq. Plain EVAL cannot tell that from the real answer (docs/protocol.md,
    # "Pipelined evaluation"); with the CRC-32 echo it is skipped. A third transmission (retries >= 2) is
    # answered from the reply cache: the right result; with fewer, the request times out: a typed error.
    data = images(IMAGES)
    plan = ReplyScript(script={(lost, 0): "drop-frame", (lost, 1): "drop-frame", (lost + 1, 0): "stale-seq"})
    outcome, client = run(BatchDevice(), plan, data, retries=retries)
    assert_right_or_typed_error(outcome, data)
    assert plan.fired == {"drop-frame": 2, "stale-seq": 1}
    assert client.stats.retransmissions >= min(retries, 2)  # the lost request, sent again until answered
    if retries >= 2:
        assert not isinstance(outcome, EdgeHILError), outcome
    else:
        assert isinstance(outcome, SequenceMismatch)
        first = 1 + sum(SIZES[:lost])  # the first image of request `lost`
        assert f"evaluate (images {first}-{first + SIZES[lost] - 1})" in str(outcome)


def test_a_request_answered_twice_with_other_timings_is_taken_not_refused():
    # Both replies echo the request's CRC-32: both answer its images (it ran twice), so the first is taken
    # and the second skipped. Plain EVAL refuses this (two different replies under one seq).
    data = images(IMAGES)
    device = BatchDevice(twice=True)
    outcome, _ = run(device, None, data)
    assert not isinstance(outcome, EdgeHILError), outcome
    assert outputs(outcome) == sums(data)
    assert [r.timings[0].readout_us for r in outcome] == [1.0] * len(data)  # the first reply of each
    assert device.sizes == list(SIZES)  # run once each: the second reply is the firmware's, not a replay


def test_a_request_never_answered_times_out_after_the_wait_of_its_images_naming_all_in_flight():
    # Request 3 (images 8-15) was sent before any reply taught the device's period; its reply and both
    # replays are lost. Its wait is that of 8 images at the period learnt since (not timeout_s per image),
    # and the error names the requests in flight behind it, whose results are lost with it.
    data = images(IMAGES)
    plan = ReplyScript(script={(3, i): "drop-frame" for i in range(3)})
    device = BatchDevice()
    with serve_pty(device, name="b0", faults=plan) as endpoint, \
            DeviceClient(endpoint.port, name="batcher", timeout_s=1.0) as client:
        with pytest.raises(DeviceTimeout) as excinfo:
            evaluate(client, ((x,) for x in data), depth=REPLY_CACHE, batch=8)
        learnt_wait_s = client.run_wait.wait_s(SIZES[3])
    assert client.run_wait.period_s is not None and learnt_wait_s < SIZES[3] * client.timeout_s
    message = str(excinfo.value)
    assert "did not answer evaluate (images 8-15) (seq" in message and f"within {learnt_wait_s:.3g} s" in message
    assert "In flight: images 8-15, images 16-23, images 24-31; no result of this evaluation is returned" in message
    assert device.sizes[:6] == list(SIZES[:6])  # the two behind it ran, and were answered
