"""Footprint: model size and activation memory against the budget and against the device itself."""

from __future__ import annotations

import pytest


@pytest.mark.edgehil_metrics("model_kb", "peak_activation_kb", unbudgeted=True)
def test_model_fits_device(edgehil_pair, edgehil_bench, edgehil_model_info, edgehil_record):
    dut = edgehil_bench.device(edgehil_pair.device)  # capacities only; the model is loaded below
    # What the figures rest on (a batch taken as 1, shapes LiteRT sized) travels with the records.
    notes = {"model_notes": "; ".join(edgehil_model_info.notes)} if edgehil_model_info.notes else None
    edgehil_record.check("model_kb", edgehil_model_info.size_bytes / 1024, context=notes)
    edgehil_record.check("peak_activation_kb", edgehil_model_info.peak_activation_bytes / 1024, context=notes)
    assert edgehil_model_info.size_bytes <= dut.hello.flash_bytes, (
        f"{edgehil_model_info.name} is {edgehil_model_info.size_bytes} bytes; {dut.name} has {dut.hello.flash_bytes} bytes of flash")
    assert edgehil_model_info.peak_activation_bytes <= dut.hello.ram_bytes, (
        f"{edgehil_model_info.name} needs {edgehil_model_info.peak_activation_bytes} bytes of activations; "
        f"{dut.name} has {dut.hello.ram_bytes} bytes of RAM")


@pytest.mark.edgehil_metrics("model_kb", unbudgeted=True)
def test_device_accepts_model(edgehil_dut, edgehil_model):
    # The `edgehil_dut` fixture uploaded the model: a refusal would have raised DeviceRejected there.
    assert edgehil_dut.loaded_sha256 == edgehil_model.info.sha256, "device reports another model active"

