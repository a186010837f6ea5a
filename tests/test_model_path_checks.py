"""A model given by path is read and analysed when the session starts (found by a fresh-user review):
a truncated file is refused on the host, naming the file, before any device is touched (the device used to
refuse it at LOAD_END, once per test); a model with dynamic input dimensions runs at the size its card
beside it gives (`input.shape`), and one without a size, or with a size it cannot take, is refused at
start-up naming the card.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ModelError

from .conftest import REPO

DATA = Path(__file__).resolve().parent / "data"
SHIPPED = REPO / "fixtures" / "models" / "qsegment.tflite"
DYNAMIC = DATA / "cases" / "dynamic-shape" / "dyn_conv_int8.tflite"  # x int8[1,-1,-1,8] -> CONV 3x3 -> 16 ch
MACS_AT_32 = 1_179_648  # the case README's figure for 1x32x32x8 (tests/test_case_dynamic_shape.py)

USER_TEST = """
import pytest

@pytest.mark.edgehil_metrics("inference_ms", unbudgeted=True)
def test_runs_at_the_cards_size(edgehil_dut, edgehil_model_info):
    result = edgehil_dut.client.run(1)
    print("OUTPUT_SHAPE", tuple(result.outputs[0].shape), "MACS", edgehil_model_info.macs)
"""


def truncated(tmp_path: Path, keep: float) -> Path:
    data = SHIPPED.read_bytes()
    path = tmp_path / "my_net.tflite"
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def dynamic_model(tmp_path: Path, card: dict | None) -> Path:
    path = tmp_path / "dyn.tflite"
    shutil.copyfile(DYNAMIC, path)
    if card is not None:
        path.with_suffix(".json").write_text(json.dumps(card))
    return path


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_model_by_path_is_refused_at_start_up_naming_the_file(
        edgehil_project: pytest.Pytester, tmp_path: Path, keep: float) -> None:
    model = truncated(tmp_path, keep)
    edgehil_project.makepyfile(test_latency=(REPO / "suites" / "test_latency.py").read_text())
    result = edgehil_project.runpytest("--device=coral", f"--model={model}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([f"*model file {model}:*corrupt*re-export*nothing was sent to any device*"])
    assert "LOAD_END" not in result.stdout.str() + result.stderr.str()


def test_a_truncated_model_check_is_a_model_error_naming_the_path(tmp_path: Path) -> None:
    model = truncated(tmp_path, 0.5)
    with pytest.raises(ModelError, match=f"model file {model}: .*corrupt"):
        ModelCatalog(tmp_path).get(str(model)).check()


def test_a_dynamic_model_runs_at_its_cards_input_shape(edgehil_project: pytest.Pytester, tmp_path: Path) -> None:
    model = dynamic_model(tmp_path, {"input": {"shape": [1, 32, 32, 8]}})
    edgehil_project.makepyfile(test_user=USER_TEST)
    result = edgehil_project.runpytest("--device=coral", f"--model={model}", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*OUTPUT_SHAPE (1, 32, 32, 16) MACS {MACS_AT_32}*"])


def test_a_dynamic_model_at_another_card_size_is_run_at_that_size(tmp_path: Path) -> None:
    model = dynamic_model(tmp_path, {"input": {"shape": [1, 20, 48, 8]}})
    entry = ModelCatalog(tmp_path).get(str(model))
    entry.check()
    assert entry.info.inputs[0].shape == (1, 20, 48, 8)
    assert entry.info.macs == MACS_AT_32 * (20 * 48) // (32 * 32)  # stride-1 SAME conv: cost scales with H*W


@pytest.mark.parametrize("card", [None, {"input": {"shape": [1, -1, -1, 8]}}, {"task": "detection"}])
def test_a_dynamic_model_without_a_size_is_refused_at_start_up_naming_its_card(
        edgehil_project: pytest.Pytester, tmp_path: Path, card: dict | None) -> None:
    model = dynamic_model(tmp_path, card)
    edgehil_project.makepyfile(test_user=USER_TEST)
    result = edgehil_project.runpytest("--device=coral", f"--model={model}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    card_path = model.with_suffix(".json")
    pattern = f"*model file {model}: *open dims 1, 2*Give the input shape*in its card {card_path}*[[]1, N, N, 8]*"
    result.stderr.fnmatch_lines([pattern])


@pytest.mark.parametrize("shape", [[1, 32, 32, 3], [1, 32, 32], [1, 0, 32, 8]])
def test_a_card_size_the_model_cannot_take_is_refused_at_start_up(
        edgehil_project: pytest.Pytester, tmp_path: Path, shape: list[int]) -> None:
    model = dynamic_model(tmp_path, {"input": {"shape": shape}})
    edgehil_project.makepyfile(test_user=USER_TEST)
    result = edgehil_project.runpytest("--device=coral", f"--model={model}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    card_path = model.with_suffix(".json")
    pattern = f"*model file {model}:*does not fit its signature [[]1, -1, -1, 8]*input.shape* card {card_path}*"
    result.stderr.fnmatch_lines([pattern])


def test_a_budgeted_dynamic_model_without_a_size_errors_before_any_run(
        edgehil_project: pytest.Pytester, tmp_path: Path) -> None:
    # Reached through the budget table only (not --model): not analysed at start-up, refused by the fixture
    # with the card to write, before the device is asked to RUN.
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(DYNAMIC, models / "dyn.tflite")
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nmodel = "dyn"\ndevice = "coral"\n[budget.limits]\n'
                       'inference_ms = { max = 100.0, source = "test" }\n')
    edgehil_project.makepyfile(test_user=USER_TEST)
    result = edgehil_project.runpytest("--device=coral", "--budgets-only", f"--budgets={budgets}",
                                       "-o", f"edgehil_models_dir={models}", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    card_path = models / "dyn.json"
    result.stdout.fnmatch_lines([f"*ModelError: model *dyn* open dims 1, 2* its card {card_path}*"])
    assert "DeviceRejected" not in result.stdout.str()  # the device's BAD_INPUT refusal at RUN, before


def test_a_card_size_too_large_for_one_set_input_frame_is_refused_at_start_up(tmp_path: Path) -> None:
    # 1x4000x4000x8 int8 is 128 MB: no SET_INPUT frame (4 MiB payload) can carry it; each test used to
    # error with "exceeds MAX_PAYLOAD; send it in smaller pieces" (a fresh-user review).
    model = dynamic_model(tmp_path, {"input": {"shape": [1, 4000, 4000, 8]}})
    entry = ModelCatalog(tmp_path).get(str(model))
    with pytest.raises(ModelError, match=r"input .* at shape 1x4000x4000x8 is 128,000,000 bytes, over the 4 MiB "
                                         r"one SET_INPUT frame carries.*input.shape.*nothing was sent"):
        entry.check()
