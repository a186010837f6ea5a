"""`m-results-[…]` as the MLPerf Tiny reference ports really print it (mlcommons/tiny
benchmark/reference_submissions/*/submitter_implemented.cpp, th_results()), read back exactly, while broken
lines are still refused. Expected strings are worked out from that C code by hand, expected outputs are
LiteRT's own run of the model, never the client's parse."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pytest_edgehil.errors import ProtocolError
from pytest_edgehil.link import eembc
from pytest_edgehil.link.eembc_client import EembcClient
from pytest_edgehil.model.runtime import ModelRunner, TensorSpec
from pytest_edgehil.sim.eembc_twin import EembcTwin, kws_digits

from .conftest import MODELS

QSEGMENT = MODELS / "qsegment.tflite"  # int8 sigmoid output, scale 1/256, zero point -128: values in [0, 1)
TINYTRACKER = MODELS / "tinytracker.tflite"  # 2 int8 outputs, negative values too


@pytest.mark.parametrize(("value", "printed"), [
    # th_printf("0.%d", (int)(x*10)); th_printf("%d", (int)(x*100) % 10); th_printf("%d", (int)(x*1000) % 10)
    (0.0078125, "0.007"),  # 2/256: 0.078125 -> 0, 0.78125 -> 0, 7.8125 -> 7 ("%0.3f" would say 0.008)
    (0.99609375, "0.996"),  # 255/256: 9.96 -> 9, 99.6 -> 99 % 10 = 9, 996.09 -> 996 % 10 = 6
    (0.5, "0.500"),
    (0.0, "0.000"),
    (1.0, "0.1000"),  # (int)10.0 = 10 prints two digits
    (-0.25, "0.-2-50"),  # (int)-2.5 = -2, (int)-25 % 10 = -5, (int)-250 % 10 = 0 (C keeps the dividend's sign)
])
def test_the_twin_prints_like_the_keyword_spotting_port(value, printed):
    assert kws_digits(np.float32(value)) == printed


def _sample(runner: ModelRunner, seed: int) -> np.ndarray:
    spec = runner.inputs[0]
    return np.random.default_rng(seed).integers(-128, 128, size=spec.shape, dtype=spec.dtype)


def _run_once(model_path, model_name: str, *, outputs: tuple[TensorSpec, ...] | None = None,
              results_print: str | None = None, seed: int = 11, **twin) -> tuple[np.ndarray, np.ndarray, EembcTwin]:
    """(what the client read back, LiteRT's raw outputs of the same input, the twin)."""
    runner = ModelRunner(model_path)
    x = _sample(runner, seed)
    with EembcTwin(model_path.read_bytes(), model_name, **twin) as fw:
        client = EembcClient(fw.port, model_name=model_name, outputs=outputs or runner.outputs, kind="cortex-m4",
                             name="mcu", results_print=results_print)
        client.open()
        try:
            client.hello()
            client.load_model(model_path.read_bytes(), model_name)
            client.set_input(0, x)
            got = client.run(1, timed=False).outputs[0]
        finally:
            client.close()
    return got, runner.run_raw([x])[0], fw


def test_the_keyword_spotting_ports_truncated_digits_come_back_exact():
    # kws01 is the model version the reference keyword_spotting firmware reports (m-model-[kws01]); its
    # th_results truncates where "%0.3f" rounds, and the level check refused every other result as a fault.
    got, truth, _ = _run_once(QSEGMENT, "kws01", th_results="keyword_spotting")
    np.testing.assert_array_equal(got, truth)


def test_a_port_of_another_model_that_prints_the_digits_says_so_in_the_lab_file():
    got, truth, _ = _run_once(QSEGMENT, "qsegment", th_results="keyword_spotting", results_print="truncated")
    np.testing.assert_array_equal(got, truth)


def test_the_person_detection_ports_trailing_comma_is_read():
    # nresults = 3 over kCategoryCount = 2: "m-results-[a,b,]"
    runner = ModelRunner(TINYTRACKER)
    x = _sample(runner, 3)
    with EembcTwin(TINYTRACKER.read_bytes(), "vww01", th_results="person_detection") as fw:
        client = EembcClient(fw.port, model_name="vww01", outputs=runner.outputs, kind="cortex-m4", name="mcu")
        client.open()
        try:
            client.load_model(TINYTRACKER.read_bytes(), "vww01")
            client.set_input(0, x)
            lines = client.transact("results")
            got = client.run(1, timed=False).outputs[0]
        finally:
            client.close()
    truth = runner.run_raw([x])[0]
    values = runner.outputs[0].dequantize(truth).reshape(-1)
    assert lines[0] == f"m-results-[{values[0]:0.3f},{values[1]:0.3f},]"
    np.testing.assert_array_equal(got, truth)


def test_truncated_digits_read_as_rounded_are_refused_naming_the_setting():
    with pytest.raises(ProtocolError, match=r"off every quantization level.*eembc_results_print = \"truncated\""):
        _run_once(QSEGMENT, "qsegment", th_results="keyword_spotting", results_print="rounded")


def test_firmware_with_other_output_parameters_is_still_refused_under_the_truncated_print():
    spec = ModelRunner(QSEGMENT).outputs[0]
    other = dataclasses.replace(spec, scale=spec.scale * 1.01)  # not the catalog model's output scale
    with pytest.raises(ProtocolError, match="off every quantization level"):
        _run_once(QSEGMENT, "kws01", outputs=(other,), th_results="keyword_spotting")


def test_negative_values_printed_as_digits_are_refused_not_misread():
    # tinytracker outputs negative values: the digit print makes "0.-2-50" of -0.25, no number
    with pytest.raises(ProtocolError, match=r"0\.-.*cannot show a value below 0"):
        for seed in range(8):  # inputs until one output is negative (most are)
            _run_once(TINYTRACKER, "tinytracker", th_results="keyword_spotting", results_print="truncated", seed=seed)


@pytest.mark.parametrize("line", [
    "m-results-[0.13,0.500]",  # a dropped digit: "%0.3f" always prints 3 decimals
    "m-results-[0123,0.500]",  # a dropped point
    "m-results-[0.125,,0.500]",  # a dropped value
    "m-results-[0.125,0.500,,]",
])
def test_a_damaged_rounded_line_is_refused(line):
    with pytest.raises(ProtocolError, match="not a number"):
        eembc.parse_results([line], "infer 1", eembc.ROUNDED)


def test_a_damaged_truncated_line_is_refused():
    with pytest.raises(ProtocolError, match="not a number"):
        eembc.parse_results(["m-results-[0.12,0.500]"], "infer 1", eembc.TRUNCATED)
    # the same digits, read as the port prints them: the middle of [v, v + 0.001)
    assert eembc.parse_results(["m-results-[0.125,0.1000]"], "infer 1", eembc.TRUNCATED) == pytest.approx((0.1255, 1.0005))


def test_the_lab_files_print_setting_reaches_client_and_twin(tmp_path):
    from pytest_edgehil.bench import Bench
    from pytest_edgehil.config.catalog import ModelCatalog
    from pytest_edgehil.config.lab import load_lab

    lab = tmp_path / "lab.toml"
    lab.write_text('[devices.mcu]\nkind = "cortex-m4"\nsimulated = true\nprotocol = "eembc"\n'
                   'firmware_model = "qsegment"\neembc_results_print = "truncated"\n')
    runner = ModelRunner(QSEGMENT)
    x = _sample(runner, 5)
    bench = Bench(load_lab(lab), catalog=ModelCatalog(MODELS))
    try:
        dut = bench.device("mcu")
        dut.ensure_model(QSEGMENT.read_bytes(), "qsegment")
        dut.client.set_input(0, x)
        got = dut.client.run(1, timed=False).outputs[0]
        twin = bench._firmware_twins["mcu"]
    finally:
        bench.close()
    assert twin.th_results == "keyword_spotting"
    np.testing.assert_array_equal(got, runner.run_raw([x])[0])


def test_the_print_setting_is_for_eembc_devices_only(tmp_path):
    from pytest_edgehil.config.lab import load_lab
    from pytest_edgehil.errors import ConfigError

    lab = tmp_path / "lab.toml"
    lab.write_text('[devices.mcu]\nkind = "cortex-m4"\nsimulated = true\neembc_results_print = "truncated"\n')
    with pytest.raises(ConfigError, match="eembc_results_print"):
        load_lab(lab)
