"""The IMX500's KPI output (picamera2's CnnKpiInfo: DNN and DSP runtimes) mapped to stage timings."""

from __future__ import annotations

import struct

import pytest

from pytest_edgehil.agent.backends import check_backend
from pytest_edgehil.agent.imx500_kpi import kpi_ms, kpi_timings
from pytest_edgehil.errors import ConfigError, ProtocolError

# A recorded tuple: CnnKpiInfo bytes as libcamera hands them (two uint32 µs: DNN 7093, DSP 2611).
RECORDED = struct.pack("=II", 7093, 2611)


def test_recorded_kpi_maps_to_readout_and_inference():
    assert kpi_ms(RECORDED) == (7.093, 2.611)
    assert kpi_ms(list(RECORDED)) == (7.093, 2.611)  # libcamera's metadata arrives as a list of ints
    (t0, t1) = kpi_timings([RECORDED, (6.5, 2.5)])
    assert (t0.readout_us, t0.inference_us, t0.retrieval_us) == pytest.approx((2611.0, 7093.0, 0.0))
    # docs/protocol.md: a frame's readout ends at its rise ([start_us - readout_us, start_us]); back to back,
    # frame 1's 2500 µs DSP follows frame 0's 7093 µs DNN (retrieval 0), so it rises at 7093 + 2500, not + 2611.
    assert t1.start_us == pytest.approx(7093.0 + 2500.0) and t1.inference_us == pytest.approx(6500.0)
    assert t1.start_us - t1.readout_us == pytest.approx(t0.start_us + t0.inference_us)


@pytest.mark.parametrize("bad", [b"\x00" * 6, (1.0,), (1.0, float("nan")), (-1.0, 2.0)])
def test_malformed_kpi_is_a_protocol_error(bad):
    with pytest.raises(ProtocolError, match="IMX500"):
        kpi_ms(bad)


def test_a_frame_without_kpi_is_refused():
    with pytest.raises(ProtocolError, match="frame 1 carries no CnnKpiInfo"):
        kpi_timings([RECORDED, None])


def test_without_the_camera_the_backend_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="imx500"):
        check_backend("imx500")
