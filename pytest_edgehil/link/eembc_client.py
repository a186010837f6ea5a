"""A board running the unmodified MLPerf Tiny reference firmware, driven through the EEMBC text protocol.

`EembcClient` offers what the bench and the suites use of a `DeviceClient` (`hello`, `load_model`,
`select_model`, `set_input`, `run`, `reset`, `open`/`close`, `lost`), so such a board is one more device in
the lab file (`protocol = "eembc"`, `firmware_model = "NAME"`). Differences, each explicit:
- the model is compiled into the firmware: `profile%`'s `m-model-[…]` is checked at start-up against
  the lab's `firmware_model`, and "uploading" any other model is refused (DeviceRejected, NO_MODEL);
- `set_input` sends the raw tensor bytes with `db load` / `db HEX`;
- `run(n)` sends `infer k 0%` n times: each window is timed by its own pair of `m-lap-us-` timestamps
  (the firmware's µs timer) and gives one sample, elapsed / k; k is sized so that the print of the first
  m-lap-us- line, timed with the inferences, is at most 1 % of the window (`window_inferences`); the
  protocol has no readout or retrieval stage, so those are 0;
- outputs come back as `m-results-[…]`, dequantized floats with 3 decimals, printed as the firmware's port
  prints them (`results_print`: "%0.3f" rounds, the keyword-spotting port cuts; `eembc.parse_results`): they
  are quantized back with the model's output parameters, and refused (ProtocolError) if a value is not within
  the print's half step of a level.
In energy mode (`energy_mode=True`: firmware built with EE_CFG_ENERGY_MODE=1) the firmware prints no
timestamps: `infer_window(n)` runs n inferences under one pair of timestamp-GPIO pulses for the meter
(`measure/timestamp_energy.py`), `run(n)` returns outputs with no timings, and HELLO says
`eembc:energy-mode` (latency comes from the monitor's window, not from the board).
Known pains are typed errors naming port and baud: garbled text (baud mismatch), a damaged results line
(dropped bytes), fewer than two timestamps (energy-mode firmware), no `m-ready` in time. The line itself
(`link/eembc_link.py`) never hands a late reply to the next command, and with `io_manager=True` speaks
through EEMBC's IO manager (`dut CMD%`, replies relayed as `[dut]: …`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgehil.errors import ConfigError, DeviceError, DeviceRejected, ProtocolError
from pytest_edgehil.link import eembc
from pytest_edgehil.link.eembc_link import EembcLink
from pytest_edgehil.link.messages import PROTOCOL_VERSION, ErrorCode, HelloReply, Result, StageTiming
from pytest_edgehil.link.traffic_log import TrafficLog

if TYPE_CHECKING:
    from pytest_edgehil.model.runtime import TensorSpec

# The largest share of a timed window that the print of its first m-lap-us- line may take (it is timed
# with the inferences on the reference firmware): windows last at least 100 times that print.
LAP_PRINT_SHARE = 0.01
# The widest m-lap-us- value: th_timestamp() prints an unsigned long of µs, on a 32-bit MCU up to 2^32 - 1
# (ten digits). Windows are sized on this width: sized on the probe's own value, they lost their share as
# the timer gained digits (a 7-digit probe, then 8 digits after 10 s: 1.05 % instead of 1 %).
LAP_TIMER_MAX_US = 2**32 - 1
_MAX_SIZING_PROBES = 6


class EembcClient:
    """The reference firmware on `port`, holding model `model_name` with these output tensors."""

    def __init__(self, port: str, *, model_name: str, outputs: Sequence[TensorSpec], kind: str,
                 baudrate: int = 115200, timeout_s: float = 10.0, name: str = "device",
                 traffic_log: TrafficLog | None = None, energy_mode: bool = False,
                 results_print: str | None = None, io_manager: bool = False) -> None:
        self.energy_mode = energy_mode
        # how th_results() prints: the lab's `eembc_results_print`, else the reference port's for model_name
        self.results_print = eembc.results_print(model_name, results_print)
        if self.results_print not in eembc.RESULTS_PRINTS:
            raise ConfigError(f"device {name!r}: results_print {results_print!r} is none of {eembc.RESULTS_PRINTS}")
        self.port, self.baudrate, self.timeout_s, self.name = port, baudrate, timeout_s, name
        self.model_name, self.outputs, self.kind = model_name, tuple(outputs), kind
        self.traffic_log = traffic_log if traffic_log is not None else TrafficLog()
        # io_manager: the port is EEMBC's IO manager (the energy setup's interface board) relaying `dut CMD%`
        self.link = EembcLink(port, baudrate=baudrate, timeout_s=timeout_s, name=name, traffic_log=self.traffic_log,
                              io_manager=io_manager)
        self._model_sha: str | None = None
        self._window_inferences: int | None = None  # inferences per timed window, sized on the first run
        self.lost: str | None = None  # a text protocol has no port recovery here: None, like a healthy client

    @property
    def is_open(self) -> bool:
        return self.link.is_open

    def open(self) -> None:
        self.link.open()

    def close(self) -> None:
        self.link.close()

    def transact(self, text: str, timeout_s: float | None = None) -> list[str]:
        """`EembcLink.transact`: `text%` and its reply to `m-ready`, never a late reply of an earlier command."""
        return self.link.transact(text, timeout_s)

    # -- commands -------------------------------------------------------------------------------------
    def hello(self) -> HelloReply:
        """`name%` and `profile%` as a HELLO; DeviceError when the firmware holds another model than the lab's."""
        try:
            ident = eembc.parse_identity(self.transact("name"), self.transact("profile"))
        except ProtocolError as exc:
            if self.link.io_manager:
                raise
            raise ProtocolError(f"device {self.name!r} on {self.port}: {exc}. An EEMBC IO manager (MLPerf Tiny's "
                                "interface board) answers name% itself and profile% with m-ready alone: for a "
                                "board behind one, set `eembc_io_manager = true`") from exc
        if ident.model in eembc.UNSUPPORTED_FIRMWARE:
            raise DeviceRejected(f"device {self.name!r} on {self.port}: profile% names model {ident.model!r}. "
                                 f"{eembc.UNSUPPORTED_FIRMWARE[ident.model]}", code=ErrorCode.NO_MODEL)
        if ident.model != self.model_name:
            raise DeviceError(f"device {self.name!r} on {self.port}: its firmware holds model {ident.model!r} "
                              f"(profile% m-model-[…]), the lab file's `firmware_model` says {self.model_name!r}; "
                              "flash the firmware built for that model or fix the lab file")
        return HelloReply(device_kind=self.kind, device_name=ident.name, firmware=f"{ident.firmware} ({ident.vendor})",
                          protocol_version=PROTOCOL_VERSION,
                          capabilities=("eembc", "run", "inputs:pushed", f"model:{ident.model}",
                                        *((eembc.ENERGY_MODE,) if self.energy_mode else ())),
                          ram_bytes=0, flash_bytes=0, serial_number="")

    def load_model(self, model_bytes: bytes, name: str, chunk_size: int = 0) -> str:
        """The firmware's model is compiled in: accept only that one (by name), refuse any other."""
        if name != self.model_name:
            raise DeviceRejected(f"device {self.name!r} on {self.port} runs the MLPerf Tiny reference firmware "
                                 f"with model {self.model_name!r} compiled in; model {name!r} cannot be uploaded. "
                                 "Select pairs of that model only (the lab's `firmware_model`)", code=ErrorCode.NO_MODEL)
        self._model_sha = hashlib.sha256(model_bytes).hexdigest()
        return self._model_sha

    def select_model(self, sha256_hex: str) -> None:
        if sha256_hex != self._model_sha:
            raise DeviceRejected(f"device {self.name!r}: only its compiled-in model {self.model_name!r} can be "
                                 "selected", code=ErrorCode.NO_MODEL)

    def set_input(self, index: int, tensor: np.ndarray) -> None:
        if index != 0:
            raise DeviceRejected(f"device {self.name!r}: the reference firmware takes one input buffer, not input "
                                 f"{index}", code=ErrorCode.BAD_INPUT)
        per_command = eembc.IO_HEX_BYTES_PER_COMMAND if self.link.io_manager else eembc.HEX_BYTES_PER_COMMAND
        data = np.ascontiguousarray(tensor).tobytes()
        load, *hexes = (cmd.decode().rstrip("%") for cmd in eembc.db_commands(data, per_command))
        size = int(load.split()[-1])
        # The reference answers an oversized load with a bare line (no e-), then overruns its buffer with the
        # bytes and still says m-load-done: only the m-[Expecting N bytes] echo shows the input fits.
        lines = self._checked(load)
        if f"m-[Expecting {size} bytes]" not in lines:
            raise DeviceRejected(f"device {self.name!r} on {self.port}: {load}% answered {eembc.excerpt(lines)}, "
                                 f"not m-[Expecting {size} bytes]: the firmware's input buffer is smaller than "
                                 f"model {self.model_name!r}'s input of {size} bytes. Rebuild the firmware with "
                                 f"MAX_DB_INPUT_SIZE (submitter_implemented.h) >= {size}", code=ErrorCode.BAD_INPUT)
        for text in hexes:
            lines = self._checked(text)
        if eembc.LOAD_DONE not in lines:
            raise ProtocolError(f"device {self.name!r} on {self.port}: the last db command of {size} bytes got "
                                f"{eembc.excerpt(lines)}, not {eembc.LOAD_DONE}: the firmware holds another count "
                                "of bytes (a db line lost bytes on the way); check the cable and the baud rate")

    def run(self, count: int = 1, *, timed: bool = True) -> Result:
        """`count` timed samples, each one `infer k 0%` window whose elapsed / k is its time per inference;
        outputs of the last. k is 1 when one inference outlasts `LAP_PRINT_SHARE`⁻¹ times the print of a lap
        line, else as many as make the window that long (`window_inferences`): the sample is then the
        window's mean, as the reference runner's figure is. In energy mode, or untimed (`timed=False`:
        outputs only, for accuracy), one `infer count 0%` and no timings."""
        if self.energy_mode or not timed:
            results = (self.infer_window(count) if self.energy_mode
                       else eembc.parse_results(self._checked(f"infer {count} 0"), f"infer {count}", self.results_print))
            return Result(timings=(), outputs=(self._raw_output(results),), model_sha256=self._ran())
        per_window = self.window_inferences()
        timings: list[StageTiming] = []
        start_us = 0.0
        reply = None
        for _ in range(count):
            reply = eembc.parse_infer(self._checked(f"infer {per_window} 0"), per_window, self.results_print)
            timings.append(StageTiming(start_us=start_us, readout_us=0.0,
                                       inference_us=reply.elapsed_us / per_window, retrieval_us=0.0))
            start_us += reply.elapsed_us
        assert reply is not None
        # The reference firmware's model is compiled in and was checked by name (`profile%`) at start-up; it
        # cannot change between RUNs, so the result names the model the host declared for it.
        return Result(timings=tuple(timings), outputs=(self._raw_output(reply.results),), model_sha256=self._ran())

    def window_inferences(self) -> int:
        """Inferences per timed window (`infer k 0%`), sized once from probe windows.

        The reference th_timestamp() reads the µs timer and then prints its m-lap-us- line, on most ports
        through a blocking UART: the first line's print (about 1.6 ms at 115200 baud) is inside every
        window. The reference runner makes it negligible with windows of >= 10 s; here a window lasts at
        least `1 / LAP_PRINT_SHARE` times the print of the widest lap value (`LAP_TIMER_MAX_US`: the timer
        gains digits as the session goes on), so it adds at most `LAP_PRINT_SHARE` to a sample. The
        print runs at the firmware's baud: the port's, or behind an IO manager the board side's, taken as the
        reference energy build's 9600 (`eembc.IO_BOARD_BAUD`; a faster one only lengthens the windows).
        ProtocolError when `_MAX_SIZING_PROBES` windows do not get there (a timer that does not advance)."""
        if self._window_inferences is not None:
            return self._window_inferences
        print_baud = eembc.IO_BOARD_BAUD if self.link.io_manager else self.baudrate
        per_window = 1
        for _ in range(_MAX_SIZING_PROBES):
            reply = eembc.parse_infer(self._checked(f"infer {per_window} 0"), per_window, self.results_print)
            print_us = eembc.line_print_us(f"m-lap-us-{max(reply.laps_us[0], LAP_TIMER_MAX_US)}", print_baud)
            wanted_us = print_us / LAP_PRINT_SHARE
            if reply.elapsed_us >= wanted_us:
                self._window_inferences = per_window
                return per_window
            # elapsed = the print + k inferences: scale k on the inferences' part, taken as at least half of
            # elapsed, so a print that dominates is not scaled with k (6 probes fell short of a 9600-baud
            # print) and one estimated too long cannot blow k up (the window then lasts at most ~2x wanted)
            inference_us = max(reply.elapsed_us - print_us, reply.elapsed_us / 2, 1.0)
            per_window = math.ceil(per_window * (wanted_us - print_us) / inference_us)
        raise ProtocolError(f"device {self.name!r} on {self.port}: infer {per_window} 0% still lasted under "
                            f"{wanted_us:.0f} µs on the firmware's m-lap-us- timer after {_MAX_SIZING_PROBES} "
                            "probes: the timer barely advances. Check th_timestamp()'s timer (µs, running)")

    def infer_window(self, count: int, timeout_s: float | None = None) -> tuple[float, ...]:
        """Energy mode: `infer count 0%`, the count inferences back to back between two timestamp-GPIO
        pulses; returns the results line. `timeout_s`: how long the reply may take, when longer than the
        client's (an energy window runs for at least 10 s on hardware, MLPerf Tiny's rule, past the 10 s a
        command otherwise gets). DeviceError outside energy mode, ProtocolError on a reply with timestamps
        (performance-mode firmware) or a damaged results line, DeviceTimeout as `transact`."""
        if not self.energy_mode:
            raise DeviceError(f"device {self.name!r}: infer_window() is for energy-mode firmware; the lab file "
                              "says performance mode (set `eembc_mode = \"energy\"` for an energy-mode build)")
        if count < 1:
            raise ValueError(f"infer_window(count) needs count >= 1, got {count}")
        return eembc.parse_energy_infer(self._checked(f"infer {count} 0", timeout_s), count, self.results_print)

    def _ran(self) -> bytes:
        return bytes.fromhex(self._model_sha) if self._model_sha else bytes(32)

    def reset(self) -> None:
        """The reference firmware has no reset command; a reset is a power cycle (the analyzer's)."""

    # -- text I/O -------------------------------------------------------------------------------------
    def _checked(self, text: str, timeout_s: float | None = None) -> list[str]:
        lines = self.transact(text, timeout_s)
        failed = eembc.errors(lines)
        if failed:
            raise DeviceRejected(f"device {self.name!r} on {self.port}: {text}% failed: {'; '.join(failed)}",
                                 code=ErrorCode.BAD_PAYLOAD)
        return lines

    def _raw_output(self, values: tuple[float, ...]) -> np.ndarray:
        spec = self.outputs[0]
        size = int(np.prod(spec.shape))
        if len(values) != size:
            raise ProtocolError(f"device {self.name!r} on {self.port}: m-results has {len(values)} values, model "
                                f"{self.model_name!r} outputs {size}: bytes were dropped on the line (or the "
                                "firmware prints another output); check the cable and the baud rate")
        floats = np.asarray(values, dtype=np.float64).reshape(spec.shape)
        if not spec.quantized:
            return floats.astype(spec.dtype)
        raw = spec.quantize(floats)
        gap = float(np.abs(spec.dequantize(raw) - floats).max())
        # Each value is the middle of a print step (eembc.parse_results); 1e-6 allows for the float32 products
        # of the firmware's print, nothing near a step.
        if gap > eembc.RESULT_STEP / 2 + 1e-6:
            raise ProtocolError(f"device {self.name!r} on {self.port}: m-results value off every quantization "
                                f"level of model {self.model_name!r} by {gap:.4g}, more than the half step "
                                f"({eembc.RESULT_STEP / 2:g}) of its 3-decimal print read as "
                                f"`eembc_results_print = \"{self.results_print}\"`: "
                                f"{self._other_print_hint(floats, spec)}")
        return raw

    def _other_print_hint(self, floats: np.ndarray, spec: TensorSpec) -> str:
        """What to do about values off the levels: the other print where the values fit it, else the model."""
        if self.results_print == eembc.ROUNDED:  # rounded mid v, cut mid v + half a step (values >= 0 only)
            cut = floats + eembc.RESULT_STEP / 2
            if floats.min() >= 0 and float(np.abs(spec.dequantize(spec.quantize(cut)) - cut).max()) <= \
                    eembc.RESULT_STEP / 2 + 1e-6:
                return ("the values fit the keyword_spotting port's cut digits instead: set "
                        "`eembc_results_print = \"truncated\"` for this device")
        return "the firmware's output parameters differ from the catalog model's"

