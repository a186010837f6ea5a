"""Host side of the device protocol: one `DeviceClient` per board (or twin) on a serial port.

Built from a `serial_for_url` URL (`/dev/ttyACM0`, `/dev/pts/7`, `socket://host:port`, `rfc2217://...`) or
a ready pyserial object, so real boards, ser2net bridges and pty twins all plug in the same way. Every
command is a request with a fresh u16 sequence number and one reply with the same number. What the
host does when the line misbehaves (docs/protocol.md, "Retry rule"):
- a corrupt reply frame: retransmit the same request, same seq, at once (the device answers a
  retransmission from its reply cache, so nothing runs twice), up to `retries` times;
- silence: the command's wait is split into `retries + 1` equal slices; at the end of each slice the
  request is retransmitted (the device may have dropped a corrupt request); at the end, DeviceTimeout;
- replies carrying another seq are late answers to earlier requests (a duplicated or delayed reply):
  logged, counted and skipped, never taken as the reply to the current command;
- a RESULT for another model than the one last loaded or selected (protocol version 2 RESULTs carry the
  SHA-256 of the model that ran): ModelMismatch naming both models; the timings are never returned;
- the port vanishing (a board resetting re-enumerates its USB-CDC port under another name): DeviceError
  naming the device and the port; the client closes the dead port and refuses further commands until
  `reopen()` / `link.recovery.reconnect()` (used by `DeviceUnderTest.recover()`, which the pytest plugin
  calls before the device's next test) finds the board again.
A dropped or flipped byte is thus a retry, never a wrong value. `stats` counts what the line did.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import serial

from pytest_edgehil.errors import (
    ConfigError,
    DeviceRejected,
    ModelMismatch,
    ProtocolError,
    ProtocolVersionMismatch,
)
from pytest_edgehil.link.device_port import POLL_S, DevicePort, LinkStats
from pytest_edgehil.link.exchange import Exchange
from pytest_edgehil.link.messages import (
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    SIMULATED_CAPABILITY,
    Ack,
    EnergyCounters,
    EnergyRead,
    Error,
    ErrorCode,
    Frame,
    Hello,
    HelloReply,
    LoadBegin,
    LoadChunk,
    LoadEnd,
    Message,
    MsgType,
    Reset,
    Result,
    Run,
    SelectModel,
    SetInput,
)
from pytest_edgehil.link.replies import check_inferences_ran, check_result, check_within_round_trip
from pytest_edgehil.link.run_wait import RunWait
from pytest_edgehil.link.traffic_log import TrafficLog

# POLL_S and LinkStats live with the port (link.device_port); re-exported here, where they were first.
__all__ = ["ERROR_HINTS", "OLD_VERSIONS", "POLL_S", "DeviceClient", "LinkStats"]

# Why a board of an older version is refused rather than driven in its version (docs/protocol.md).
OLD_VERSIONS: dict[int, str] = {
    1: " (version 1 RESULTs do not say which model ran, so this host cannot check the active model on each "
       "RUN and would record another model's figures if something swapped it)",
}
R = TypeVar("R", bound=Message)

# What to do about each device refusal, appended to the device's own text.
ERROR_HINTS: dict[int, str] = {
    ErrorCode.UNKNOWN_MESSAGE: "the firmware does not implement this command; update the firmware/agent",
    ErrorCode.BAD_PAYLOAD: "host and firmware disagree on a payload; check both speak the same protocol version",
    ErrorCode.NO_MODEL: "load a model (load_model) or select one already on the device (select_model) first",
    ErrorCode.MODEL_TOO_LARGE: "use a smaller model or a device with more memory",
    ErrorCode.HASH_MISMATCH: "the upload was damaged or incomplete; load the model again",
    ErrorCode.BAD_INPUT: "send a tensor with the model's input index, shape and dtype",
    ErrorCode.BUSY: "wait for the running command to finish, or reset the device",
    ErrorCode.INTERNAL: "a firmware fault; read the device's text and reset the device",
    ErrorCode.UNSUPPORTED: "this board cannot do that as asked; change the request as the device's text says",
}


class DeviceClient(DevicePort):
    """Drives one device over the framed protocol. Open it (or use `with`) before sending commands.

    The port, its open/closed/lost state and its raw I/O are `DevicePort`'s; this class is the request API.
    """

    def __init__(self, port: str | serial.SerialBase, *, baudrate: int = 115200, timeout_s: float = 5.0,
                 name: str = "device", retries: int = 2, traffic_log: TrafficLog | None = None,
                 handshake: Callable[[serial.SerialBase], None] | None = None) -> None:
        if timeout_s <= 0 or retries < 0:
            raise ConfigError(f"device {name!r}: timeout_s must be > 0 and retries >= 0, got {timeout_s} "
                              f"and {retries}")
        if baudrate <= 0:  # a request's line time is its size over the rate (link.exchange)
            raise ConfigError(f"device {name!r}: baudrate must be > 0, got {baudrate}; give the line's rate "
                              "(the lab file's `baud`)")
        super().__init__(port, baudrate=baudrate, timeout_s=timeout_s, name=name, handshake=handshake)
        self.retries = retries
        self.traffic_log = traffic_log if traffic_log is not None else TrafficLog()
        # A random first seq: a new session's first request never matches the device's reply cache.
        self._seq = random.randrange(0x10000)
        # The model this host last asked the device to activate (LOAD_* or SELECT_MODEL), checked against
        # every RESULT; kept across reopen() (the board must still run it) and RESET (it then answers NO_MODEL).
        self._expected_model: bytes | None = None
        self._model_names: dict[bytes, str] = {}  # SHA-256 → name given to load_model, for messages
        self.run_wait = RunWait(timeout_s)  # how long RUN n may take: from the active model's period
        # Whether RUN timings are on a real clock, bounded by the round trip (docs/protocol.md, RESULT): set
        # by a HELLO without the twins' `simulated` capability (a twin's timings are simulated, not slept).
        self._real_clock = False
        # Whether the device acknowledged `_expected_model` as active (LOAD_END or SELECT_MODEL ACKed), so that
        # a later NO_MODEL means it lost it (a reset), not that it never took it.
        self._model_acked = False

    # -- state ------------------------------------------------------------------------------------------
    @property
    def expected_model(self) -> str | None:
        """SHA-256 hex of the model this client last loaded or selected (every RUN's RESULT must report
        it, else ModelMismatch); None before any."""
        return self._expected_model.hex() if self._expected_model is not None else None

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"DeviceClient(name={self.name!r}, port={self.port!r}, baudrate={self.baudrate}, {state})"

    # -- commands -----------------------------------------------------------------------------------------
    def hello(self) -> HelloReply:
        """Identify the device; ProtocolVersionMismatch if it speaks another protocol version."""
        frame = self._request("hello", Hello(), self.timeout_s)
        # HELLO_REPLY starts with the device's version byte in every version: check it before decoding.
        if frame.msg_type == MsgType.HELLO_REPLY and frame.payload and frame.payload[0] != PROTOCOL_VERSION:
            raise self._version_mismatch(frame.payload[0])
        hello = self._expect("hello", frame, HelloReply)
        self._real_clock = SIMULATED_CAPABILITY not in hello.capabilities
        return hello

    def load_model(self, model_bytes: bytes, name: str, chunk_size: int = 32768) -> str:
        """Upload a model (LOAD_BEGIN, LOAD_CHUNKs, LOAD_END) and make it active; returns its SHA-256 hex."""
        if not 0 < chunk_size <= MAX_PAYLOAD - 4:
            raise ConfigError(f"load_model: chunk_size {chunk_size} must be in 1..{MAX_PAYLOAD - 4} bytes")
        data = bytes(model_bytes)
        digest = hashlib.sha256(data).digest()
        # Expected from the first byte sent: after a failed upload the device may hold anything else, and a
        # RUN must then be refused rather than measure it.
        self._expected_model = digest
        self._model_names[digest] = name
        self._model_acked = False
        self.run_wait.forget()
        self._ack("load_model (LOAD_BEGIN)", LoadBegin(len(data), digest, name))
        for offset in range(0, len(data), chunk_size):
            self._ack(f"load_model (LOAD_CHUNK at {offset})", LoadChunk(offset, data[offset:offset + chunk_size]))
        self._ack("load_model (LOAD_END)", LoadEnd(digest))
        self._model_acked = True
        return digest.hex()

    def select_model(self, sha256_hex: str) -> None:
        """Activate a model the device already holds, named by its SHA-256 hex digest."""
        try:
            digest = bytes.fromhex(sha256_hex)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ConfigError(f"select_model: {sha256_hex!r} is not a SHA-256 hex digest (64 hex characters)")
        self._expected_model = digest  # even if refused: the old model is not what the host asked for
        self._model_acked = False
        self.run_wait.forget()
        self._ack("select_model", SelectModel(digest))
        self._model_acked = True

    def set_input(self, index: int, tensor: np.ndarray) -> None:
        self._ack(f"set_input({index})", SetInput(index, np.asarray(tensor)))

    def run(self, count: int = 1, *, timed: bool = True) -> Result:
        """Run `count` back-to-back inferences; timings of each, outputs of the last.

        `timed=False` says the caller takes no latency figure from this RUN (accuracy reads the outputs, a
        probe sizes a wait or an acquisition): this protocol times every RUN at no cost, and such a RUN is not
        refused for inference times that all read 0 (`replies.check_inferences_ran`): one inference shorter
        than a coarse timer's tick reads 0 µs most of the time, which refused a sound end-to-end energy
        figure behind a 1 ms timer on 21 of 30 seeds. (The MLPerf Tiny client needs extra inferences to time one.)

        The wait comes from the expected run time (`link.run_wait`): the active model's period as the
        device last reported it (or as declared with `run_wait.expect`), × count × 2, plus `timeout_s`.
        While it is unknown, RUN 1 runs first to learn it. A wait over 5 s is reported as it goes.
        The reply is checked before it is returned (`replies.check_result`): one timing per inference,
        every stage time finite and >= 0, else InvalidPayload naming the device, field and value; and it
        must have run the model this client last loaded or selected, else ModelMismatch (device, port,
        expected and found SHA-256). Without a load/select yet, any model is accepted (read
        `result.model_sha256`).
        """
        if count < 1:
            raise ConfigError(f"run: count must be >= 1, got {count}")
        if self.run_wait.needs_probe(count):
            self.run(1, timed=False)  # learn the period: a long run is never waited for with a guess
        command = f"run({count})"
        wait_s = self.run_wait.wait_s(count)
        began_s = time.monotonic()  # before the request's first byte: the RUN cannot have begun earlier
        frame = self._request(command, Run(count), wait_s, expected=lambda: self.run_wait.describe(count))
        round_trip_s = time.monotonic() - began_s
        result = self._expect(command, frame, Result)
        self._check_model(command, result.model_sha256)
        result = check_result(result, count, device=self.name, port=self.port, command=command)
        if timed:
            check_inferences_ran(result.timings, device=self.name, port=self.port, command=command)
        if self._real_clock:
            check_within_round_trip(result.timings, round_trip_s, device=self.name, port=self.port,
                                    command=command)
        self.run_wait.learn(result.timings)
        return result

    def energy_counters(self) -> EnergyCounters:
        """The device's on-board energy counters over its last RUN (ENERGY_READ; only for a device whose
        HELLO lists `energy_read`, docs/protocol.md "On-board energy"; others answer UNKNOWN_MESSAGE)."""
        command = "energy_counters"
        return self._expect(command, self._request(command, EnergyRead(), self.timeout_s), EnergyCounters)

    def reset(self) -> None:
        self.run_wait.forget()
        self._model_acked = False  # RESET drops the active model: NO_MODEL is then the answer
        self._ack("reset", Reset())

    def _check_model(self, command: str, found: bytes) -> None:
        expected = self._expected_model
        if expected is None or found == expected:
            return

        def named(digest: bytes) -> str:
            name = self._model_names.get(digest)
            return f"{name!r} (SHA-256 {digest.hex()[:16]}…)" if name else f"SHA-256 {digest.hex()[:16]}…"

        raise ModelMismatch(
            f"device {self.name!r} on {self.port}: {command} ran model {named(found)}, not the model this host "
            f"selected, {named(expected)}. Something changed the board's active model between RUNs: another "
            f"program on the port that ignores its lock (see `lsof {self.port}`), firmware that switched models "
            "by itself, or a reboot into a default model. The result was refused and nothing from it was "
            "recorded; stop the other program, then rerun (each test re-selects its model by hash).",
            device=self.name, port=self.port, expected=expected.hex(), found=found.hex())

    # -- request / reply ------------------------------------------------------------------------------------
    def _ack(self, command: str, request: Message) -> None:
        ack = self._expect(command, self._request(command, request, self.timeout_s), Ack)
        if ack.of_type != request.msg_type:
            raise ProtocolError(f"device {self.name!r} on {self.port}: {command} was acknowledged as "
                                f"{ack.of_type!r} instead of {request.msg_type.name}")

    def _expect(self, command: str, frame: Frame, cls: type[R]) -> R:
        """The reply decoded and checked: ERROR → DeviceRejected, other surprises → ProtocolError."""
        if frame.version != PROTOCOL_VERSION:
            raise self._version_mismatch(frame.version)
        try:
            message = frame.message()
        except ProtocolError as exc:  # the codec cannot know which device answered: say it here
            raise type(exc)(f"device {self.name!r} on {self.port}: {command} reply (seq {frame.seq}): "
                            f"{exc}") from exc
        if isinstance(message, Error):
            hint = ERROR_HINTS.get(message.code, "see the device's text")
            if message.code == ErrorCode.NO_MODEL and self._model_acked and self._expected_model is not None:
                hint = (f"it had acknowledged {self._model_names.get(self._expected_model, 'the model')!r} "
                        f"(SHA-256 {self._expected_model.hex()[:16]}…) as active, so it lost it since: the board "
                        "reset (watchdog, brown-out, its reset button, or another program on the port) and its "
                        "RAM, inputs included, is gone. Select the model again and resend the inputs (the plugin "
                        "re-selects it before each test), then rerun")
            raise DeviceRejected(f"device {self.name!r} on {self.port} rejected {command}: {message.code_name}: "
                                 f"{message.text} ({hint})", code=int(message.code))
        if not isinstance(message, cls):
            raise ProtocolError(f"device {self.name!r} on {self.port}: {command} expects a "
                                f"{cls.msg_type.name} reply, got {frame.type_name} (seq {frame.seq})")
        return message

    def _version_mismatch(self, device_version: int) -> ProtocolVersionMismatch:
        why = OLD_VERSIONS.get(device_version, "")
        return ProtocolVersionMismatch(
            f"device {self.name!r} on {self.port} speaks protocol version {device_version}, this host "
            f"(pytest-edgehil) speaks version {PROTOCOL_VERSION}{why}. Flash firmware/agent that speaks version "
            f"{PROTOCOL_VERSION}, or install the pytest-edgehil release that speaks version {device_version}.")

    def _request(self, command: str, request: Message, wait_s: float,
                 expected: str | Callable[[], str] = "") -> Frame:
        with self._lock:
            self._check_usable(command)
            self._seq = (self._seq + 1) & 0xFFFF
            self.stats.requests += 1
            frame = Frame(PROTOCOL_VERSION, request.msg_type, self._seq, request.encode_payload())
            return Exchange(self, command, frame, wait_s, expected=expected).run()
