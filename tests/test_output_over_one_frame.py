"""A model whose outputs cannot fit one RESULT frame is refused at start-up, naming the output, like an
input over one SET_INPUT frame, not by every RUN as "a firmware fault; reset the device".

Seen from outside: a 16x16 model resizing to 2100x2100 int8 (4,410,000 bytes of output) ran on the Coral
twin, and every test failed with "INTERNAL: Result reply cannot be sent: RESULT payload of 4410087 bytes
exceeds MAX_PAYLOAD (4194304) … (a firmware fault; read the device's text and reset the device)". A frame
carries at most 4 MiB (docs/protocol.md); 2100² bytes are over it, 1000² are not (checked by hand below).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ModelError

from .tflite_builder import Subgraph, build, options

FRAME = 4 * 1024 * 1024


def _resize_model(side: int) -> bytes:
    g = Subgraph()
    g.tensor("image", (1, 16, 16, 1), "INT8", scales=[1 / 255])
    g.tensor("size", (2,), "INT32", const=True, data=struct.pack("<2i", side, side))
    g.tensor("big", (1, side, side, 1), "INT8", scales=[1 / 255])
    g.op("RESIZE_BILINEAR", ["image", "size"], ["big"], options("ResizeBilinear"))
    g.inputs, g.outputs = ["image"], ["big"]
    return build(g)


def test_an_output_over_one_result_frame_is_refused_at_start_up(tmp_path: Path) -> None:
    assert 2100 * 2100 > FRAME
    (tmp_path / "wide.tflite").write_bytes(_resize_model(2100))
    with pytest.raises(ModelError, match=r"wide.tflite.*output 'big'.*4,410,000 bytes.*RESULT"):
        ModelCatalog(tmp_path).get("wide").check()


def test_an_output_that_fits_is_not_refused(tmp_path: Path) -> None:
    assert 1000 * 1000 < FRAME // 2
    (tmp_path / "fits.tflite").write_bytes(_resize_model(1000))
    ModelCatalog(tmp_path).get("fits").check()


def test_a_budgeted_catalog_model_with_such_outputs_errors_naming_it_before_any_run(pytester: pytest.Pytester) -> None:
    """Reached through the budget table (no --model), the model is checked by its fixture: each test errors
    with the ModelError, no RUN reaches the device."""
    models = pytester.path / "models"
    models.mkdir()
    (models / "wide.tflite").write_bytes(_resize_model(2100))
    (pytester.path / "budgets.toml").write_text(
        '[[budget]]\nmodel = "wide"\ndevice = "coral"\n[budget.limits]\ninference_ms = { max = 100.0 }\n',
        encoding="utf-8")
    pytester.makeini(f"""
        [pytest]
        edgehil_models_dir = {models}
        edgehil_budgets = budgets.toml
        edgehil_latency_runs = 5
    """)
    pytester.makepyfile(test_it="""
        import pytest

        @pytest.mark.edgehil_metrics("inference_ms")
        def test_run(edgehil_dut):
            edgehil_dut.client.run(1)
    """)
    result = pytester.runpytest("--device=coral", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "ModelError" in out and "RESULT frame" in out and "INTERNAL" not in out, out[-3000:]
