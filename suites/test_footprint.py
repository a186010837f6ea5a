"""Footprint: model size and activation memory against the budget and against the device itself."""

from __future__ import annotations

import pytest

from pytest_edgehil.config.kinds import get_device_kind


@pytest.mark.edgehil_metrics("model_kib", "peak_activation_kib", "parameters", "macs", unbudgeted=True)
def test_model_fits_device(edgehil_pair, edgehil_bench, edgehil_model_info, edgehil_record):
    dut = edgehil_bench.device(edgehil_pair.device)  # capacities only; the model is loaded below
    # What the figures rest on (a batch taken as 1, shapes LiteRT sized) travels with the records.
    notes = {"model_notes": "; ".join(edgehil_model_info.notes)} if edgehil_model_info.notes else None
    edgehil_record.check("model_kib", edgehil_model_info.size_bytes / 1024, context=notes)
    edgehil_record.check("peak_activation_kib", edgehil_model_info.peak_activation_bytes / 1024, context=notes)
    # The counts are checked where a budget limits them (a table may bound a partition by parameters, or a
    # frame rate by MACs); unbudgeted, they stay in `edgehil inspect` and out of every pair's summary.
    for metric, count in (("parameters", edgehil_model_info.parameters), ("macs", edgehil_model_info.macs)):
        if edgehil_record.limit(metric) is not None:
            edgehil_record.check(metric, count, context=notes)
    # 0 in HELLO is "not reported" (MLPerf Tiny firmware says nothing of its memory): the kind's figure
    # stands in, and a size neither gives is not checked.
    kind = get_device_kind(edgehil_pair.kind)
    flash_bytes = dut.hello.flash_bytes or kind.flash_bytes
    ram_bytes = dut.hello.ram_bytes or kind.ram_bytes
    said = "its HELLO" if dut.hello.ram_bytes else f"kind {edgehil_pair.kind!r} in the kinds file"
    too_large = []
    if flash_bytes and edgehil_model_info.size_bytes > flash_bytes:
        too_large.append(f"the model file is {edgehil_model_info.size_bytes:,} bytes and {dut.name} has "
                         f"{flash_bytes:,} bytes of flash")
    if ram_bytes and edgehil_model_info.peak_activation_bytes > ram_bytes:
        too_large.append(f"it needs {edgehil_model_info.peak_activation_bytes:,} bytes of activations at once (peak, "
                         f"a lower bound on the tensor arena) and {dut.name} has {ram_bytes:,} bytes of RAM")
    if too_large:
        pytest.fail(f"does not fit: {edgehil_model_info.name} on {dut.name}: {'; '.join(too_large)} ({said}). Use a "
                    "smaller model or input size, or a board with more memory", pytrace=False)
    unknown = [name for name, size in (("flash", flash_bytes), ("RAM", ram_bytes)) if not size]
    if unknown:
        pytest.skip(f"{dut.name} reports no {' or '.join(unknown)} size and kind {edgehil_pair.kind!r} gives "
                    "none (its kinds-file entry: flash_bytes, ram_bytes): the model is not checked against it")


@pytest.mark.edgehil_metrics("model_kib", unbudgeted=True)
def test_device_accepts_model(edgehil_dut, edgehil_model):
    # The `edgehil_dut` fixture uploaded the model: a refusal would have raised DeviceRejected there.
    assert edgehil_dut.loaded_sha256 == edgehil_model.info.sha256, "device reports another model active"

