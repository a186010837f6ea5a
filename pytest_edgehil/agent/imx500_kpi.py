"""The Raspberry Pi AI Camera's (IMX500) own timing of each frame's network, as stage timings.

picamera2 (`picamera2/devices/imx500/imx500.py`) reads the camera's `CnnKpiInfo` metadata: two native
uint32 in microseconds, (DNN runtime, DSP runtime), and `IMX500.get_kpi_info()` returns them in
milliseconds as (dnn_runtime, dsp_runtime). On the sensor the DSP prepares the input tensor from the
frame (crop, scale, normalise) and then the DNN accelerator runs the network, so: DSP runtime → `readout`,
DNN runtime → `inference`; the output tensor reaches the host in the frame's metadata over CSI-2, which
the KPI does not time (`retrieval` = 0). Pure parsing; the backend that captures frames needs picamera2
and the camera (`agent.backends.check_backend`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from pytest_edgehil.errors import ProtocolError
from pytest_edgehil.link.messages import StageTiming

_KPI = struct.Struct("=II")  # CnnKpiInfo: dnn_runtime_us, dsp_runtime_us (picamera2 unpacks with 'II')


def kpi_ms(kpi: bytes | bytearray | Sequence[int] | tuple[float, float]) -> tuple[float, float]:
    """(dnn_ms, dsp_ms) from `CnnKpiInfo` bytes (or the list of ints libcamera hands over), or from the
    (dnn_runtime, dsp_runtime) pair get_kpi_info() already returned. ProtocolError for any other shape."""
    if isinstance(kpi, (bytes, bytearray)) or (isinstance(kpi, Sequence) and len(kpi) == _KPI.size
                                                and all(isinstance(b, int) and 0 <= b < 256 for b in kpi)):
        raw = bytes(int(b) for b in kpi)
        if len(raw) != _KPI.size:
            raise ProtocolError(f"IMX500 CnnKpiInfo is {len(raw)} bytes, picamera2 reads {_KPI.size} (two uint32 "
                                "µs: DNN, DSP); update picamera2/imx500 firmware or report the layout")
        dnn_us, dsp_us = _KPI.unpack(raw)
        return dnn_us / 1000, dsp_us / 1000
    values = tuple(kpi)
    if len(values) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values):
        raise ProtocolError(f"IMX500 KPI {values!r}: expected (dnn_runtime_ms, dsp_runtime_ms) as get_kpi_info() "
                            "returns, or the 8-byte CnnKpiInfo metadata")
    return float(values[0]), float(values[1])


def kpi_timings(kpis: Sequence[bytes | Sequence[int] | tuple[float, float] | None]) -> tuple[StageTiming, ...]:
    """One StageTiming per frame (µs): readout = DSP runtime, inference = DNN runtime, retrieval = 0;
    frames laid back to back as docs/protocol.md places stages (each DSP before its own DNN; the sensor's
    frame instants are not in the KPI). ProtocolError on a bad KPI
    or a frame without one (None: the network was not ready for that frame)."""
    timings: list[StageTiming] = []
    fall_us = 0.0  # where the previous frame's DNN ended; its DSP (readout) follows, then the rise
    for i, kpi in enumerate(kpis):
        if kpi is None:
            raise ProtocolError(f"IMX500 frame {i} carries no CnnKpiInfo: the network firmware was still loading "
                                "or the frame dropped its tensor; discard frames until get_kpi_info() returns a pair")
        dnn_ms, dsp_ms = kpi_ms(kpi)
        # docs/protocol.md: a readout ends at its own rise, so each frame rises its own DSP time after the
        # previous DNN ends (the first at 0: its readout lies before the first trigger).
        start_us = fall_us + dsp_ms * 1e3 if timings else 0.0
        timings.append(StageTiming(start_us=start_us, readout_us=dsp_ms * 1e3, inference_us=dnn_ms * 1e3,
                                   retrieval_us=0.0))
        fall_us = start_us + dnn_ms * 1e3
    return tuple(timings)
