"""Joulescope and Otii: the parts testable without the hardware (stream alignment, GPI decoding, rates), and
hardware tests that run against a real JS220 / Otii server and skip with the library's reason without one.
Neither vendor library is imported at module level (the hardware path imports it when a monitor opens)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pytest_edgehil.errors import ConfigError, MeasurementError
from pytest_edgehil.instruments.joulescope import Joulescope
from pytest_edgehil.instruments.monitor import monitor_class, parse_monitor
from pytest_edgehil.instruments.otii import Otii, digital_from_changes, parse_address
from pytest_edgehil.measure.digital_windows import digital_edges_s


def test_lab_file_kinds_name_the_new_drivers():
    assert parse_monitor("joulescope:000415") == ("joulescope", "000415")
    assert parse_monitor("otii:127.0.0.1:1905") == ("otii", "127.0.0.1:1905")
    assert monitor_class("joulescope") is Joulescope and monitor_class("otii") is Otii
    with pytest.raises(ConfigError, match="joulescope:SERIAL"):
        parse_monitor("js220:x")


def test_rates_are_what_the_monitors_have_never_finer():
    js = object.__new__(Joulescope)
    assert js.supported_sample_interval_s(1e-6) == pytest.approx(1e-6)
    assert js.supported_sample_interval_s(2e-6) == pytest.approx(2e-6)
    assert js.supported_sample_interval_s(5e-6) == pytest.approx(4e-6)  # 250 kS/s: the next it has
    otii = object.__new__(Otii)
    assert otii.supported_sample_interval_s(2e-6) == pytest.approx(20e-6)  # 50 kS/s at most
    assert otii.supported_sample_interval_s(100e-6) == pytest.approx(250e-6)


def test_otii_address_and_gpi_changes_on_the_current_time_base():
    assert parse_address("") == ("127.0.0.1", 1905) and parse_address("lab-pc:2000") == ("lab-pc", 2000)
    t = np.arange(10) * 1e-3 + 0.5e-3
    d = digital_from_changes(t, [(0.0021, True), (0.0052, False), (0.0071, True)])
    assert d.tolist() == [False, False, True, True, True, False, False, True, True, True]
    rises, falls = digital_edges_s(t, d)
    assert rises.tolist() == pytest.approx([2e-3, 7e-3])  # half a sample before the first new level
    assert falls.tolist() == pytest.approx([5e-3])
    assert not digital_from_changes(t, []).any()


def _joulescope(fs: int = 1_000_000) -> Joulescope:
    js = object.__new__(Joulescope)
    js.resource, js.idn, js._fs = "0/js220/000415", "Jetperch,JS220,000415,pyjoulescope_driver", fs
    return js


def test_joulescope_streams_align_on_their_sample_counter():
    """Current, voltage and GPI arrive as separate chunks keyed by sample id; the trace is their overlap, and
    the GPI's packed bits (LSB first) land on the same samples as the current."""
    gpi = np.zeros(64, dtype=bool)
    gpi[20:40] = True
    packed = np.packbits(gpi, bitorder="little")
    chunks = {"i": [(100, np.full(32, 0.01, np.float32)), (132, np.full(32, 0.02, np.float32))],
              "v": [(96, np.full(40, 3.3, np.float32)), (136, np.full(28, 3.3, np.float32))],
              "g": [(100, packed[:4]), (132, packed[4:])]}
    trace = _joulescope()._align(chunks)
    assert trace.current_a.size == 64 and trace.sample_interval_s == pytest.approx(1e-6)
    assert trace.digital is not None and np.flatnonzero(trace.digital).tolist() == list(range(20, 40))
    assert trace.current_a[31] == pytest.approx(0.01) and trace.current_a[32] == pytest.approx(0.02)
    assert trace.trigger_index == 20
    chunks["i"][1] = (140, chunks["i"][1][1])  # 8 samples lost between two chunks
    with pytest.raises(MeasurementError, match="skipped from sample 132 to 140"):
        _joulescope()._align(chunks)


def test_joulescope_hardware_capture():
    """Against a real JS220 (any attached): a capture holds current, voltage and the GPI on one time base."""
    driver_module = pytest.importorskip("pyjoulescope_driver")
    driver = driver_module.Driver()
    try:
        paths = [p for p in driver.device_paths() if "js220" in p.lower()]
    finally:
        driver.finalize()
    if not paths:
        pytest.skip("pyjoulescope_driver finds no JS220 on this machine (hardware-only test)")
    monitor = Joulescope(os.environ.get("EDGEHIL_JOULESCOPE", "any"))
    try:
        monitor.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=1e-6, points=100_000)
        monitor.arm()
        monitor.wait_complete(5.0)
        trace = monitor.fetch_trace()
    finally:
        monitor.close()
    assert trace.current_a.size > 1000 and trace.digital is not None
    assert np.isfinite(trace.current_a).all() and 0 < float(np.median(trace.voltage_v)) < 15


def test_otii_hardware_capture():
    """Against an Otii server (EDGEHIL_OTII=HOST:PORT, default the local one) with an Arc or Ace attached."""
    pytest.importorskip("otii_tcp_client")
    from pytest_edgehil.errors import InstrumentError

    try:
        monitor = Otii(os.environ.get("EDGEHIL_OTII", ""))
    except InstrumentError as exc:
        pytest.skip(f"no Otii to test against (hardware-only test): {exc}")
    try:
        monitor.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=20e-6, points=50_000)
        monitor.arm()
        monitor.wait_complete(5.0)
        trace = monitor.fetch_trace()
    finally:
        monitor.close()
    assert trace.current_a.size > 100 and trace.digital is not None
