"""A completed capture as fetched: the capture it was configured as, and the checks its arrays pass
before a `Trace` is built from them (so before any energy is computed).

A byte-order or transfer-format mistake decodes without error into impossible values, a reading pinned
at the range limit is the ADC saturating, and readings spaced unlike the configured interval were taken
under another setting: each raises here, naming the command that read the array. Pure functions on
arrays; no I/O (the driver reads the arrays, `instruments.driver.ScpiAnalyzer._fetch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytest_edgehil.errors import InstrumentError
from pytest_edgehil.instruments.base import Trace
from pytest_edgehil.instruments.replies import check_not_clipped, check_plausible


@dataclass(frozen=True)
class CaptureConfig:
    """A capture as the instrument actually runs it (interval and range as it reports them)."""

    voltage_v: float
    current_range_a: float
    sample_interval_s: float
    points: int
    pretrigger_points: int
    digitize_voltage: bool


def checked_trace(capture: CaptureConfig, columns: dict[str, np.ndarray], sources: dict[str, str], *,
                  where: str, hint: str, full_scale_v: float, interval_setting: str, idn: str,
                  trigger_index: int, trigger_located: bool = True) -> Trace:
    """The Trace of fetched `columns` ("current" A, "voltage" V, "time" s arrays, one value per sample;
    `sources` names the command that read each), after the range, clipping and spacing checks.

    `where` names the instrument and channel in messages, `hint` says what to check for mis-decoded data,
    `full_scale_v` bounds a plausible voltage, `interval_setting` names the interval setting to check.
    A column without voltage takes the programmed voltage. Raises InstrumentReplyError (impossible or
    clipped values) or InstrumentError (readings spaced more than 1 % off the configured interval).
    """
    current_a = columns["current"]
    # Range checks: a byte-order or format mistake decodes to impossible values, and a reading
    # pinned at the range limit is the ADC saturating: neither is ever integrated.
    largest_a = check_plausible(current_a, full_scale=capture.current_range_a, what="current", where=where,
                                hint=hint, command=sources["current"])
    check_not_clipped(current_a, range_a=capture.current_range_a, where=where, command=sources["current"],
                      largest=largest_a)
    voltage_v = columns.get("voltage")
    if voltage_v is None:
        voltage_v = np.full(current_a.shape, capture.voltage_v)
    else:
        check_plausible(voltage_v, full_scale=full_scale_v, what="voltage", where=where, hint=hint,
                        expected=capture.voltage_v, command=sources["voltage"])
    rel_time_s = columns.get("time")
    if rel_time_s is not None and rel_time_s.size > 1:
        spacing_s = float(np.median(np.diff(rel_time_s)))
        if abs(spacing_s - capture.sample_interval_s) > 0.01 * capture.sample_interval_s:
            raise InstrumentError(f"{where}: readings are {spacing_s * 1e3:g} ms apart but "
                                  f"{capture.sample_interval_s * 1e3:g} ms was configured; check "
                                  f"the interval setting ({interval_setting}) and the line frequency")
    return Trace(current_a=current_a, voltage_v=voltage_v, sample_interval_s=capture.sample_interval_s,
                 trigger_index=trigger_index, idn=idn, trigger_located=trigger_located)
