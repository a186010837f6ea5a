"""One exception hierarchy for the whole package.

Every message names what failed (device, port, resource, model) and what to do about it, because the
person reading it is at a bench with cables in hand, not in a debugger.
"""

from __future__ import annotations


class EdgeHILError(Exception):
    """Base of every error pytest-edgehil raises on purpose."""


class ConfigError(EdgeHILError):
    """A lab file, budget table, option or model card is invalid."""


class HistoryError(ConfigError):
    """The history store (an SQLite file of past runs, `results/history.py`) cannot be opened, is not one,
    was written by a newer version, or holds a value no run could have written (edited or damaged)."""


class ProtocolError(EdgeHILError):
    """A frame could not be decoded or a reply broke the protocol's rules."""


class FrameCorrupt(ProtocolError):
    """A frame failed its COBS decoding, length or CRC check (a dropped or flipped byte on the wire)."""


class ProtocolVersionMismatch(ProtocolError):
    """Host and device speak different protocol versions."""


class InvalidPayload(ProtocolError):
    """A frame decoded cleanly but carries an impossible value (a negative or non-finite stage time, a
    tensor header with a zero or absurd dimension): data that must never reach a model or a budget."""


class DeviceError(EdgeHILError):
    """A device could not be reached or reported a failure."""


class DeviceTimeout(DeviceError):
    """A device did not answer in time."""


class SequenceMismatch(DeviceTimeout, ProtocolError):
    """Only replies carrying other sequence numbers arrived before the deadline: the device answers late,
    replays old replies, or another program shares the port. A DeviceTimeout too, so retry logic that
    handles timeouts still applies."""


class AuthRefused(DeviceError):
    """An on-board agent and this host did not prove one shared token to each other (link.auth)."""


class DeviceRejected(DeviceError):
    """The device answered with an ERROR frame (e.g. model too large for its memory)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ModelMismatch(DeviceError):
    """A RUN was answered for another model than the one the host selected (protocol version 2 RESULTs
    carry the active model's SHA-256): something changed the board's model between RUNs. Nothing from
    that RESULT is returned or recorded. `device`, `port`, `expected` and `found` (SHA-256 hex) say which."""

    def __init__(self, message: str, *, device: str = "", port: str = "", expected: str = "",
                 found: str = "") -> None:
        super().__init__(message)
        self.device, self.port, self.expected, self.found = device, port, expected, found


class WrongBoard(DeviceError):
    """The board answering on a device's port is not the one the lab file names: another kind, or (where the
    lab states the board's `device_serial`) another board of the same kind, e.g. two boards swapped between
    ports. Refused at bring-up, before any test measures it under the other board's name. `device` (the lab
    entry), `port`, `expected` and `found` (the kinds, or the serial numbers as HELLO reports them) say which."""

    def __init__(self, message: str, *, device: str = "", port: str = "", expected: str = "",
                 found: str = "") -> None:
        super().__init__(message)
        self.device, self.port, self.expected, self.found = device, port, expected, found


class ModelError(EdgeHILError):
    """A model file could not be read, analysed or run."""


class ModelCardMismatch(ModelError):
    """A model file's bytes are not the ones its card's `sha256` states: figures measured with it would be
    reported under a card (metrics, provenance) that describes another file. `model`, `path`, `stated`
    and `actual` (SHA-256 hex) say which."""

    def __init__(self, message: str, *, model: str = "", path: str = "", stated: str = "", actual: str = "") -> None:
        super().__init__(message)
        self.model, self.path, self.stated, self.actual = model, path, stated, actual


class InstrumentError(EdgeHILError):
    """A power analyzer could not be reached, configured or read."""


class InstrumentTimeout(InstrumentError):
    """An instrument did not answer, or an armed acquisition never triggered."""


class TriggerTimeout(InstrumentTimeout):
    """An armed acquisition waited out its whole timeout still waiting for its trigger: no trigger edge
    reached the analyzer's trigger input (unwired line, wrong pin or source, firmware not raising it).

    `resource` names the analyzer (VISA resource and channel), `timeout_s` how long it waited (s)."""

    def __init__(self, message: str, *, resource: str = "", timeout_s: float = 0.0) -> None:
        super().__init__(message)
        self.resource = resource
        self.timeout_s = timeout_s


class TriggerTimedOutEarlier(TriggerTimeout):
    """Raised at once, without arming: an earlier test of this session already waited out a TriggerTimeout
    on the same device and analyzer, and every later acquisition there would wait out the same timeout
    (plugin/trigger_faults.py). `device` and `first_test` (node id) say where."""

    def __init__(self, message: str, *, resource: str = "", timeout_s: float = 0.0, device: str = "",
                 first_test: str = "") -> None:
        super().__init__(message, resource=resource, timeout_s=timeout_s)
        self.device = device
        self.first_test = first_test


class ScpiError(InstrumentError):
    """The instrument's error queue (SYST:ERR?) reported an error; the text is the instrument's own."""


class InstrumentReplyError(InstrumentError):
    """An instrument's reply failed a check: undecodable bytes, a malformed or over-long block, surplus
    bytes, a non-finite or out-of-range value, the wrong count of values, or a clipped trace.

    `resource`, `command` and `reply` (the bytes seen, possibly truncated) say which exchange it was.
    """

    def __init__(self, message: str, *, resource: str = "", command: str = "", reply: bytes = b"") -> None:
        super().__init__(message)
        self.resource = resource
        self.command = command
        self.reply = reply


class MonitorLimit(InstrumentError):
    """A power monitor cannot source or measure what the device needs (its voltage, its peak current, a
    sample rate it does not have): refused before any number is taken."""


class MeasurementError(EdgeHILError):
    """A trace cannot give the asked-for figure (e.g. a window shorter than the sample period)."""


class TimerTooCoarse(MeasurementError):
    """A device's stage timer too coarse for a latency figure: each stage time is two stamps apart, so behind
    a tick T every reading, and their median, is off by up to T. `device`, `stage` ("inference", ...),
    `tick_s` and `median_s` (the stage's median reading) say which; never a figure a tick away from the truth."""

    def __init__(self, message: str, *, device: str, stage: str, tick_s: float, median_s: float) -> None:
        super().__init__(message)
        self.device, self.stage, self.tick_s, self.median_s = device, stage, tick_s, median_s


class CannotResolve(MeasurementError):
    """The data cannot resolve a window: too few samples, or an edge beside a stage shorter than two samples.

    `window` names it ("inference 3", "end-to-end 0"), `interval_s` is its [t0, t1] on the trace axis (s),
    `sample_interval_s` the analyzer's interval, `fix` what would resolve it. Never a silent number.
    """

    def __init__(self, window: str, interval_s: tuple[float, float], sample_interval_s: float, reason: str,
                 fix: str) -> None:
        self.window = window
        self.interval_s = interval_s
        self.sample_interval_s = sample_interval_s
        self.reason = reason
        self.fix = fix
        t0, t1 = interval_s
        super().__init__(f"cannot resolve {window} [{t0 * 1e3:.4f}, {t1 * 1e3:.4f}] ms "
                         f"({(t1 - t0) * 1e6:.1f} µs) at a {sample_interval_s * 1e6:.4g} µs sample interval: "
                         f"{reason}; {fix}")


class WindowMisplaced(MeasurementError):
    """A window placed from the device's timings disagrees with the edges the trace itself shows."""


class SupplyPathTooSlow(MeasurementError):
    """The supply path between analyzer and load (board decoupling RC, the analyzer's analog front end)
    settles too slowly for the trace to show what the meter needs (e.g. where a trigger-less record's RUN
    starts). `tau_s` is its first-order time constant as fitted from the trace (s); `allowed_tau_s` the
    largest the RUN's stages allow (s), None when the stages were not known."""

    def __init__(self, message: str, *, tau_s: float, allowed_tau_s: float | None = None) -> None:
        super().__init__(message)
        self.tau_s = tau_s
        self.allowed_tau_s = allowed_tau_s


class DatasetError(EdgeHILError):
    """A dataset is missing or does not follow its documented layout."""


class CloseError(EdgeHILError):
    """Closing the bench failed for one or more parts; every part was still closed (or tried).

    `failures` holds (part, exception) for each close that raised, in the order they were tried.
    """

    def __init__(self, failures: list[tuple[str, BaseException]]) -> None:
        self.failures = failures
        parts = "; ".join(f"{part}: {type(exc).__name__}: {exc}" for part, exc in failures)
        super().__init__(f"{len(failures)} part(s) failed to close ({parts}); every other part was closed. "
                         "Check the named instrument or port before the next run (power-cycle it if it hangs).")


class ResourceBusy(EdgeHILError):
    """Another process holds a board or analyzer channel (its cross-process lock); the message names the
    holder's PID, host, start time and command line."""


class DeviceBusy(DeviceError, ResourceBusy):
    """A board's lock (or its exclusively opened port) is held by another process."""


class InstrumentBusy(InstrumentError, ResourceBusy):
    """An analyzer channel's lock is held by another process."""


class StreamGap(InstrumentError):
    """A streamed record (the NGM202's FastLog) lost a chunk: the data have a gap, so no trace is given
    rather than a silently shorter one."""


class RenamedMetricWarning(DeprecationWarning):
    """A budget table names a metric by its old name (`model_kb`, `peak_activation_kb`): it is read under
    the new name (`model_kib`, `peak_activation_kib`, the same KiB figure); rename the key."""
