"""Tensor shapes the file leaves open or states wrongly, and models whose only open dimension is the batch.

A converter writes every tensor's shape, but a file can lack one (no shape vector: unknown rank), carry
placeholders (1s where `shape_signature` says -1) or state a shape its op cannot produce. LiteRT's ops
compute every output shape from their inputs when the interpreter is prepared, so those shapes come from
LiteRT; where LiteRT cannot load the model, the analysis refuses it naming the tensor. Every expected
figure is computed here from the shapes the test writes, never read from the analysis.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.cli import main
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ModelError
from pytest_edgehil.model.info import analyze_model
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.results.store import load_results

from .conftest import REPO
from .tflite_builder import Subgraph, build, options

F32 = 4  # bytes per float32 element
# CONV_2D 3x3 'same', stride 1, on x [1, 8, 8, 4] with filter [6, 3, 3, 4]: y is [1, 8, 8, 6].
CONV_MACS = 8 * 8 * 6 * 3 * 3 * 4  # H_out·W_out·C_out·K_h·K_w·C_in = 13,824
CONV_PEAK = (8 * 8 * 4 + 8 * 8 * 6) * F32  # x and y, both live at the conv
UNSET = object()


def conv_model(y_shape: tuple[int, ...] | None = (1, 8, 8, 6), *, y_signature: tuple[int, ...] | None = None,
               x_signature: tuple[int, ...] | None = None, tail: str | None = None) -> bytes:
    """x -> CONV_2D -> y, y stored as `y_shape` (None: no shape vector); `tail` appends an op y -> z."""
    g = Subgraph()
    g.tensor("x", (1, 8, 8, 4), signature=x_signature)
    g.tensor("w", (6, 3, 3, 4), const=True)
    g.tensor("b", (6,), const=True)
    g.tensor("y", y_shape, signature=y_signature)
    g.op("CONV_2D", ["x", "w", "b"], ["y"], options("Conv2D", padding=0, strideH=1, strideW=1))
    g.inputs, g.outputs = ["x"], ["y"]
    if tail is not None:
        g.tensor("z", (1, 8, 8, 6), signature=y_signature)
        g.op(tail, ["y"], ["z"])
        g.outputs = ["z"]
    return build(g)


# --- shapes the file leaves open: taken from LiteRT -----------------------------------------------------

STORED = {
    "no shape vector (unknown rank)": {"y_shape": None},
    "an empty shape (rank 0)": {"y_shape": ()},
    "placeholder 1s marked -1 in shape_signature": {"y_shape": (1, 1, 1, 6), "y_signature": (1, -1, -1, 6)},
    "placeholder 1s unmarked": {"y_shape": (1, 1, 1, 6)},
}


@pytest.mark.parametrize("stored", STORED.values(), ids=STORED.keys())
def test_a_conv_output_the_file_does_not_size_is_sized_by_litert(stored: dict) -> None:
    """The auditor's case: with y stored as [] the conv counted 36 MACs (one output element) for 13,824."""
    data = conv_model(**stored)
    (y,) = ModelRunner(data, name="conv").run_raw([np.zeros((1, 8, 8, 4), np.float32)])
    assert y.shape == (1, 8, 8, 6)  # LiteRT runs the file and sizes y itself
    info = analyze_model(data)
    assert info.macs == CONV_MACS
    assert info.peak_activation_bytes == CONV_PEAK
    assert info.outputs[0].shape == (1, 8, 8, 6)
    assert any("'y'" in note and "[1, 8, 8, 6]" in note and "TFLM" in note for note in info.notes), info.notes


def test_a_file_whose_shapes_are_all_stored_has_no_shape_note() -> None:
    info = analyze_model(conv_model())
    assert info.macs == CONV_MACS and info.notes == ()


def test_inspect_says_which_shapes_came_from_litert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "conv.tflite"
    path.write_bytes(conv_model(y_shape=()))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"({CONV_MACS:,})" in out
    (note,) = [line for line in out.splitlines() if line.startswith("note")]
    assert "'y'" in note and "[1, 8, 8, 6]" in note


@pytest.mark.parametrize("stored", [{"y_shape": None}, {"y_shape": ()},
                                    {"y_shape": (1, 1, 1, 6), "y_signature": (1, -1, -1, 6)}],
                         ids=["no shape vector", "empty shape", "placeholder 1s"])
def test_an_unsized_tensor_litert_cannot_size_is_refused_naming_it(stored: dict) -> None:
    """A custom op LiteRT here does not have: it cannot prepare the model, so nothing can size y."""
    data = conv_model(**stored, tail="CUSTOM:MyPostprocess")
    with pytest.raises(ModelError, match="lacks|unresolved|custom"):
        ModelRunner(data, name="custom")
    with pytest.raises(ModelError, match=r"tensor 'y'.*LiteRT cannot load.*re-export the model with static shapes"):
        analyze_model(data)


def test_a_custom_op_model_with_every_shape_stored_is_still_analysed() -> None:
    """No false refusal: LiteRT cannot load it, but the file sizes every tensor."""
    info = analyze_model(conv_model(tail="CUSTOM:MyPostprocess"))
    assert info.macs == CONV_MACS and info.unknown_ops == ("CUSTOM:MyPostprocess",)


# --- a lone dynamic batch dimension: batch 1, said so ----------------------------------------------------

def batch_model() -> bytes:
    """Keras's default signature: the batch left open ([-1, 8, 8, 4]), the placeholder shape [1, 8, 8, 4]."""
    return conv_model(x_signature=(-1, 8, 8, 4), y_signature=(-1, 8, 8, 6))


def test_a_batch_only_dynamic_model_is_analysed_at_batch_1_and_says_so() -> None:
    info = analyze_model(batch_model())
    assert info.resolved
    assert info.macs == CONV_MACS and info.peak_activation_bytes == CONV_PEAK  # batch 1, by hand above
    assert info.inputs[0].shape == (1, 8, 8, 4)
    assert info.dynamic_inputs == {"x": (-1, 8, 8, 4)}  # still reported as open
    assert any("batch 1" in note and "'x'" in note for note in info.notes), info.notes
    assert info.to_dict()["notes"] == list(info.notes)


def test_a_batch_only_model_takes_another_batch_when_asked() -> None:
    assert analyze_model(batch_model(), input_shapes=[(3, 8, 8, 4)]).macs == 3 * CONV_MACS


@pytest.mark.parametrize("signature", [(-1, -1, -1, 4), (1, -1, 8, 4)], ids=["batch and height", "height"])
def test_any_other_open_dimension_stays_refused(signature: tuple[int, ...]) -> None:
    info = analyze_model(conv_model(x_signature=signature, y_signature=(signature[:3] + (6,))))
    assert not info.resolved
    with pytest.raises(ModelError, match="open dims"):
        _ = info.macs


def test_an_open_vector_length_is_not_a_batch() -> None:
    """A rank-1 input [-1] is a sequence of any length, not a batch of one."""
    g = Subgraph()
    g.tensor("x", (1,), signature=(-1,))
    g.tensor("y", (1,), signature=(-1,))
    g.op("RELU", ["x"], ["y"])
    g.inputs, g.outputs = ["x"], ["y"]
    assert not analyze_model(build(g)).resolved


def test_inspect_says_the_batch_was_taken_as_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keras_default.tflite"
    path.write_bytes(batch_model())
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"({CONV_MACS:,})" in out
    assert any(line.startswith("note") and "batch 1" in line for line in out.splitlines()), out


def test_a_batch_only_model_by_path_needs_no_card_and_its_footprint_record_says_batch_1(
        edgehil_project: pytest.Pytester, tmp_path: Path) -> None:
    model = tmp_path / "keras_default.tflite"
    model.write_bytes(batch_model())
    ModelCatalog(tmp_path).get(str(model)).check()  # no card: not refused at start-up
    edgehil_project.makepyfile(test_footprint=(REPO / "suites" / "test_footprint.py").read_text())
    saved = tmp_path / "results.json"
    result = edgehil_project.runpytest("--device=coral", f"--model={model}", f"--edgehil-save={saved}",
                                       "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    records = {r.metric: r for r in load_results(saved).records}
    assert records["peak_activation_kib"].value == pytest.approx(CONV_PEAK / 1024)
    assert "batch 1" in str((records["peak_activation_kib"].context or {}).get("model_notes")), records
    assert json.dumps(records["model_kib"].context)  # plain data: survives the results file


def test_a_twin_runs_a_batch_only_model_at_batch_1_without_set_input() -> None:
    from pytest_edgehil.link.client import DeviceClient
    from pytest_edgehil.sim.device_twin import DeviceTwin
    from pytest_edgehil.sim.profile import load_profiles

    # A float model: on the Coral, which computes in float (the IMX500's loader refuses float models).
    twin = DeviceTwin(load_profiles()["coral"], "coral", seed=1)
    twin.start()
    client = DeviceClient(twin.port, timeout_s=10, name="coral")
    try:
        client.open()
        client.load_model(batch_model(), "keras_default")
        result = client.run(1)
        assert result.outputs[0].shape == (1, 8, 8, 6)
        info = twin.active_model_info
        assert info is not None and info.macs == CONV_MACS
    finally:
        client.close()
        twin.close()
