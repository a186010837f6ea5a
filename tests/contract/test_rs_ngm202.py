"""The R&S NGM202 as its user manual writes FastLog ("Remote control commands → Data logging commands",
shared by the NGx family): `FLOG[:STATe] 1` starts FastLog at once — no trigger to arm — and
`FLOG:DATA?` returns a definite-length block of little-endian float32 (voltage, current) pairs. A client
written from the manual sends nothing else (issue 12: the twin waited for a trigger and such a client
hung)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.contract.conftest import Target

pytestmark = pytest.mark.instrument("rs-ngm202")


def test_fastlog_streams_as_soon_as_it_is_started(target: Target) -> None:
    # FLOG:TARGet SCPI: FastLog data to the remote interface, as R&S's own FastLog example sends it.
    for command in ("*RST", "*CLS", "VOLT 3.3", "OUTP ON", "FLOG:TARGet SCPI", "FLOG 1"):
        target.check(command)
    handle = target.handle
    try:
        values = np.array(handle.query_binary_values("FLOG:DATA?", datatype="f", is_big_endian=False))
        assert handle.query("SYST:ERR?") == '+0,"No error"'
    finally:
        target.check("FLOG 0")
        target.check("OUTP OFF")
    assert values.size > 0 and values.size % 2 == 0  # (V, I) pairs
    voltage_v, current_a = values[0::2], values[1::2]
    assert np.median(voltage_v) == pytest.approx(3.3, rel=0.02)  # little-endian decodes to the setpoint
    assert np.all(np.isfinite(current_a)) and np.all(current_a >= -0.01) and np.all(current_a <= 10.5)
