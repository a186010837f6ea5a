"""Binary block reads over a real pyvisa-py TCP session: payloads full of LF bytes, the error entry asked
in the same program message as the block, and a query answered with an error instead of a block.

Served by the project's SCPI server with a handler written here from IEEE 488.2 (a block is
`#<n><length><payload>`, the replies to one program message are joined by `;`), not by the analyzer twin,
so that the payload's bytes are chosen: float32 values whose every byte is LF (0x0A), which pyvisa-py
ends a read at while its termination character is enabled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import pyvisa

from pytest_edgehil.errors import InstrumentReplyError
from pytest_edgehil.instruments.scpi import encode_block
from pytest_edgehil.instruments.visa_link import VisaLink
from pytest_edgehil.sim.scpi_server import ScpiCommand, ScpiServer

IDN = "Test,Block,0,1.0"
# 0x0A0A0A0A as a float32 is 6.6e-33; a few ordinary values between, in both byte orders.
LF_VALUE = np.frombuffer(b"\n\n\n\n", dtype=">f4")[0]
VALUES = np.tile(np.array([LF_VALUE, 1.5, LF_VALUE, -0.25], dtype=np.float32), 70_000)  # 1.1 MB


class Handler:
    """`*IDN?`, `DATA?` (the block), `DATA:LITT?` (little-endian), `EMPTy?` (no data: queues -230),
    `SYST:ERR?` (the queue, oldest first)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, command: ScpiCommand) -> bytes | None:
        if command.header == "*IDN":
            return IDN.encode()
        if command.header == "*CLS":
            self.errors.clear()
            return None
        if command.header == "DATA":
            return encode_block(VALUES.astype(">f4").tobytes())
        if command.header == "DATA:LITT":
            return encode_block(VALUES.astype("<f4").tobytes())
        if command.header == "EMPT":
            self.errors.append('-230,"Data corrupt or stale"')
            return None
        if command.header == "SYST:ERR":
            return (self.errors.pop(0) if self.errors else '+0,"No error"').encode()
        self.errors.append('-113,"Undefined header"')
        return None


@pytest.fixture
def link() -> Iterator[tuple[VisaLink, Handler]]:
    handler = Handler()
    server = ScpiServer(handler, name="blocks")
    port = server.start()
    manager = pyvisa.ResourceManager("@py")
    resource = manager.open_resource(f"TCPIP0::127.0.0.1::{port}::SOCKET", read_termination="\n",
                                     write_termination="\n", timeout=5000)
    visa = VisaLink(resource, "blocks")
    visa.identity = IDN
    try:
        yield visa, handler
    finally:
        resource.close()
        server.close()


def test_a_payload_of_lf_bytes_decodes_whole_in_either_byte_order(link) -> None:
    visa, _ = link
    big = visa.query_float32_block("DATA?", big_endian=True, expected_count=VALUES.size)
    little = visa.query_float32_block("DATA:LITT?", big_endian=False, expected_count=VALUES.size)
    np.testing.assert_array_equal(big, VALUES)
    np.testing.assert_array_equal(little, VALUES)
    assert big.dtype == little.dtype == np.dtype(np.float32)  # native order, the values as sent
    # The termination character is on again for text replies.
    attribute = pyvisa.constants.ResourceAttribute.termchar_enabled
    assert visa.resource.get_visa_attribute(attribute) == pyvisa.constants.VI_TRUE
    assert visa.query("*IDN?") == IDN


def test_the_error_entry_comes_back_with_the_block_in_one_response(link) -> None:
    visa, handler = link
    values, entry = visa.query_float32_block_and_error("DATA?", "SYST:ERR?", big_endian=True,
                                                       expected_count=VALUES.size)
    np.testing.assert_array_equal(values, VALUES)
    assert entry == (0, "No error")
    handler.errors.append('-222,"Data out of range"')  # queued by an earlier command
    values, entry = visa.query_float32_block_and_error("DATA?", "SYST:ERR?", big_endian=True)
    assert values.size == VALUES.size
    assert entry == (-222, "Data out of range")
    assert visa.query("*IDN?") == IDN  # nothing left unread


def test_a_query_answered_with_an_error_instead_of_a_block_is_named_at_once(link) -> None:
    visa, handler = link
    start = time.monotonic()
    with pytest.raises(InstrumentReplyError, match=r"holds no block: the instrument queued -230,"
                                                   r"\"Data corrupt or stale\"") as raised:
        visa.query_float32_block_and_error("EMPT?", "SYST:ERR?", big_endian=True)
    assert time.monotonic() - start < 2.5, "named from the reply, not after the 5 s timeout"
    assert "EMPT?;:SYST:ERR?" in str(raised.value)
    assert visa.query("*IDN?") == IDN
    assert handler.errors == []


def test_power_from_float32_readings_is_the_exact_float64_product() -> None:
    # Traces keep a binary fetch's float32 readings; their power is computed in float64, and must equal
    # widening both readings first (the product of two 24-bit significands is exact in 53 bits).
    from pytest_edgehil.instruments.base import Trace

    rng = np.random.default_rng(2)
    current = rng.uniform(1e-4, 0.1, 100_000).astype(np.float32)
    voltage = rng.uniform(3.2, 3.4, 100_000).astype(np.float32)
    power = Trace(current_a=current, voltage_v=voltage, sample_interval_s=1e-5, trigger_index=0, idn="t").power_w
    assert power.dtype == np.float64
    np.testing.assert_array_equal(power, current.astype(np.float64) * voltage.astype(np.float64))
