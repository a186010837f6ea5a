"""The MLPerf Tiny / EEMBC text protocol of the unmodified reference firmware: commands and replies.

What the reference firmware (mlcommons/tiny `api/internally_implemented.cpp`, EEMBC monitor) speaks, in
performance mode:
- every command ends with `%`; tokens are separated by spaces; every reply ends with `m-ready`;
- `name%` → `m-name-DEVICE-[VENDOR]`; `profile%` → `m-profile-[FW]` and `m-model-[MODEL]`;
- `db load N%` → `m-[Expecting N bytes]`; `db HEXHEX…%` fills the buffer, `m-load-done` when full;
- `infer N W%` → `m-warmup-start-W`, `m-warmup-done`, `m-infer-start-N`, `m-lap-us-T0`, `m-lap-us-T1`,
  `m-infer-done`, `m-results-[f,f,…]` (the dequantized outputs with 3 decimals, as each reference port's
  `th_results()` prints them: `ROUNDED` or `TRUNCATED`, below);
- `results%` → `m-results-[…]`; an unknown command → `e-[Unknown command: X]`; errors start with `e-`.
Lines end with CRLF. In energy mode `m-lap-us-` lines are not printed: the timestamp GPIO goes to the
energy monitor instead (`parse_energy_infer`). The reference energy build runs its UART at 9600 baud
(th_serialport_initialize) behind EEMBC's IO manager, which the host reaches at 115200 and which relays
`dut CMD%` (`IO_COMMAND`, `unwrap_io`).

Pure parsing here (no I/O): `EembcClient` (link/eembc_client.py) and the firmware twin share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_edgehil.errors import ProtocolError

TERMINATOR = "%"
READY = "m-ready"
LOAD_DONE = "m-load-done"  # the db command that fills the buffer answers this
#: HELLO capability of a board whose firmware is built for energy mode (EE_CFG_ENERGY_MODE=1).
ENERGY_MODE = "eembc:energy-mode"
CMD_SIZE = 80  # EE_CMD_SIZE: the reference firmware keeps at most 80 characters of a command
HEX_BYTES_PER_COMMAND = 32  # "db " + 64 hex digits fits in EE_CMD_SIZE

# EEMBC's IO manager (MLPerf Tiny's interface board; mlcommons/tiny benchmark/interface InterfaceMenu::
# Passthrough, the runner's io_manager.py IOManager.send_command): `dut CMD%` is answered
# `m-dut-passthrough(CMD)` and `m-ready`, then each line the board prints as `[dut]: LINE`, up to its
# `[dut]: m-ready`. The runner sends 26 bytes per `db` command through it (device_under_test.py DUT:
# `_max_bytes = 26 if power_manager else 31`): "dut db " + 52 hex digits + "%" is 60 characters.
IO_COMMAND = "dut"
IO_PREFIX = "[dut]: "
IO_HEX_BYTES_PER_COMMAND = 26
IO_BOARD_BAUD = 9600  # the board's UART behind the IO manager in the reference energy build (th_serialport_initialize)

_NAME = re.compile(r"^m-name-(.*)-\[(.*)\]$")
_PROFILE = re.compile(r"^m-profile-\[(.*)\]$")
_MODEL = re.compile(r"^m-model-\[(.*)\]$")
_LAP = re.compile(r"^m-lap-us-([0-9]+)$")
_RESULTS = re.compile(r"^m-results-\[(.*)\]$")

# How a reference port's th_results() prints each value (mlcommons/tiny benchmark/reference_submissions/
# PORT/submitter_implemented.cpp), 3 decimals either way. ROUNDED: printf "%0.3f" (image_classification,
# person_detection; anomaly_detection prints one score so: UNSUPPORTED_FIRMWARE). TRUNCATED: keyword_spotting's digits ("Some platforms don't implement
# floating point formatting"): "0.%d" of (int)(x*10), then "%d" of (int)(x*100) % 10 and (int)(x*1000) % 10,
# i.e. x cut (not rounded) to 3 decimals for 0 <= x; 1.0 prints "0.1000"; a negative x prints no number.
ROUNDED, TRUNCATED = "rounded", "truncated"
RESULTS_PRINTS = (ROUNDED, TRUNCATED)
#: Each reference firmware's print, by the model version its `profile%` names (internally_implemented.h).
REFERENCE_RESULTS_PRINT = {"kws01": TRUNCATED, "vww01": ROUNDED, "ic01": ROUNDED, "ad01": ROUNDED}
RESULT_STEP = 1e-3  # the last printed decimal
# Reference firmware this host cannot run, by the model version `profile%` names, and why. ad01 (anomaly
# detection, ToyADMOS): mlcommons/tiny benchmark/reference_submissions/anomaly_detection/
# submitter_implemented.cpp reads float32 features in th_load_tensor (kInputSize * sizeof(float), quantized on
# the board) and th_results() prints one value, "m-results-[%0.3f]" of the mean squared error between the
# 640 dequantized outputs and that input. The host sends the model's own input tensor and needs the output
# tensor (to check it against LiteRT and to score it), so neither side of the exchange fits.
UNSUPPORTED_FIRMWARE = {
    "ad01": ("MLPerf Tiny's anomaly-detection firmware (ad01) is not supported: its reference th_load_tensor() "
             "takes float32 features (4 bytes each, quantized on the board) where the host sends the model's input "
             "tensor, and its th_results() prints one anomaly score (m-results-[%0.3f], the mean squared error "
             "of the 640 dequantized outputs against the input), not the output tensor the host checks and "
             "scores. Measure the anomaly-detection model with the pytest-edgehil device protocol instead"),
}
_ROUNDED_VALUE = re.compile(r"^-?(?:[0-9]+\.[0-9]{3}|nan|inf)$")  # what "%0.3f" can print, all of it
_TRUNCATED_VALUE = re.compile(r"^0\.([0-9]+)([0-9])([0-9])$")  # "0." (int)(x*10), then two single digits
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


def command(*tokens: object) -> bytes:
    """`command("infer", 1, 0)` → b"infer 1 0%"."""
    return (" ".join(str(t) for t in tokens) + TERMINATOR).encode("ascii")


def db_commands(data: bytes, per_command: int = HEX_BYTES_PER_COMMAND) -> list[bytes]:
    """`db load N%` then `db HEX…%` commands, `per_command` bytes each, that fill the firmware's buffer."""
    cmds = [command("db", "load", len(data))]
    for offset in range(0, len(data), per_command):
        cmds.append(command("db", data[offset:offset + per_command].hex()))
    return cmds


def reply_done(raw: bytes, io_manager: bool = False) -> bool:
    """Whether `raw` ends with the reply's last line: the firmware's `m-ready`, relayed as `[dut]: m-ready`
    through an IO manager (whose own `m-ready` comes first)."""
    end = IO_PREFIX + READY if io_manager else READY
    return raw.replace(b"\r", b"").rstrip(b"\n").endswith(end.encode())


def unwrap_io(lines: list[str], text: str) -> list[str]:
    """The firmware's lines inside the IO manager's reply to `dut text%`. ProtocolError when the reply does
    not start `m-dut-passthrough(text)`, `m-ready`, or a later line lacks the `[dut]: ` prefix."""
    head = [f"m-dut-passthrough({text})", READY]
    if lines[:2] != head:
        raise ProtocolError(f"{IO_COMMAND} {text}%: the IO manager answered {excerpt(lines)}, not {head} "
                            "(InterfaceMenu::Passthrough): the port is not an EEMBC IO manager, or a line lost bytes")
    stray = [line for line in lines[2:] if not line.startswith(IO_PREFIX)]
    if stray:
        raise ProtocolError(f"{IO_COMMAND} {text}%: lines without the IO manager's {IO_PREFIX!r} prefix: "
                            f"{excerpt(stray)}: a line lost bytes between the IO manager and the host")
    return [line[len(IO_PREFIX):] for line in lines[2:]]


def line_print_us(line: str, baudrate: int) -> float:
    """µs a UART at `baudrate` (8N1: 10 bits a character) takes to send `line` and its CRLF."""
    return (len(line) + 2) * 10 / baudrate * 1e6


def split_lines(raw: bytes) -> list[str]:
    """Reply bytes → lines (CR/LF stripped). ProtocolError naming the bytes when a line is not printable
    ASCII: the signature of a baud-rate mismatch or a noisy line."""
    lines = []
    for part in raw.replace(b"\r", b"").split(b"\n"):
        if not part:
            continue
        text = part.decode("ascii", "replace")
        if "\ufffd" in text or not _PRINTABLE.match(text):
            raise ProtocolError(f"received bytes that are not the firmware's text ({part[:32]!r}): the line is "
                                "garbled. A baud-rate mismatch does exactly this; check the lab file's `baud` "
                                "against the firmware's UART setting")
        lines.append(text)
    return lines


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("e-")]


@dataclass(frozen=True)
class Identity:
    """What `name%` and `profile%` say: device name, vendor, firmware (profile) and model versions."""

    name: str
    vendor: str
    firmware: str
    model: str


def parse_identity(name_lines: list[str], profile_lines: list[str]) -> Identity:
    name = _first(_NAME, name_lines, "name%", "m-name-DEVICE-[VENDOR]")
    firmware = _first(_PROFILE, profile_lines, "profile%", "m-profile-[FW]")
    model = _first(_MODEL, profile_lines, "profile%", "m-model-[MODEL]")
    return Identity(name.group(1), name.group(2), firmware.group(1), model.group(1))


@dataclass(frozen=True)
class InferReply:
    """One `infer N W%`: the two timestamps (µs, the firmware's timer) and the results vector."""

    count: int
    laps_us: tuple[int, ...]
    results: tuple[float, ...]

    @property
    def elapsed_us(self) -> int:
        return self.laps_us[-1] - self.laps_us[0]


def results_print(model: str, declared: str | None = None) -> str:
    """The print convention of firmware holding `model`: the lab's `declared` one, else the reference port's
    for a reference model version (kws01: TRUNCATED), else ROUNDED (the other ports and the template)."""
    return declared if declared is not None else REFERENCE_RESULTS_PRINT.get(model, ROUNDED)


def parse_infer(lines: list[str], count: int, style: str = ROUNDED) -> InferReply:
    """The reply to `infer count W%`. ProtocolError when fewer than two `m-lap-us-` timestamps came (energy-
    mode firmware, or a dropped line), when they run backwards, or when the results line is damaged."""
    laps = tuple(int(m.group(1)) for m in (_LAP.match(line) for line in lines) if m)
    if len(laps) < 2:
        raise ProtocolError(f"infer {count}: {len(laps)} m-lap-us- timestamp(s) in the reply, two are needed to time "
                            "it. Firmware built for energy mode (EE_CFG_ENERGY_MODE=1) prints none: build it for "
                            "performance mode, or time it from the energy monitor's timestamp GPIO; a dropped "
                            f"line gives the same. Reply: {excerpt(lines)}")
    if laps[-1] < laps[0]:
        raise ProtocolError(f"infer {count}: the timestamps run backwards ({laps[0]} then {laps[-1]} µs): the "
                            "firmware's µs counter wrapped (32 bits: every 71.6 min) or a digit was dropped")
    return InferReply(count, laps, parse_results(lines, f"infer {count}", style))


def parse_energy_infer(lines: list[str], count: int, style: str = ROUNDED) -> tuple[float, ...]:
    """The reply to `infer count W%` from energy-mode firmware: its results (the timing is on the monitor's
    digital input). ProtocolError when `m-lap-us-` lines came: that firmware is built for performance mode."""
    laps = [line for line in lines if _LAP.match(line)]
    if laps:
        raise ProtocolError(f"infer {count}: the firmware printed {len(laps)} m-lap-us- timestamp(s): it is built for "
                            "performance mode (EE_CFG_ENERGY_MODE=0), the lab file says `eembc_mode = \"energy\"`; "
                            "flash the energy-mode build or set `eembc_mode = \"performance\"`")
    return parse_results(lines, f"infer {count}", style)


def parse_results(lines: list[str], what: str, style: str = ROUNDED) -> tuple[float, ...]:
    """The `m-results-[…]` values printed in `style`, each as the middle of the values its text stands for:
    x within RESULT_STEP / 2 of the printed v (ROUNDED), x in [v, v + RESULT_STEP) (TRUNCATED: v + half a
    step). One trailing comma is read (person_detection prints one after its last class). ProtocolError on
    any other empty value, and on a value its print cannot produce (a dropped digit or point)."""
    match = _first(_RESULTS, lines, what, "m-results-[f,f,…]")
    items = match.group(1).split(",")
    if len(items) > 1 and not items[-1]:
        items.pop()
    return tuple(_result_value(item, what, style) for item in items)


def _result_value(item: str, what: str, style: str) -> float:
    if style == TRUNCATED:
        digits = _TRUNCATED_VALUE.match(item)
        if digits is not None:
            tenths, hundredths, thousandths = (int(d) for d in digits.groups())
            return tenths / 10 + hundredths / 100 + thousandths / 1000 + RESULT_STEP / 2
        if item.startswith("0.-"):
            raise ProtocolError(f"{what}: results value {item!r} is the digit print of a negative value: the "
                                "keyword_spotting th_results() prints (int)(x*10) and two more digits apart, so "
                                "it cannot show a value below 0. The firmware's model is not the catalog's, or "
                                "its port prints \"%0.3f\": then set `eembc_results_print = \"rounded\"`")
    elif _ROUNDED_VALUE.match(item):
        return float(item)
    shape = "0.DDD digits" if style == TRUNCATED else "\"%0.3f\""
    raise ProtocolError(f"{what}: results value {item!r} is not a number as the firmware prints it ({shape}, "
                        f"`eembc_results_print = \"{style}\"`): the line lost or changed bytes on the way "
                        "(dropped UART bytes); check the cable and lower the baud rate")


def _first(pattern: re.Pattern[str], lines: list[str], what: str, shape: str) -> re.Match[str]:
    for line in lines:
        match = pattern.match(line)
        if match:
            return match
    raise ProtocolError(f"{what}: no line shaped {shape} in the reply {excerpt(lines)}: a line lost bytes on the "
                        "way (dropped UART bytes: check the cable, lower the baud rate) or the firmware is another one")


def excerpt(lines: list[str]) -> list[str]:
    """The first lines of a reply, each cut short, for messages (a results line can be 100 kB)."""
    return [line if len(line) <= 60 else line[:57] + "…" for line in lines[:8]]
